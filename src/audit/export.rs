//! Exporting the audit log: JSON lines or CSV, filtered, oldest first, read a page at a time and
//! written as it is read, so memory stays flat however long the log is (`benches/audit_export.rs`
//! measures it). Each event carries its `prev_hash` and `hash`, and a JSON-lines export ends with a
//! (signed) checkpoint of the head, so a whole export can be checked without the database
//! ([`super::verify_export`]).

use std::io::Write;

use sha2::{Digest, Sha256};

use super::AuditEvent;
use super::checkpoint::{Checkpoint, CheckpointLine, SigningKey};
use crate::store::{AuditFilter, AuditOrder, Store, StoreError};

/// Events read per query.
const PAGE: u32 = 1000;

/// The columns of a CSV export, in order (the fields of [`AuditEvent`]).
const COLUMNS: [&str; 12] = [
    "seq",
    "at",
    "kind",
    "actor",
    "via",
    "upstream",
    "tool",
    "call_id",
    "args_digest",
    "detail",
    "prev_hash",
    "hash",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export")]
    Write(#[from] std::io::Error),
    #[error("old events were pruned while the export ran (retain_days); export again")]
    PrunedMeanwhile,
}

/// An export in progress: [`Exporter::next_chunk`] reads the next page and renders it. The
/// events are those up to the chain's head when the export started; a JSON-lines export ends with
/// a [`CheckpointLine`] for that head (signed when a key is given).
pub struct Exporter {
    store: Store,
    filter: AuditFilter,
    format: Format,
    after: i64,
    /// The head the export stops at; taken when it starts, signed when it ends.
    checkpoint: Option<Checkpoint>,
    key: Option<SigningKey>,
    /// The events written so far, and the running SHA-256 of their hashes.
    events: u64,
    events_digest: Sha256,
    started: bool,
}

impl Exporter {
    pub async fn start(
        store: &Store,
        filter: AuditFilter,
        format: Format,
        key: Option<&SigningKey>,
    ) -> Result<Self, ExportError> {
        let bounds = store.audit_bounds().await?;
        let checkpoint = Checkpoint {
            seq: bounds.head_seq,
            hash: bounds.head_hash,
            pruned_seq: bounds.pruned_seq,
            pruned_hash: bounds.pruned_hash,
            at: crate::domain::Timestamp::now().text(),
            filter: filter.describe(),
            events: 0,
            events_sha256: String::new(),
            public_key: None,
            signature: None,
        };
        Ok(Self {
            store: store.clone(),
            filter: AuditFilter {
                max_seq: Some(checkpoint.seq),
                ..filter
            },
            format,
            after: 0,
            checkpoint: Some(checkpoint),
            key: key.cloned(),
            events: 0,
            events_digest: Sha256::new(),
            started: false,
        })
    }

    /// The next piece of the file, or `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<(Vec<u8>, usize)>, ExportError> {
        let mut out = Vec::new();
        if !std::mem::replace(&mut self.started, true) && self.format == Format::Csv {
            writeln!(out, "{}", COLUMNS.join(","))?;
        }
        if self.after < 0 {
            return Ok(None);
        }
        let page = self
            .store
            .audit_page(&self.filter, AuditOrder::After(self.after), PAGE)
            .await?;
        for event in &page {
            self.events += 1;
            self.events_digest.update(event.hash.as_bytes());
            self.events_digest.update(b"\n");
            match self.format {
                Format::Jsonl => {
                    serde_json::to_writer(&mut out, event).map_err(std::io::Error::other)?;
                    writeln!(out)?;
                }
                Format::Csv => writeln!(out, "{}", csv_row(event))?,
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => self.after = last.seq,
            _ => {
                // The end: nothing more to read; JSON lines close with the checkpoint.
                self.after = -1;
                if let (Format::Jsonl, Some(mut checkpoint)) = (self.format, self.checkpoint.take())
                {
                    // A prune while the file was read removed events it should hold.
                    if self.store.audit_bounds().await?.pruned_seq != checkpoint.pruned_seq {
                        return Err(ExportError::PrunedMeanwhile);
                    }
                    checkpoint.events = self.events;
                    checkpoint.events_sha256 =
                        hex::encode(std::mem::take(&mut self.events_digest).finalize());
                    if let Some(key) = &self.key {
                        key.sign(&mut checkpoint);
                    }
                    serde_json::to_writer(&mut out, &CheckpointLine { checkpoint })
                        .map_err(std::io::Error::other)?;
                    writeln!(out)?;
                }
            }
        }
        Ok(Some((out, page.len())))
    }
}

/// Writes every event matching `filter` to `out`, then (JSON lines) the checkpoint; returns how
/// many events.
pub async fn export(
    store: &Store,
    filter: AuditFilter,
    format: Format,
    key: Option<&SigningKey>,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut exporter = Exporter::start(store, filter, format, key).await?;
    let mut written = 0;
    while let Some((chunk, events)) = exporter.next_chunk().await? {
        out.write_all(&chunk)?;
        written += events as u64;
    }
    out.flush()?;
    Ok(written)
}

fn csv_row(event: &AuditEvent) -> String {
    let seq = event.seq.to_string();
    let fields: [&str; 12] = [
        &seq,
        &event.at,
        &event.kind,
        &event.actor,
        &event.via,
        event.upstream.as_deref().unwrap_or_default(),
        event.tool.as_deref().unwrap_or_default(),
        event.call_id.as_deref().unwrap_or_default(),
        event.args_digest.as_deref().unwrap_or_default(),
        event.detail.as_deref().unwrap_or_default(),
        &event.prev_hash,
        &event.hash,
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled.
/// A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a tab or carriage return
/// before one) gets a leading `'`.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\nthen"), "\"say \"\"hi\"\"\nthen\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
