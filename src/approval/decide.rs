//! Reviewers' decisions, whichever face they come through (API, CLI, later dashboard and email).
//! Who may decide is checked here: a user whose role decides (admin, approver) and who is among
//! the rule's `reviewers` (emails or `[groups]` names) when it lists any. The operator at the CLI
//! (`cli`) has the config and the database, so the reviewer list does not bind them.

use std::collections::BTreeMap;

use super::{CallStatus, RuleSnapshot};
use crate::store::{Actor, CallRow, Store, StoreError, User, Vote};

/// The longest reason a decision may carry, in bytes (it is stored, audited and shown to the
/// agent).
pub const MAX_REASON: usize = 2000;

/// Who is deciding.
#[derive(Debug, Clone, Copy)]
pub enum Reviewer<'a> {
    User(&'a User),
    /// The operator, at the command line.
    Operator,
}

impl Reviewer<'_> {
    /// The name a decision is recorded under (and shown to the agent on rejection).
    pub fn name(&self) -> &str {
        match self {
            Reviewer::User(user) => &user.email,
            Reviewer::Operator => "cli",
        }
    }
}

/// One reviewer's decision on one call.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub reviewer: Reviewer<'a>,
    /// The face it came through: `api`, `cli`, `dashboard`, `email`.
    pub via: &'a str,
    pub reason: Option<&'a str>,
    /// The argument digest the reviewer saw, when the face knows it: a mismatch decides nothing.
    pub args_digest: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no call with id {0}")]
    NotFound(String),
    #[error("call {id} is not pending: {status}")]
    NotPending { id: String, status: CallStatus },
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "{reviewer} has already approved call {id}; it still needs {} more approval(s) from other reviewers",
        need.saturating_sub(*have)
    )]
    AlreadyApproved {
        reviewer: String,
        id: String,
        have: u32,
        need: u32,
    },
    #[error(
        "the call's arguments are not the ones reviewed (digest mismatch); nothing was decided: look at the call again"
    )]
    DigestMismatch,
    #[error("a rejection needs a reason; the agent is shown it")]
    ReasonRequired,
    #[error("the reason is too long ({0} bytes; at most {MAX_REASON})")]
    ReasonTooLong(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approved {
    /// The quorum is reached: the call is released to its agent's request.
    Released,
    /// Counted; `need - have` more approvals are needed.
    Counted { have: u32, need: u32 },
}

/// Approves call `id` as `decision.reviewer`.
pub async fn approve(
    store: &Store,
    groups: &BTreeMap<String, Vec<String>>,
    id: &str,
    decision: Decision<'_>,
) -> Result<Approved, DecideError> {
    check(store, groups, id, &decision).await?;
    let release = CallStatus::Pending
        .to(CallStatus::Approved)
        .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
    let actor = Actor {
        name: decision.reviewer.name(),
        via: decision.via,
    };
    match store
        .approve(id, actor, non_blank(decision.reason), release)
        .await?
    {
        Vote::Released => Ok(Approved::Released),
        Vote::Counted { have, need } => Ok(Approved::Counted { have, need }),
        Vote::Duplicate { have, need } => Err(DecideError::AlreadyApproved {
            reviewer: actor.name.to_owned(),
            id: id.to_owned(),
            have,
            need,
        }),
        Vote::NotPending(status) => Err(DecideError::NotPending {
            id: id.to_owned(),
            status,
        }),
        Vote::NotFound => Err(DecideError::NotFound(id.to_owned())),
    }
}

/// Rejects call `id`; one rejection decides, whatever the quorum. The reason is required.
pub async fn reject(
    store: &Store,
    groups: &BTreeMap<String, Vec<String>>,
    id: &str,
    decision: Decision<'_>,
) -> Result<(), DecideError> {
    check(store, groups, id, &decision).await?;
    let Some(reason) = non_blank(decision.reason) else {
        return Err(DecideError::ReasonRequired);
    };
    let transition = CallStatus::Pending
        .to(CallStatus::Rejected)
        .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
    let actor = Actor {
        name: decision.reviewer.name(),
        via: decision.via,
    };
    if store
        .transition(id, transition, actor, Some(reason))
        .await?
    {
        return Ok(());
    }
    // Lost the race: say what the call became instead.
    let status = store
        .call(id)
        .await?
        .map(|row| row.status())
        .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
    Err(DecideError::NotPending {
        id: id.to_owned(),
        status,
    })
}

/// The checks every decision shares: the call exists and is pending, the reviewer may decide it,
/// and (when given) the digest is the call's.
async fn check(
    store: &Store,
    groups: &BTreeMap<String, Vec<String>>,
    id: &str,
    decision: &Decision<'_>,
) -> Result<CallRow, DecideError> {
    if let Some(reason) = decision.reason
        && reason.len() > MAX_REASON
    {
        return Err(DecideError::ReasonTooLong(reason.len()));
    }
    let row = store
        .call(id)
        .await?
        .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
    let rule: RuleSnapshot = serde_json::from_str(&row.rule_json).map_err(|_| {
        DecideError::Forbidden(format!(
            "call {id} has an unreadable rule; nobody can approve it"
        ))
    })?;
    may_decide(decision.reviewer, &rule, groups)?;
    if row.status() != CallStatus::Pending {
        return Err(DecideError::NotPending {
            id: id.to_owned(),
            status: row.status(),
        });
    }
    // Past its expiry a call is dead even before the expiry is written: approving it could only
    // park an approval nobody is waiting for.
    if row.expires_at <= crate::store::timestamp(time::OffsetDateTime::now_utc()) {
        return Err(DecideError::NotPending {
            id: id.to_owned(),
            status: CallStatus::Expired,
        });
    }
    if let Some(digest) = decision.args_digest
        && digest != row.args_sha256
    {
        return Err(DecideError::DigestMismatch);
    }
    Ok(row)
}

/// Whether `reviewer` may decide calls under `rule`.
pub fn may_decide(
    reviewer: Reviewer<'_>,
    rule: &RuleSnapshot,
    groups: &BTreeMap<String, Vec<String>>,
) -> Result<(), DecideError> {
    let Reviewer::User(user) = reviewer else {
        return Ok(());
    };
    if !user.role().may_decide() {
        return Err(DecideError::Forbidden(format!(
            "{} is a {} and cannot decide calls",
            user.email,
            user.role().as_str()
        )));
    }
    if rule.reviewers.is_empty() {
        return Ok(());
    }
    let listed = rule.reviewers.iter().any(|name| {
        name.eq_ignore_ascii_case(&user.email)
            || groups
                .get(name)
                .is_some_and(|members| members.iter().any(|m| m.eq_ignore_ascii_case(&user.email)))
    });
    if listed {
        Ok(())
    } else {
        Err(DecideError::Forbidden(format!(
            "{} is not among the reviewers of {} ({})",
            user.email,
            rule.rule,
            rule.reviewers.join(", ")
        )))
    }
}

fn non_blank(reason: Option<&str>) -> Option<&str> {
    reason.map(str::trim).filter(|r| !r.is_empty())
}
