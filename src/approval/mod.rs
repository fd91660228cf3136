//! The approval queue: a `tools/call` whose rule is `require_approval` is parked here until
//! reviewers decide, then released to the upstream exactly once, or refused. This module owns a
//! parked call's whole life; the MCP face only renders what became of it.
//!
//! - **Park** ([`ApprovalQueue::park`]). The call is committed to the store as `pending` (its
//!   arguments as sent, their canonical SHA-256, the rule as it was, its notifications) before
//!   anything else happens.
//! - **Wait** ([`Parked::fate`]). The agent's request waits; it ends in a [`Fate`]: approved (a
//!   [`Release`]), refused with a text (rejected, expired, Airlock stopping), or left (the agent
//!   cancelled, hung up, or ended its session: the call is withdrawn).
//! - **Decide** ([`ApprovalQueue::decide`]). Reviewers approve (counted once each, until the rule's
//!   quorum) or reject, through the dashboard, email links, the API and the CLI, all by this one
//!   call. A decision is a conditional update on `status = 'pending'`: the first to win decides,
//!   the rest get "not pending".
//! - **Wake.** A decision made in this process wakes the parked request at once; one made
//!   elsewhere (the CLI writing the database, another instance) is noticed by a poll of the store
//!   every [`POLL`] (and `LISTEN` on PostgreSQL), which also repairs any wake-up that was missed.
//! - **Release.** The waiting task moves its call `approved → forwarding` (one winner), reads the
//!   stored arguments back, checks them against the approved digest, and only then holds the
//!   [`Release`] that lets it send them, once.
//! - **Fail closed.** Timeout expires the call (a system denial); a cancel, a closed stream or a
//!   deleted session withdraws it; a restart abandons what the previous run held ([`recovery`]).
//!   None of these is ever forwarded. The full state machine is [`crate::domain::CallStatus`].

pub mod decide;
mod park;
mod parked;
mod queue;
mod recovery;
mod rule;
mod tasks;
mod view;

pub use decide::{DecideError, Decided, Decision, Reviewer};
pub use park::{Announce, Announcement, ParkError, ParkRequest};
pub use parked::{Fate, Parked, Release, Requester, expiry_text, fate_text};
pub use queue::ApprovalQueue;
pub use recovery::{RecoveryError, default_instance_id};
pub use rule::RuleSnapshot;
pub use tasks::TaskCall;
pub use view::CallView;

/// How often the store is checked for decisions made outside this process.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `seconds` as a person reads a countdown: `9 min 5 s left`, or `expired`.
pub fn time_left(seconds: i64) -> String {
    match seconds {
        s if s <= 0 => "expired".to_owned(),
        s if s < 60 => format!("{s} s left"),
        s if s < 3600 => format!("{} min {} s left", s / 60, s % 60),
        s => format!("{} h {} min left", s / 3600, (s % 3600) / 60),
    }
}
