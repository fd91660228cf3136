//! A parked call's fate, from the commit to the one send: the whole wait-and-release state machine
//! of one call in this process.
//!
//! [`Parked::fate`] waits for whichever comes first: the agent cancels or goes away (the call is
//! withdrawn), Airlock stops (abandoned), the rule's timeout passes (expired, a system denial), or
//! a decision arrives (woken at once in this process, by the poll or PostgreSQL's `LISTEN`
//! otherwise). An approved call yields a [`Release`], which exists only for the one task that won
//! `approved → forwarding`, and only after the stored arguments were read back and found to hash
//! to the approved digest: whoever holds a `Release` sends the call, once, and records its
//! outcome with [`Release::finish`]. The MCP face renders the fate; it makes none of these moves.
//!
//! The wait is tied to a [`Requester`] (the request whose result it is), not to the call's row:
//! the queue and the store know the call by its id alone.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ApprovalQueue, RuleSnapshot};
use crate::domain::{Actor, AgentName, ArgsDigest, CallId, CallStatus, Transition};
use crate::store::{CallRow, Outcome, ResultSummary, StoreError};

/// The request a parked call's result goes back to.
pub trait Requester: Sync {
    /// Resolves when the request has ended (its client closed the connection).
    fn ended(&self) -> impl Future<Output = ()> + Send;

    fn has_ended(&self) -> bool;
}

/// Why the agent can no longer receive its call's result.
const CANCELLED: &str = "the agent cancelled the call";
const CLOSED: &str = "the agent closed its connection";
const SHUTTING_DOWN: &str =
    "Airlock is shutting down; the call was not approved and did not run; try again later";

/// How a parked call ended its wait.
pub enum Fate {
    /// Approved, and this task holds the one right to send it.
    Approved(Release),
    /// Not run; the agent is told this text.
    Refused(String),
    /// The agent cancelled or went away; `withdrawn` when this wait withdrew the call (it may
    /// already have been decided otherwise).
    Left { withdrawn: bool },
}

/// One parked call, held by the agent's open request. Dropping it stops waiting for the call (the
/// store keeps its row and history).
pub struct Parked {
    pub id: CallId,
    pub digest: ArgsDigest,
    pub rule: RuleSnapshot,
    /// When the call expires (the rule's timeout after it was parked).
    pub deadline: Instant,
    agent: AgentName,
    wake: Arc<Notify>,
    withdraw: CancellationToken,
    queue: Arc<ApprovalQueue>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.queue.remove_waiter(&self.id);
    }
}

/// The text of a call nobody approved in time.
pub fn expiry_text(timeout_secs: u64) -> String {
    format!("Not approved within {timeout_secs} s; not run")
}

impl Parked {
    pub(super) fn new(
        id: CallId,
        agent: AgentName,
        digest: ArgsDigest,
        rule: RuleSnapshot,
        deadline: Instant,
        (wake, withdraw): (Arc<Notify>, CancellationToken),
        queue: Arc<ApprovalQueue>,
    ) -> Self {
        Self {
            id,
            digest,
            rule,
            deadline,
            agent,
            wake,
            withdraw,
            queue,
        }
    }

    /// Waits for the call's fate; an approved call is claimed for sending before it is returned.
    /// Biased: a cancel or a hang-up that arrives with a decision wins over it.
    #[tracing::instrument(name = "fate", skip_all, fields(call = %self.id))]
    pub async fn fate(&self, requester: &impl Requester) -> Fate {
        loop {
            let row = tokio::select! {
                biased;
                () = self.withdraw.cancelled() => return self.leave(CANCELLED).await,
                () = requester.ended() => return self.leave(CLOSED).await,
                () = self.queue.shutdown.cancelled() => return self.abandon().await,
                () = tokio::time::sleep_until(self.deadline) => match self.expire().await {
                    Some(fate) => return fate,
                    // Decided just before the deadline: act on what was decided.
                    None => self.queue.store.call(&self.id).await,
                },
                () = self.wake.notified() => self.queue.store.call(&self.id).await,
            };
            let row = match row {
                Ok(Some(row)) if row.status == CallStatus::Pending => continue,
                Ok(Some(row)) => row,
                Ok(None) => {
                    tracing::error!("a parked call's row is gone; not run");
                    return Fate::Refused("The call's approval record is gone; not run".to_owned());
                }
                Err(e) => {
                    // The poll wakes us again; until the store answers, the call keeps waiting.
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read a parked call");
                    continue;
                }
            };
            self.queue.observe_decision(&row);
            if row.status != CallStatus::Approved {
                return Fate::Refused(fate_text(&row));
            }
            // The agent may have left between the decision and now: nobody could receive it.
            if self.withdraw.is_cancelled() {
                return self.leave(CANCELLED).await;
            }
            if requester.has_ended() {
                return self.leave(CLOSED).await;
            }
            return self.claim(&row).await;
        }
    }

    /// The timeout passed: `pending → expired`, a system denial. `None` when the call was
    /// decided first.
    async fn expire(&self) -> Option<Fate> {
        let why = expiry_text(self.rule.timeout_secs);
        let expired = self
            .queue
            .step(
                &self.id,
                CallStatus::Pending,
                CallStatus::Expired,
                &Actor::SYSTEM,
                Some(&why),
            )
            .await;
        match expired {
            Ok(true) => {
                tracing::info!("call expired without a decision");
                self.queue
                    .metrics
                    .approval_decision(CallStatus::Expired.as_str(), None);
                Some(Fate::Refused(why))
            }
            Ok(false) => None,
            Err(e) => {
                // Fail closed: not run, whatever the store says later.
                tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot record an expiry");
                Some(Fate::Refused(why))
            }
        }
    }

    /// The agent went away or cancelled: the call leaves the queue unless it is already on its way.
    async fn leave(&self, why: &str) -> Fate {
        match self
            .leave_from_open(&Actor::agent(&self.agent), CallStatus::Withdrawn, why)
            .await
        {
            Ok(true) => {
                tracing::info!(why, "parked call withdrawn");
                self.queue
                    .metrics
                    .approval_decision(CallStatus::Withdrawn.as_str(), None);
                Fate::Left { withdrawn: true }
            }
            Ok(false) => Fate::Left { withdrawn: false },
            Err(e) => {
                // Nobody waits for it any more, so it can never be forwarded; the sweep expires it.
                tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot record a withdrawal");
                Fate::Left { withdrawn: false }
            }
        }
    }

    /// Airlock is stopping while the call waits: it is abandoned, never forwarded later.
    async fn abandon(&self) -> Fate {
        if let Err(e) = self
            .leave_from_open(&Actor::SYSTEM, CallStatus::Abandoned, SHUTTING_DOWN)
            .await
        {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot record an abandoned call");
        }
        Fate::Refused(SHUTTING_DOWN.to_owned())
    }

    /// Moves the call from `pending` or `approved` to `to`; true if this caller did.
    async fn leave_from_open(
        &self,
        actor: &Actor,
        to: CallStatus,
        why: &str,
    ) -> Result<bool, StoreError> {
        for from in [CallStatus::Pending, CallStatus::Approved] {
            if self
                .queue
                .step(&self.id, from, to, actor, Some(why))
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Claims the approved call for sending (`approved → forwarding`, one winner) and reads back
    /// the stored arguments of `row` (the call as read when its approval woke us), checking they
    /// still hash to the digest that was parked and approved.
    async fn claim(&self, row: &CallRow) -> Fate {
        match self
            .queue
            .store
            .transition(&self.id, Transition::FORWARD, &Actor::SYSTEM, None)
            .await
        {
            Ok(true) => self.queue.changed.notify_one(),
            Ok(false) => {
                return Fate::Refused(
                    "Approved, but the call could not be released as approved; not run".to_owned(),
                );
            }
            Err(e) => {
                tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot record a release");
                return Fate::Refused(
                    "Approved, but the approval queue cannot record the release right now; not run"
                        .to_owned(),
                );
            }
        }
        // The waiting is over: the gauge counts calls waiting for a decision, not ones on their way.
        self.queue.remove_waiter(&self.id);
        let release = Release {
            id: self.id.clone(),
            withdraw: self.withdraw.clone(),
            queue: self.queue.clone(),
            arguments: None,
        };
        let args = serde_json::from_str::<Value>(&row.args_json)
            .ok()
            .filter(|args| {
                let digest = ArgsDigest::of(args);
                digest == row.args_sha256 && digest == self.digest
            });
        match args {
            Some(args) => Fate::Approved(Release {
                arguments: Some(args),
                ..release
            }),
            None => {
                tracing::error!(
                    "stored arguments do not match the approved digest; not forwarding"
                );
                release
                    .finish(
                        CallStatus::Failed,
                        None,
                        "the stored arguments no longer match the approved digest; not run",
                    )
                    .await;
                Fate::Refused(
                    "Approved, but the call could not be released as approved; not run".to_owned(),
                )
            }
        }
    }
}

/// What the agent reads when its call was not run.
fn fate_text(row: &CallRow) -> String {
    let reason = row.reason.as_deref().unwrap_or("no reason given");
    match row.status {
        CallStatus::Rejected => format!(
            "Rejected by {}: {reason}",
            row.decided_by.as_deref().unwrap_or("a reviewer")
        ),
        CallStatus::Expired => reason.to_owned(),
        status => format!("The call was {status} before it could run; not run"),
    }
}

/// The one right to send an approved call: made only by the task that won `approved →
/// forwarding`, with the approved arguments. Its outcome is recorded once, by [`Self::finish`].
pub struct Release {
    pub id: CallId,
    withdraw: CancellationToken,
    queue: Arc<ApprovalQueue>,
    arguments: Option<Value>,
}

impl Release {
    /// The approved arguments, exactly as stored (taken once: the send owns them).
    pub fn take_arguments(&mut self) -> Value {
        self.arguments.take().unwrap_or(Value::Null)
    }

    /// Resolves when the agent cancels the call (`notifications/cancelled`, its session ended).
    pub async fn cancelled(&self) {
        self.withdraw.cancelled().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.withdraw.is_cancelled()
    }

    /// Records how the forwarded call ended (`forwarding → completed | failed | outcome_unknown`).
    pub async fn finish(self, to: CallStatus, summary: Option<&ResultSummary>, detail: &str) {
        let Some(transition) = CallStatus::Forwarding.to(to) else {
            return;
        };
        let outcome = Outcome {
            result: summary,
            detail: Some(detail),
        };
        if let Err(e) = self
            .queue
            .store
            .finish(&self.id, transition, &outcome)
            .await
        {
            tracing::error!(call = %self.id, status = %to, error = %crate::telemetry::error_chain(&e), "cannot record a forwarded call's outcome");
        }
        self.queue.changed.notify_one();
    }
}
