//! The approval queue: a `tools/call` whose rule is `require_approval` is parked here until
//! reviewers decide, then released to the upstream exactly once, or refused.
//!
//! - **Park.** The call is committed to the store as `pending` (its arguments as sent, their
//!   canonical SHA-256, the rule as it was) before anything else happens. The agent's request stays
//!   open; the MCP face (`mcp::parked`) keeps it alive and tells the agent what happens.
//! - **Decide.** Reviewers approve (counted once each, until the rule's quorum) or reject, through
//!   the API, the CLI and later the dashboard and email links, all via [`decide`]. A decision is a
//!   conditional update on `status = 'pending'`: the first to win decides, the rest get "not
//!   pending".
//! - **Wake.** A decision made in this process wakes the parked request at once ([`ApprovalQueue::
//!   wake`]); one made elsewhere (the CLI writing the database) is noticed by a poll of the store
//!   every [`POLL`], which also repairs any wake-up that was missed.
//! - **Release.** The parked request moves its call `approved → forwarding` (one winner), reads the
//!   stored arguments back, checks them against the approved digest, and only then sends them.
//! - **Fail closed.** Timeout expires the call (a system denial); a cancel, a closed stream or a
//!   deleted session withdraws it; a restart abandons what the previous run held. None of these is
//!   ever forwarded. The full state machine is in [`state`].

mod args;
pub mod decide;
mod queue;
mod recovery;
mod state;
mod view;

pub use args::digest as args_digest;
pub use decide::{DecideError, Decision, Reviewer};
pub use queue::{ApprovalQueue, ParkError, ParkRequest, Parked, RuleSnapshot, expiry_text};
pub use recovery::{RecoveryError, default_instance_id};
pub use state::{CallStatus, Transition};
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
