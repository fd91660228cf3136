//! A parked call's fate as one waiting request sees it, from the commit (or the join) to the one
//! send: the whole wait-and-release state machine of a call in this process.
//!
//! A call belongs to its key, not to a request: several requests may wait for one call (each
//! `tools/call` with the same key joins it), and a request that ends ends only its own wait.
//! [`Parked::fate`] waits for whichever comes first: the request ends (a cancel, a closed
//! stream: nobody to answer), `[approval] hold` passes or Airlock stops (the request is told to
//! call again; the call stays), the rule's timeout passes (expired, a system denial), or a
//! decision arrives (woken at once in this process, by the poll or PostgreSQL's `LISTEN`
//! otherwise). An approved call yields a [`Release`] to the one request, on any instance, that
//! won `approved → forwarding`, and only after the stored arguments were read back and found to
//! hash to the approved digest: whoever holds a `Release` sends the call, once, and records its
//! outcome with [`Release::finish`]. Every other request waiting for it is told it was picked up.
//! A rejection, an expiry or an unclaimed approval is told to the requests waiting, or else to
//! the next one that calls with the key. The MCP face renders the fate; it makes none of these
//! moves.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ApprovalQueue, RuleSnapshot};
use crate::domain::{Actor, ArgsDigest, CallId, CallStatus, Timestamp, ToolName};
use crate::store::{CallRow, Outcome, ResultSummary};

/// The request a parked call's result goes back to.
pub trait Requester: Sync {
    /// Resolves when the request has ended (its client closed the connection).
    fn ended(&self) -> impl Future<Output = ()> + Send;

    fn has_ended(&self) -> bool;
}

/// How one request's wait for a parked call ended.
pub enum Fate {
    /// Approved, and this request holds the one right to send it.
    Approved(Release),
    /// Not run (rejected, expired, unclaimed, or sent for another request); the request is told
    /// this text.
    Refused(String),
    /// No decision yet: the request is answered with this text (call again later); the call
    /// stays in the queue.
    Waiting(String),
    /// The request ended (a cancel, a closed stream); nobody to answer. The call stays.
    Left,
}

/// One request's wait for a parked call. Dropping it ends the wait (the call stays).
pub struct Parked {
    pub id: CallId,
    pub tool: ToolName,
    pub digest: ArgsDigest,
    pub rule: RuleSnapshot,
    /// When the call expires (the rule's timeout after it was parked).
    pub deadline: Instant,
    pub expires_at: Timestamp,
    /// Whether this request joined a call an earlier request parked.
    pub joined: bool,
    /// When this request stops holding and is told to call again; `None` holds until decided.
    hold_until: Option<Instant>,
    n: u64,
    wake: Arc<Notify>,
    end: CancellationToken,
    queue: Arc<ApprovalQueue>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.queue.remove_waiter(&self.id, self.n);
    }
}

/// How a [`Parked`] wait is made (see `park`).
pub(super) struct Wait {
    pub id: CallId,
    pub tool: ToolName,
    pub digest: ArgsDigest,
    pub rule: RuleSnapshot,
    pub expires_at: Timestamp,
    pub joined: bool,
    pub n: u64,
    pub wake: Arc<Notify>,
    pub end: CancellationToken,
}

/// The text of a call nobody approved in time.
pub fn expiry_text(timeout_secs: u64) -> String {
    format!("Not approved within {timeout_secs} s; not run")
}

/// The text of an approved call nobody called for in time.
pub fn unclaimed_text(pickup_secs: u64) -> String {
    format!("Approved, but not picked up within {pickup_secs} s; not run")
}

/// The text of an approved call another request sent.
fn picked_up_text(id: &CallId) -> String {
    format!("Call {id} was picked up by another request; not run again")
}

impl Parked {
    pub(super) fn new(wait: Wait, queue: Arc<ApprovalQueue>) -> Self {
        let left = Timestamp::now().seconds_until(wait.expires_at).max(0.0);
        let hold = queue.config.approval.hold;
        Self {
            deadline: Instant::now() + std::time::Duration::from_secs_f64(left),
            hold_until: (hold > 0).then(|| Instant::now() + std::time::Duration::from_secs(hold)),
            id: wait.id,
            tool: wait.tool,
            digest: wait.digest,
            rule: wait.rule,
            expires_at: wait.expires_at,
            joined: wait.joined,
            n: wait.n,
            wake: wait.wake,
            end: wait.end,
            queue,
        }
    }

    /// The wait, held until the call is decided whatever `[approval] hold` says (`tasks/result`
    /// answers with the result, never with "call again").
    pub fn holding_until_decided(mut self) -> Self {
        self.hold_until = None;
        self
    }

    /// What a request that stops holding is told: the call waits, and how to get its result.
    pub fn waiting_text(&self) -> String {
        format!(
            "Waiting for approval of {} (call {}, expires {} UTC); it has not run. Call {} again \
             with the same arguments to get its result once a reviewer approves.",
            self.rule.rule,
            self.id,
            self.expires_at.clock(),
            self.tool
        )
    }

    /// Waits for the call's fate; an approved call is claimed for sending before it is returned.
    /// Biased: a request that ends as a decision arrives takes nothing (another request, or the
    /// next call with the key, picks the call up).
    #[tracing::instrument(name = "fate", skip_all, fields(call = %self.id))]
    pub async fn fate(&self, requester: &impl Requester) -> Fate {
        loop {
            // Only the waiting itself is held by every waiting request (a thousand requests held
            // open each hold one); what runs on a wake-up (the store's futures, the call's row)
            // is boxed, alive only while it runs.
            let woke = tokio::select! {
                biased;
                () = self.end.cancelled() => return Fate::Left,
                () = requester.ended() => return Fate::Left,
                () = self.queue.shutdown.cancelled() => return Fate::Waiting(self.waiting_text()),
                () = tokio::time::sleep_until(self.deadline) => Woke::Deadline,
                () = sleep_until(self.hold_until) => Woke::HoldOver,
                () = self.wake.notified() => Woke::Decided,
            };
            if let Some(fate) = Box::pin(self.woken(woke, requester)).await {
                return fate;
            }
        }
    }

    /// What a wake-up means for the request: its fate, or `None` to go on waiting.
    async fn woken(&self, woke: Woke, requester: &impl Requester) -> Option<Fate> {
        let holding_over = woke == Woke::HoldOver;
        let row = match woke {
            Woke::Deadline => match self.expire().await {
                Some(fate) => return Some(fate),
                // Decided just before the deadline: act on what was decided.
                None => self.queue.store.call(&self.id).await,
            },
            Woke::HoldOver | Woke::Decided => self.queue.store.call(&self.id).await,
        };
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => {
                tracing::error!("a parked call's row is gone; not run");
                return Some(Fate::Refused(
                    "The call's approval record is gone; not run".to_owned(),
                ));
            }
            Err(e) if holding_over => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read a parked call");
                return Some(Fate::Waiting(self.waiting_text()));
            }
            Err(e) => {
                // The poll wakes us again; until the store answers, the call keeps waiting.
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read a parked call");
                return None;
            }
        };
        Some(match row.status {
            CallStatus::Pending if holding_over => Fate::Waiting(self.waiting_text()),
            CallStatus::Pending => return None,
            // The request may have ended between the decision and now: nobody could receive
            // the result, so it is left for the next call.
            CallStatus::Approved if self.end.is_cancelled() || requester.has_ended() => Fate::Left,
            CallStatus::Approved => self.claim(&row).await,
            status if status.is_refusal() => self.told(&row).await,
            CallStatus::Forwarding
            | CallStatus::Completed
            | CallStatus::Failed
            | CallStatus::OutcomeUnknown => Fate::Refused(picked_up_text(&self.id)),
            _ => Fate::Refused(fate_text(&row, self.queue.config.approval.pickup)),
        })
    }

    /// The text of a call that ended without running, recorded as told.
    async fn told(&self, row: &CallRow) -> Fate {
        if let Err(e) = self.queue.store.mark_told(&self.id).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot record that the agent was told");
        }
        Fate::Refused(fate_text(row, self.queue.config.approval.pickup))
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
                if let Err(e) = self.queue.store.mark_told(&self.id).await {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot record that the agent was told");
                }
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

    /// Claims the approved call for sending (`approved → forwarding`, one winner on any
    /// instance) and reads back the stored arguments of `row` (the call as read when its
    /// approval woke us), checking they still hash to the digest that was parked and approved.
    async fn claim(&self, row: &CallRow) -> Fate {
        match self
            .queue
            .store
            .claim_forward(&self.id, &self.queue.instance_id)
            .await
        {
            Ok(true) => self.queue.changed.notify_one(),
            // Lost: to another request, or to the sweep (unclaimed) or a cancel meanwhile.
            Ok(false) => {
                return match self.queue.store.call(&self.id).await {
                    Ok(Some(now)) if now.status.is_refusal() => self.told(&now).await,
                    Ok(Some(now)) if now.status == CallStatus::Withdrawn => {
                        Fate::Refused(fate_text(&now, self.queue.config.approval.pickup))
                    }
                    _ => Fate::Refused(picked_up_text(&self.id)),
                };
            }
            Err(e) => {
                tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot record a release");
                return Fate::Refused(
                    "Approved, but the approval queue cannot record the release right now; not run"
                        .to_owned(),
                );
            }
        }
        // This request's waiting is over: it sends the call now.
        self.queue.remove_waiter(&self.id, self.n);
        let release = Release {
            id: self.id.clone(),
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

/// What woke a waiting request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// The call's timeout passed.
    Deadline,
    /// `[approval] hold` passed.
    HoldOver,
    /// A decision (or the poll) woke it.
    Decided,
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the agent reads when its call was not run.
pub fn fate_text(row: &CallRow, pickup_secs: u64) -> String {
    let reason = row.reason.as_deref().unwrap_or("no reason given");
    match row.status {
        CallStatus::Rejected => format!(
            "Rejected by {}: {reason}",
            row.decided_by.as_deref().unwrap_or("a reviewer")
        ),
        CallStatus::Expired => RuleSnapshot::read(&row.rule_json)
            .map_or_else(|| reason.to_owned(), |rule| expiry_text(rule.timeout_secs)),
        CallStatus::Unclaimed => unclaimed_text(pickup_secs),
        status => format!("The call was {status} before it could run; not run"),
    }
}

/// The one right to send an approved call: made only by the request that won `approved →
/// forwarding`, with the approved arguments. Its outcome is recorded once, by [`Self::finish`].
/// A request that ends while the call runs does not cancel it: the outcome is still recorded.
pub struct Release {
    pub id: CallId,
    queue: Arc<ApprovalQueue>,
    arguments: Option<Value>,
}

impl Release {
    /// The approved arguments, exactly as stored (taken once: the send owns them).
    pub fn take_arguments(&mut self) -> Value {
        self.arguments.take().unwrap_or(Value::Null)
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
