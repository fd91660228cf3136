//! Walking the chain: in the database ([`verify`]), or in an exported file with no database at all
//! ([`verify_export`]).

use std::io::BufRead;

use super::AuditEvent;
use super::checkpoint::{Checkpoint, CheckpointLine};
use crate::store::{Store, StoreError};

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
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Walks every kept event in order (from the last one retention removed) and checks each against
/// the one before and the stored head.
pub async fn verify(store: &Store) -> Result<Verified, VerifyError> {
    let (pruned_seq, mut previous_hash) = store.audit_pruned().await?;
    let mut expected_seq = pruned_seq + 1;
    let mut after = pruned_seq;
    loop {
        let page: Vec<AuditEvent> = store.audit_events_after(after, PAGE).await?;
        for event in &page {
            check(event, expected_seq, &previous_hash)?;
            expected_seq = event.seq + 1;
            previous_hash.clone_from(&event.hash);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => break,
        }
    }
    let last = expected_seq - 1;
    let (head_seq, head_hash) = store.audit_head().await?;
    if head_seq > last {
        return Err(Broken::Truncated {
            last,
            head: head_seq,
        }
        .into());
    }
    if head_seq != last || head_hash != previous_hash {
        return Err(Broken::HeadMismatch { last }.into());
    }
    Ok(Verified {
        events: last - pruned_seq,
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
            previous: event.seq - 1,
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
}

/// A checked export: how many events, the head it proves, and who signed it.
#[derive(Debug)]
pub struct VerifiedExport {
    pub events: i64,
    pub checkpoint: Checkpoint,
}

/// Checks an exported JSON-lines file on its own. With `partial` false (a whole export) the
/// events must run without a gap from where the log starts to the checkpoint's head; with
/// `partial` (a filtered export) each event is checked against its own hash only. The
/// checkpoint's signature must hold, and be made by `public_key` when one is given.
pub fn verify_export(
    file: impl BufRead,
    public_key: Option<&str>,
    partial: bool,
) -> Result<VerifiedExport, ExportFault> {
    let mut checkpoint = None;
    let mut count = 0;
    // The first event's number and link, checked against the checkpoint at the end.
    let mut first: Option<(i64, String)> = None;
    let mut previous: Option<AuditEvent> = None;
    for (i, line) in file.lines().enumerate() {
        let unreadable = |message: String| ExportFault::Unreadable {
            line: i + 1,
            message,
        };
        let line = line.map_err(|e| unreadable(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        if checkpoint.is_some() {
            return Err(unreadable("a line after the checkpoint".to_owned()));
        }
        if line.starts_with("{\"checkpoint\"") {
            let parsed: CheckpointLine =
                serde_json::from_str(&line).map_err(|e| unreadable(e.to_string()))?;
            checkpoint = Some(parsed.checkpoint);
            continue;
        }
        let event: AuditEvent =
            serde_json::from_str(&line).map_err(|e| unreadable(e.to_string()))?;
        if event.expected_hash() != event.hash {
            return Err(Broken::Edited { seq: event.seq }.into());
        }
        match &previous {
            Some(before) if !partial => check(&event, before.seq + 1, &before.hash)?,
            Some(_) => {}
            None => first = Some((event.seq, event.prev_hash.clone())),
        }
        count += 1;
        previous = Some(event);
    }
    let checkpoint = checkpoint.ok_or(ExportFault::NoCheckpoint)?;
    if !partial {
        match &previous {
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
        // The first event follows where the log starts (its beginning, or the last pruned).
        if let Some((seq, prev_hash)) = first {
            if seq != checkpoint.pruned_seq + 1 {
                return Err(Broken::Missing {
                    expected: checkpoint.pruned_seq + 1,
                    found: seq,
                }
                .into());
            }
            if prev_hash != checkpoint.pruned_hash {
                return Err(Broken::Unlinked {
                    seq,
                    previous: seq - 1,
                }
                .into());
            }
        }
    }
    match checkpoint.signature_holds() {
        Ok(true) => {}
        Ok(false) if checkpoint.signature.is_none() => return Err(ExportFault::Unsigned),
        _ => return Err(ExportFault::BadSignature),
    }
    if let (Some(expected), Some(found)) = (public_key, checkpoint.public_key.as_deref())
        && !expected.trim().eq_ignore_ascii_case(found)
    {
        return Err(ExportFault::OtherKey {
            expected: expected.trim().to_owned(),
            found: found.to_owned(),
        });
    }
    Ok(VerifiedExport {
        events: count,
        checkpoint,
    })
}
