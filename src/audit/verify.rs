//! Walking the chain: in the database ([`verify`]), or in an exported file with no database at all
//! ([`verify_export`]).

use std::io::BufRead;

use sha2::{Digest, Sha256};

use super::AuditEvent;
use super::checkpoint::{Checkpoint, CheckpointLine};
use crate::store::{AuditBounds, Store, StoreError};

/// Events read per query while verifying.
const PAGE: u32 = 1000;

/// An intact chain.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub events: i64,
    pub head: String,
}

/// The first place the chain does not hold, in words that name the event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Broken {
    #[error("audit event {seq} was edited: its content does not match its hash")]
    Edited { seq: i64 },
    #[error("audit event {expected} is missing (deleted?); the next one is {found}")]
    Missing { expected: i64, found: i64 },
    #[error(
        "audit event {seq} does not follow event {previous}: events were reordered, inserted, or the one before was replaced"
    )]
    Unlinked { seq: i64, previous: i64 },
    #[error("the newest audit events after {last} were deleted: the chain's head says {head}")]
    Truncated { last: i64, head: i64 },
    #[error("the audit chain's head does not match its newest event {last} (edited?)")]
    HeadMismatch { last: i64 },
    #[error(
        "the log starts after event {seq}, but no kept `pruned` event records that removal: the oldest events were deleted"
    )]
    UnrecordedPrune { seq: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Walks every kept event in order (from the last one retention removed) up to the head as it was
/// when the walk began (events appended meanwhile are not looked at), and checks each against the
/// one before and the head. A removal by retention must be recorded by a `pruned` event in the
/// kept chain naming the same event and hash. A prune that runs during the walk starts it again.
pub async fn verify(store: &Store) -> Result<Verified, VerifyError> {
    let mut attempts = 0;
    loop {
        let bounds = store.audit_bounds().await?;
        match walk(store, &bounds).await {
            Err(VerifyError::Broken(_))
                if attempts < 3 && store.audit_bounds().await?.pruned_seq != bounds.pruned_seq =>
            {
                attempts += 1;
            }
            outcome => return outcome,
        }
    }
}

async fn walk(store: &Store, bounds: &AuditBounds) -> Result<Verified, VerifyError> {
    let mut previous_hash = bounds.pruned_hash.clone();
    let mut expected_seq = bounds.pruned_seq.saturating_add(1);
    let mut after = bounds.pruned_seq;
    let mut prune_recorded = bounds.pruned_seq == 0;
    let prune_note = format!(" to {} removed ", bounds.pruned_seq);
    'pages: loop {
        let page: Vec<AuditEvent> = store.audit_events_after(after, PAGE).await?;
        for event in &page {
            if event.seq > bounds.head_seq {
                break 'pages;
            }
            check(event, expected_seq, &previous_hash)?;
            if event.kind == "pruned"
                && event.detail.as_deref().is_some_and(|d| {
                    d.contains(&prune_note) && d.ends_with(bounds.pruned_hash.as_str())
                })
            {
                prune_recorded = true;
            }
            expected_seq = event.seq.saturating_add(1);
            previous_hash.clone_from(&event.hash);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => break,
        }
    }
    let last = expected_seq - 1;
    if bounds.head_seq > last {
        return Err(Broken::Truncated {
            last,
            head: bounds.head_seq,
        }
        .into());
    }
    if bounds.head_seq != last || bounds.head_hash != previous_hash {
        return Err(Broken::HeadMismatch { last }.into());
    }
    if !prune_recorded {
        return Err(Broken::UnrecordedPrune {
            seq: bounds.pruned_seq,
        }
        .into());
    }
    Ok(Verified {
        events: last - bounds.pruned_seq,
        head: previous_hash,
    })
}

fn check(event: &AuditEvent, expected_seq: i64, previous_hash: &str) -> Result<(), Broken> {
    if event.seq != expected_seq {
        return Err(Broken::Missing {
            expected: expected_seq,
            found: event.seq,
        });
    }
    if event.prev_hash != previous_hash {
        return Err(Broken::Unlinked {
            seq: event.seq,
            previous: event.seq.saturating_sub(1),
        });
    }
    if event.expected_hash() != event.hash {
        return Err(Broken::Edited { seq: event.seq });
    }
    Ok(())
}

/// What is wrong with an exported file, besides a broken chain.
#[derive(Debug, thiserror::Error)]
pub enum ExportFault {
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error("line {line}: {message}")]
    Unreadable { line: usize, message: String },
    #[error(
        "the file does not end with a checkpoint line: it was cut short, or is not a JSON-lines audit export"
    )]
    NoCheckpoint,
    #[error(
        "the events end at {last} but the checkpoint says the log ran to {head}: events are missing"
    )]
    ShortOfHead { last: i64, head: i64 },
    #[error("the checkpoint's hash does not match the last event {last}")]
    HeadMismatch { last: i64 },
    #[error("the checkpoint is not signed (no [audit] signing_key_file when it was made)")]
    Unsigned,
    #[error("the checkpoint's signature does not hold: the file or its checkpoint was changed")]
    BadSignature,
    #[error("the checkpoint is signed by {found}, not by the key given ({expected})")]
    OtherKey { expected: String, found: String },
    #[error(
        "the checkpoint counts {expected} events with other hashes than the {found} in the file: lines were removed, added or changed"
    )]
    EventsDiffer { expected: u64, found: u64 },
    #[error("this export was filtered ({filter}): check it with --partial")]
    Filtered { filter: String },
}

/// A checked export: how many events, the head it proves, and who signed it.
#[derive(Debug)]
pub struct VerifiedExport {
    pub events: u64,
    pub checkpoint: Checkpoint,
}

/// Checks an exported JSON-lines file on its own. Every event must match its hash, and the
/// events' number and hashes must be those the checkpoint counts; the checkpoint must be signed
/// by `public_key` (a key in the file alone proves nothing: anyone can sign a forged file with a
/// key of their own). With `partial` false (a whole export) the events must also run without a
/// gap from where the log starts to the checkpoint's head.
pub fn verify_export(
    file: impl BufRead,
    public_key: &str,
    partial: bool,
) -> Result<VerifiedExport, ExportFault> {
    let read = read_export(file, partial)?;
    let checkpoint = read.checkpoint.clone().ok_or(ExportFault::NoCheckpoint)?;
    if !partial {
        covers_the_log(&read, &checkpoint)?;
    }
    if checkpoint.events != read.count || checkpoint.events_sha256 != read.digest {
        return Err(ExportFault::EventsDiffer {
            expected: checkpoint.events,
            found: read.count,
        });
    }
    match checkpoint.signature_holds() {
        Ok(true) => {}
        Ok(false) if checkpoint.signature.is_none() => return Err(ExportFault::Unsigned),
        _ => return Err(ExportFault::BadSignature),
    }
    let found = checkpoint.public_key.as_deref().unwrap_or_default();
    if !public_key.trim().eq_ignore_ascii_case(found) {
        return Err(ExportFault::OtherKey {
            expected: public_key.trim().to_owned(),
            found: found.to_owned(),
        });
    }
    Ok(VerifiedExport {
        events: read.count,
        checkpoint,
    })
}

/// An export read line by line: each event's own hash checked (and, unless `partial`, its link to
/// the one before), and what the checkpoint must agree with.
struct ExportRead {
    checkpoint: Option<Checkpoint>,
    count: u64,
    /// SHA-256 of the events' hashes, one per line.
    digest: String,
    /// The first event's number and link.
    first: Option<(i64, String)>,
    last: Option<AuditEvent>,
}

fn read_export(file: impl BufRead, partial: bool) -> Result<ExportRead, ExportFault> {
    let mut digest = Sha256::new();
    let mut read = ExportRead {
        checkpoint: None,
        count: 0,
        digest: String::new(),
        first: None,
        last: None,
    };
    for (i, line) in file.lines().enumerate() {
        let unreadable = |message: String| ExportFault::Unreadable {
            line: i + 1,
            message,
        };
        let line = line.map_err(|e| unreadable(e.to_string()))?;
        if read.checkpoint.is_some() {
            return Err(unreadable("a line after the checkpoint".to_owned()));
        }
        // Each line must be exactly what the export wrote: no added fields, no reformatting.
        let exact = |written: Result<String, serde_json::Error>| match written {
            Ok(written) if written == line => Ok(()),
            _ => Err(unreadable(
                "not a line as Airlock writes it (changed, reformatted or with added fields)"
                    .to_owned(),
            )),
        };
        if line.starts_with("{\"checkpoint\"") {
            let parsed: CheckpointLine =
                serde_json::from_str(&line).map_err(|e| unreadable(e.to_string()))?;
            exact(serde_json::to_string(&parsed))?;
            read.checkpoint = Some(parsed.checkpoint);
            continue;
        }
        let event: AuditEvent =
            serde_json::from_str(&line).map_err(|e| unreadable(e.to_string()))?;
        if event.expected_hash() != event.hash {
            return Err(Broken::Edited { seq: event.seq }.into());
        }
        exact(serde_json::to_string(&event))?;
        digest.update(event.hash.as_bytes());
        digest.update(b"\n");
        match &read.last {
            Some(before) if !partial => {
                check(&event, before.seq.saturating_add(1), &before.hash)?;
            }
            Some(_) => {}
            None => read.first = Some((event.seq, event.prev_hash.clone())),
        }
        read.count += 1;
        read.last = Some(event);
    }
    read.digest = hex::encode(digest.finalize());
    Ok(read)
}

/// A whole export (not `partial`) is the whole log: unfiltered, from where the log starts (its
/// beginning, or the last pruned event) to the head the checkpoint names.
fn covers_the_log(read: &ExportRead, checkpoint: &Checkpoint) -> Result<(), ExportFault> {
    if !checkpoint.filter.is_empty() {
        return Err(ExportFault::Filtered {
            filter: checkpoint.filter.clone(),
        });
    }
    match &read.last {
        None if checkpoint.seq > checkpoint.pruned_seq => {
            return Err(ExportFault::ShortOfHead {
                last: checkpoint.pruned_seq,
                head: checkpoint.seq,
            });
        }
        None => {}
        Some(last) => {
            if last.seq != checkpoint.seq {
                return Err(ExportFault::ShortOfHead {
                    last: last.seq,
                    head: checkpoint.seq,
                });
            }
            if last.hash != checkpoint.hash {
                return Err(ExportFault::HeadMismatch { last: last.seq });
            }
        }
    }
    if let Some((seq, prev_hash)) = &read.first {
        let expected = checkpoint.pruned_seq.saturating_add(1);
        if *seq != expected {
            return Err(Broken::Missing {
                expected,
                found: *seq,
            }
            .into());
        }
        if *prev_hash != checkpoint.pruned_hash {
            return Err(Broken::Unlinked {
                seq: *seq,
                previous: seq.saturating_sub(1),
            }
            .into());
        }
    }
    Ok(())
}
