//! Reviewers' decisions, whichever face they come through (dashboard, email link, API, CLI): all
//! of them call [`ApprovalQueue::decide`] and nothing else. It checks who may decide (a user whose
//! role decides, admin or approver, and who is among the rule's `reviewers`, emails or `[groups]`
//! names, when it lists any; the operator at the CLI has the config and the database, so the list
//! does not bind them), records the decision (spending the review link it came through in the
//! same transaction), and wakes the parked call.

use std::collections::BTreeMap;

use super::{ApprovalQueue, RuleSnapshot};
use crate::domain::{Action, Actor, CallId, CallStatus, Timestamp, Via};
use crate::store::{CallRow, DecisionRecord, StoreError, User, Vote};

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
            Reviewer::Operator => Actor::OPERATOR.name(),
        }
    }
}

/// One reviewer's decision on one call.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub action: Action,
    pub reviewer: Reviewer<'a>,
    /// The face it came through: API, CLI, dashboard, email.
    pub via: Via,
    pub reason: Option<&'a str>,
    /// The argument digest the reviewer saw, when the face knows it: a mismatch decides nothing.
    pub args_digest: Option<&'a str>,
    /// The SHA-256 of the review link's token it came through: spent with the decision, and a
    /// link already spent decides nothing.
    pub link: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no call with id {0}")]
    NotFound(CallId),
    #[error("call {id} is not pending: {status}")]
    NotPending { id: CallId, status: CallStatus },
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "{reviewer} has already approved call {id}; it still needs {} more approval(s) from other reviewers",
        need.saturating_sub(*have)
    )]
    AlreadyApproved {
        reviewer: String,
        id: CallId,
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
    #[error("this link was already used; it works once")]
    LinkUsed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// The quorum is reached: the call is released to its agent's request.
    Released,
    /// Counted; `need - have` more approvals are needed.
    Counted {
        have: u32,
        need: u32,
    },
    Rejected,
}

impl ApprovalQueue {
    /// Decides call `id` as `decision` says: an approval counts once per reviewer until the
    /// rule's quorum; one rejection (which needs a reason) decides. A decision that changed the
    /// call wakes its parked request.
    #[tracing::instrument(name = "decide", skip_all, fields(call = %id, reviewer = decision.reviewer.name(), action = decision.action.as_str(), via = %decision.via))]
    pub async fn decide(
        &self,
        id: &CallId,
        decision: Decision<'_>,
    ) -> Result<Decided, DecideError> {
        let row = check(self, id, &decision).await?;
        let reason = non_blank(decision.reason);
        if decision.action == Action::Reject && reason.is_none() {
            return Err(DecideError::ReasonRequired);
        }
        let actor = Actor::new(decision.reviewer.name(), decision.via);
        let vote = self
            .store
            .decide(&DecisionRecord {
                call: id,
                action: decision.action,
                actor: &actor,
                reason,
                link: decision.link,
                pickup: self.pickup(),
            })
            .await?;
        let decided = match vote {
            Vote::Released => Decided::Released,
            Vote::Rejected => Decided::Rejected,
            Vote::Counted { have, need } => Decided::Counted { have, need },
            Vote::Duplicate { have, need } => {
                return Err(DecideError::AlreadyApproved {
                    reviewer: actor.name().to_owned(),
                    id: id.clone(),
                    have,
                    need,
                });
            }
            Vote::NotPending(status) => {
                return Err(DecideError::NotPending {
                    id: id.clone(),
                    status,
                });
            }
            Vote::LinkUsed => return Err(DecideError::LinkUsed),
            Vote::NotFound => return Err(DecideError::NotFound(id.clone())),
        };
        tracing::info!(?decided, "decision recorded");
        let entered = match decided {
            Decided::Released => Some(CallStatus::Approved),
            Decided::Rejected => Some(CallStatus::Rejected),
            Decided::Counted { .. } => None,
        };
        if let Some(status) = entered {
            let waited = row.created_at.seconds_until(Timestamp::now()).max(0.0);
            self.metrics
                .approval_decision(status.as_str(), Some(waited));
        }
        self.wake(id);
        Ok(decided)
    }
}

/// The checks every decision shares before it is recorded: the reason fits, the call exists and
/// is pending, the reviewer may decide it, and (when given) the digest is the call's.
async fn check(
    queue: &ApprovalQueue,
    id: &CallId,
    decision: &Decision<'_>,
) -> Result<CallRow, DecideError> {
    if let Some(reason) = decision.reason
        && reason.len() > MAX_REASON
    {
        return Err(DecideError::ReasonTooLong(reason.len()));
    }
    let row = queue
        .store
        .call(id)
        .await?
        .ok_or_else(|| DecideError::NotFound(id.clone()))?;
    let rule = RuleSnapshot::read(&row.rule_json).ok_or_else(|| {
        DecideError::Forbidden(format!(
            "call {id} has an unreadable rule; nobody can approve it"
        ))
    })?;
    may_decide(decision.reviewer, &rule, &queue.config.groups)?;
    if row.status != CallStatus::Pending {
        return Err(DecideError::NotPending {
            id: id.clone(),
            status: row.status,
        });
    }
    // Past its expiry a call is dead even before the expiry is written: approving it could only
    // park an approval nobody is waiting for. (The store checks again, in the decision's
    // transaction.)
    if row.is_past_expiry(Timestamp::now()) {
        return Err(DecideError::NotPending {
            id: id.clone(),
            status: CallStatus::Expired,
        });
    }
    if let Some(digest) = decision.args_digest
        && row.args_sha256 != *digest
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
