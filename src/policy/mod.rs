//! Per-tool policy: the PolicyLayer-compatible model, its strict loader, evaluation and rate limits.
//!
//! A policy file (JSON, or the same document in TOML) gives each tool of one upstream a rule
//! (allow, optionally rate-limited; deny with a reason; or require a human approval) and a default
//! for the tools it does not list. The pieces, in the order a call meets them:
//!
//! - [`PolicyHandle`] (`reload.rs`) holds the policy in force for an upstream and swaps in a new
//!   one when its file changes; a broken edit keeps the last good policy and shows as
//!   [`PolicyStatus::Stale`].
//! - [`Policy::evaluate`] (`evaluate.rs`) turns a `tools/call` into a [`Verdict`] with the exact
//!   text the agent sees, taking a [`Slot`] from the [`RateLimiter`] (`rate_limit.rs`) for
//!   rate-limited tools.
//! - [`Policy::describe`] and [`Policy::warnings`] (`explain.rs`) are what `airlock check` prints,
//!   with the hints of [`risk`] about the tools an upstream offers.
//!
//! Invariants: a [`Policy`] only exists validated (`load.rs` rejects unknown keys, bad values and
//! settings that do not fit the rule's action, naming file, key path and fix), so evaluation never
//! fails; and an upstream without a policy file gets [`Policy::require_approval_by_default`], so
//! nothing runs without a human until someone writes a policy.

mod error;
mod evaluate;
mod explain;
mod load;
mod methods;
mod model;
mod rate_limit;
mod reload;
pub mod risk;
mod rules;

pub use error::{Location, PolicyError};
pub use evaluate::{
    CallSite, Judge, Reservation, ResolvedRule, Sensitivity, Verdict, rate_limited,
};
pub use load::PolicyFormat;
pub use methods::{POLICY_REFUSAL, Subject, glob_match};
pub use model::{
    ApprovalRule, DEFAULT_APPROVAL_TIMEOUT, DefaultAction, Policy, PolicyOrigin, RateLimit,
    RateScope, Rule, ToolEntry,
};
pub use rate_limit::{Counted, RateLimiter, Slot};
pub use reload::{PolicyHandle, PolicyStatus, ReloadOutcome};
pub use rules::{CondRule, Condition, CounterKey, CounterValues, Mode, RuleAction, Window};
