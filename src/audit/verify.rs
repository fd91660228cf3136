//! Walking the chain.

use super::{AuditEvent, GENESIS};
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

/// Walks every event in order and checks each against the one before and the stored head.
pub async fn verify(store: &Store) -> Result<Verified, VerifyError> {
    let mut expected_seq = 1;
    let mut previous_hash = GENESIS.to_owned();
    let mut after = 0;
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
        events: last,
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
