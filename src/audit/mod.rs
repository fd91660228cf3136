//! The audit log: an append-only, hash-chained record of every call and what became of it, and of
//! what people and the system did around them.
//!
//! - A parked call's steps (parked, each vote, each transition, how it ended) are written in the
//!   same transaction as the change they record, so a change that cannot be audited does not
//!   happen (fail closed: the call is refused, the approval answers 503).
//! - Calls the policy decides alone (allowed, denied, rate-limited) and how an allowed one ended
//!   (completed with the result's size, SHA-256, duration and `isError`; failed; outcome unknown)
//!   go through [`AuditWriter`], which appends them in batches off the proxy path. An allowed call
//!   is forwarded only once its event is queued.
//! - Policies loaded at start-up and each reload (with the file's SHA-256), sign-ins, failed
//!   sign-ins (capped per hour: [`sign_ins`]), user and token changes ([`record`]).
//!
//! Results are never recorded, only their size and digest; arguments only as their digest.
//!
//! Each event's hash is the SHA-256 of the previous event's hash, a newline, and the event's
//! canonical encoding: a JSON array of its fields in a fixed order (`seq`, `at`, `kind`, `actor`,
//! `via`, `upstream`, `tool`, `call_id`, `args_digest`, `detail`). Numbers run without gaps from
//! 1, and the chain starts from 64 zeros. [`verify`] walks it and names the first event that does
//! not fit: edited (its hash), deleted (a missing number), inserted or reordered (its link to the
//! one before), or cut off at the end (the stored head).

pub mod checkpoint;
pub mod export;
pub mod retention;
pub mod sign_ins;
mod verify;
pub mod writer;

pub use crate::domain::{AuditEvent, GENESIS, event_hash};
pub use checkpoint::{Checkpoint, SigningKey};
pub use verify::{
    Broken, ExportFault, Verified, VerifiedExport, VerifyError, verify, verify_export,
};
pub use writer::{AuditWriter, Entry, NotRecorded};

use crate::store::{NewAuditEvent, Store, StoreError};

/// Records an event that is not a step of a call (a sign-in, a user or token change), now, as
/// `actor`.
pub async fn record(
    store: &Store,
    kind: &str,
    actor: &crate::domain::Actor,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    let at = crate::domain::Timestamp::now().text();
    store
        .audit(&NewAuditEvent {
            at: &at,
            kind,
            actor: actor.name(),
            via: actor.via().as_str(),
            upstream: None,
            tool: None,
            call_id: None,
            args_digest: None,
            detail,
        })
        .await
}
