//! Exporting the audit log: JSON lines or CSV, filtered, oldest first, read a page at a time and
//! written as it is read, so memory stays flat however long the log is. Each event carries its
//! `prev_hash` and `hash`, so an export can be checked link by link without the database.

use std::io::Write;

use super::AuditEvent;
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
}

/// Writes every event matching `filter` to `out`; returns how many.
pub async fn export(
    store: &Store,
    filter: &AuditFilter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    if format == Format::Csv {
        writeln!(out, "{}", COLUMNS.join(","))?;
    }
    let mut after = 0;
    let mut written = 0;
    loop {
        let page = store
            .audit_page(filter, AuditOrder::After(after), PAGE)
            .await?;
        for event in &page {
            match format {
                Format::Jsonl => {
                    serde_json::to_writer(&mut *out, event).map_err(std::io::Error::other)?;
                    writeln!(out)?;
                }
                Format::Csv => writeln!(out, "{}", csv_row(event))?,
            }
            written += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => break,
        }
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
/// A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) gets a leading `'`.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
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
