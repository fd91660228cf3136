//! How a parked call moves. A status changes only through a [`Transition`] and only by a
//! conditional update on the status it is expected to have, so concurrent deciders cannot both
//! win. Every move is one transaction of explicit steps ([`Step`]): the status update, the history
//! row, the scrub of the real arguments when the call is over, the audit event, and (for a
//! decision) the announcement to other instances. A decision made through a review link spends
//! the link in the same transaction, so a link is never burnt without its decision.

use super::{Backend, Store, StoreError, Tx, announce_decision, query};
use crate::domain::{Action, Actor, CallId, CallStatus, Timestamp, Transition};

/// One step of a call's life as history and the audit log record it.
pub(super) struct Step<'a> {
    pub call: &'a CallId,
    pub at: Timestamp,
    /// A status the call entered, or `approval` (one vote).
    pub kind: &'a str,
    pub actor: &'a Actor,
    pub detail: Option<&'a str>,
}

impl<'a> Step<'a> {
    /// The step of call `id` entering `transition`'s status.
    fn entering(
        call: &'a CallId,
        transition: Transition,
        at: Timestamp,
        actor: &'a Actor,
        detail: Option<&'a str>,
    ) -> Self {
        Self {
            call,
            at,
            kind: transition.to().as_str(),
            actor,
            detail,
        }
    }

    /// The row in the call's own history (`call_events`).
    pub(super) async fn record_history(&self, tx: &mut Tx) -> Result<(), StoreError> {
        record_history(tx, std::slice::from_ref(self)).await
    }

    /// The same step in the hash-chained audit log; if that write fails, so does the step.
    pub(super) async fn append_audit(&self, tx: &mut Tx) -> Result<(), StoreError> {
        append_audit(tx, std::slice::from_ref(self), None).await
    }
}

/// What the audit log records of a call besides its step: its upstream, tool and argument
/// digest. A status update reads them back (`RETURNING`), saving a statement.
type CallFacts = (String, String, String);

/// The `RETURNING` clause that reads a call's [`CallFacts`] back from its update.
macro_rules! returning_facts {
    ($update:literal) => {
        concat!($update, " RETURNING upstream, tool, args_sha256")
    };
}

/// The history rows of `steps`, in order, in one statement (a statement's round trip to the
/// database costs more than its row: a decision's steps are on the agent's path).
async fn record_history(tx: &mut Tx, steps: &[Step<'_>]) -> Result<(), StoreError> {
    const COLUMNS: usize = 6;
    let rows: Vec<String> = (0..steps.len())
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|column| format!("${}", row * COLUMNS + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO call_events (call_id, at, kind, actor, via, detail) VALUES {}",
        rows.join(", ")
    );
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for step in steps {
        insert = insert
            .bind(step.call)
            .bind(step.at)
            .bind(step.kind)
            .bind(step.actor.name())
            .bind(step.actor.via().as_str())
            .bind(step.detail);
    }
    insert
        .execute(&mut **tx)
        .await
        .map_err(query("insert call event"))?;
    Ok(())
}

/// `steps`, all of one call, in the hash-chained audit log: the call read once (unless its
/// `facts` are known), the chain appended once.
async fn append_audit(
    tx: &mut Tx,
    steps: &[Step<'_>],
    facts: Option<CallFacts>,
) -> Result<(), StoreError> {
    let Some(first) = steps.first() else {
        return Ok(());
    };
    debug_assert!(steps.iter().all(|step| step.call == first.call));
    let (upstream, tool, digest) = match facts {
        Some(facts) => facts,
        None => sqlx::query_as("SELECT upstream, tool, args_sha256 FROM tool_calls WHERE id = $1")
            .bind(first.call)
            .fetch_one(&mut **tx)
            .await
            .map_err(query("read the call for the audit log"))?,
    };
    let times: Vec<String> = steps.iter().map(|step| step.at.text()).collect();
    let events: Vec<super::NewAuditEvent<'_>> = steps
        .iter()
        .zip(&times)
        .map(|(step, at)| super::NewAuditEvent {
            at,
            kind: step.kind,
            actor: step.actor.name(),
            via: step.actor.via().as_str(),
            upstream: Some(&upstream),
            tool: Some(&tool),
            call_id: Some(step.call),
            args_digest: Some(&digest),
            detail: step.detail,
        })
        .collect();
    super::audit::append_audit_many(tx, &events).await
}

/// A call that is over keeps only the masked copy of its arguments (and their digest).
async fn scrub_arguments(tx: &mut Tx, call: &CallId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tool_calls SET args_json = args_shown WHERE id = $1 AND args_shown IS NOT NULL",
    )
    .bind(call)
    .execute(&mut **tx)
    .await
    .map_err(query("scrub the arguments of a call that is over"))?;
    Ok(())
}

/// What a forwarded call's outcome record holds.
pub struct Outcome<'a> {
    pub result: Option<&'a super::ResultSummary>,
    pub detail: Option<&'a str>,
}

/// A reviewer's decision as the store records it.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRecord<'a> {
    pub call: &'a CallId,
    pub action: Action,
    pub actor: &'a Actor,
    pub reason: Option<&'a str>,
    /// The SHA-256 of the review link's token it came through: spent in the same transaction.
    pub link: Option<&'a str>,
    /// How long a decided call waits for its agent to call again (`[approval] pickup`).
    pub pickup: time::Duration,
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// Counted; the call still needs more approvals.
    Counted {
        have: u32,
        need: u32,
    },
    /// Counted, and the quorum is reached: the call is now `approved`.
    Released,
    /// The call is now `rejected`.
    Rejected,
    /// This reviewer had already approved; nothing changed (but a link it came through is spent).
    Duplicate {
        have: u32,
        need: u32,
    },
    /// The call is no longer pending (a link it came through is spent all the same).
    NotPending(CallStatus),
    /// The review link it came through was used already; nothing changed.
    LinkUsed,
    NotFound,
}

impl Store {
    /// Moves a call along `transition` if it is still in the expected status, recording who and
    /// why, and (when given) the call's new pickup deadline; a move out of `pending` is the call's
    /// decision. Returns whether this caller won.
    pub async fn transition(
        &self,
        id: &CallId,
        transition: Transition,
        actor: &Actor,
        detail: Option<&str>,
        pickup_by: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let at = Timestamp::now();
        let update = if transition.decides() {
            sqlx::query_as::<_, CallFacts>(returning_facts!(
                "UPDATE tool_calls SET status = $1, decided_at = $2, decided_by = $3, reason = $4, \
                 pickup_by = COALESCE($5, pickup_by) WHERE id = $6 AND status = $7"
            ))
            .bind(transition.to())
            .bind(at)
            .bind(actor.name())
            .bind(detail)
            .bind(pickup_by)
        } else {
            sqlx::query_as::<_, CallFacts>(returning_facts!(
                "UPDATE tool_calls SET status = $1, pickup_by = COALESCE($2, pickup_by) \
                 WHERE id = $3 AND status = $4"
            ))
            .bind(transition.to())
            .bind(pickup_by)
        };
        let won = update
            .bind(id)
            .bind(transition.from())
            .fetch_optional(&mut *tx)
            .await
            .map_err(query("update call status"))?;
        let step = Step::entering(id, transition, at, actor, detail);
        self.settle(tx, transition, won, step).await
    }

    /// `approved → forwarding` for `instance`, which sends the call: one winner, ever. The call
    /// is then held by that instance (if it dies mid-send, the others mark it `outcome_unknown`).
    pub async fn claim_forward(&self, id: &CallId, instance: &str) -> Result<bool, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let at = Timestamp::now();
        let transition = Transition::FORWARD;
        let won = sqlx::query_as::<_, CallFacts>(returning_facts!(
            "UPDATE tool_calls SET status = $1, instance_id = $2, told_at = $3 \
             WHERE id = $4 AND status = $5"
        ))
        .bind(transition.to())
        .bind(instance)
        .bind(at)
        .bind(id)
        .bind(transition.from())
        .fetch_optional(&mut *tx)
        .await
        .map_err(query("claim a call for forwarding"))?;
        let step = Step::entering(id, transition, at, &Actor::SYSTEM, None);
        self.settle(tx, transition, won, step).await
    }

    /// Records the upstream's answer to a forwarded call (its size and digest, never its content).
    pub async fn finish(
        &self,
        id: &CallId,
        transition: Transition,
        outcome: &Outcome<'_>,
    ) -> Result<bool, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let at = Timestamp::now();
        let result = outcome.result;
        let won = sqlx::query_as::<_, CallFacts>(returning_facts!(
            "UPDATE tool_calls SET status = $1, finished_at = $3, result_bytes = $4, \
             result_sha256 = $5, result_is_error = $6 WHERE id = $7 AND status = $2"
        ))
        .bind(transition.to())
        .bind(transition.from())
        .bind(at)
        .bind(result.map(|r| i64::try_from(r.bytes).unwrap_or(i64::MAX)))
        .bind(result.map(|r| r.sha256.as_str()))
        .bind(result.map(|r| i64::from(r.is_error)))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query("record call outcome"))?;
        let step = Step::entering(id, transition, at, &Actor::SYSTEM, outcome.detail);
        self.settle(tx, transition, won, step).await
    }

    /// Ends a status update's transaction: when it won (`won` holds the call's facts), with the
    /// steps that follow; either way committed. Returns whether it won.
    async fn settle(
        &self,
        mut tx: Tx,
        transition: Transition,
        won: Option<CallFacts>,
        step: Step<'_>,
    ) -> Result<bool, StoreError> {
        let won = match won {
            Some(facts) => {
                self.entered(&mut tx, transition, &[step], facts).await?;
                true
            }
            None => false,
        };
        tx.commit().await.map_err(query("commit"))?;
        Ok(won)
    }

    /// The steps that follow a won status update, in its transaction: history, the scrub of a
    /// call that is over, the audit events, and the announcement of a decision. `steps` end with
    /// the one entering `transition`'s status; any before it are of the same call, taken earlier
    /// in this transaction (an approval that completed the quorum), and written with it.
    async fn entered(
        &self,
        tx: &mut Tx,
        transition: Transition,
        steps: &[Step<'_>],
        facts: CallFacts,
    ) -> Result<(), StoreError> {
        let Some(last) = steps.last() else {
            return Ok(());
        };
        record_history(tx, steps).await?;
        if !transition.to().is_open() {
            scrub_arguments(tx, last.call).await?;
        }
        append_audit(tx, steps, Some(facts)).await?;
        if transition.decides() {
            announce_decision(self.backend, tx, last.call).await?;
        }
        Ok(())
    }

    /// A reviewer's decision, in one write transaction: the review link it came through is spent,
    /// the call is read (locked on PostgreSQL), and an approval is counted once per reviewer
    /// (approving the call when it completes the quorum) or a rejection decides. Nothing is kept
    /// when the link was spent already; a decision that comes too late (the call is decided, or
    /// past its expiry) still spends its link.
    pub async fn decide(&self, decision: &DecisionRecord<'_>) -> Result<Vote, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let at = Timestamp::now();
        if let Some(link) = decision.link
            && !spend_link(&mut tx, link, at).await?
        {
            return Ok(Vote::LinkUsed);
        }
        // Locks the call's row on PostgreSQL; SQLite holds the whole write lock already.
        let select = match self.backend {
            Backend::Sqlite => {
                "SELECT status, approvals_needed, expires_at FROM tool_calls WHERE id = $1"
            }
            Backend::Postgres => {
                "SELECT status, approvals_needed, expires_at FROM tool_calls WHERE id = $1 FOR UPDATE"
            }
        };
        let row: Option<(CallStatus, i64, Timestamp)> = sqlx::query_as(select)
            .bind(decision.call)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query("select call for a decision"))?;
        let Some((status, need, expires_at)) = row else {
            return Ok(Vote::NotFound);
        };
        let vote = if status != CallStatus::Pending {
            Vote::NotPending(status)
        } else if expires_at <= at {
            // Past its expiry a call is dead even before the expiry is written.
            Vote::NotPending(CallStatus::Expired)
        } else {
            match decision.action {
                Action::Approve => {
                    let need = u32::try_from(need).unwrap_or(u32::MAX);
                    self.count_approval(&mut tx, decision, at, need).await?
                }
                Action::Reject => {
                    self.reject(&mut tx, decision, at).await?;
                    Vote::Rejected
                }
            }
        };
        tx.commit().await.map_err(query("commit"))?;
        Ok(vote)
    }

    async fn count_approval(
        &self,
        tx: &mut Tx,
        decision: &DecisionRecord<'_>,
        at: Timestamp,
        need: u32,
    ) -> Result<Vote, StoreError> {
        let id = decision.call;
        let counted = sqlx::query(
            "INSERT INTO call_approvals (call_id, reviewer, via, reason, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (call_id, reviewer) DO NOTHING",
        )
        .bind(id)
        .bind(decision.actor.name())
        .bind(decision.actor.via().as_str())
        .bind(decision.reason)
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(query("insert approval"))?
        .rows_affected()
            == 1;
        let (have,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM call_approvals WHERE call_id = $1")
                .bind(id)
                .fetch_one(&mut **tx)
                .await
                .map_err(query("count approvals"))?;
        let have = u32::try_from(have).unwrap_or(u32::MAX);
        if !counted {
            return Ok(Vote::Duplicate { have, need });
        }
        let vote = Step {
            call: id,
            at,
            kind: "approval",
            actor: decision.actor,
            detail: decision.reason,
        };
        if have < need {
            vote.record_history(tx).await?;
            vote.append_audit(tx).await?;
            return Ok(Vote::Counted { have, need });
        }
        self.decided(tx, decision, Transition::APPROVE, at, Some(vote))
            .await?;
        Ok(Vote::Released)
    }

    async fn reject(
        &self,
        tx: &mut Tx,
        decision: &DecisionRecord<'_>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.decided(tx, decision, Transition::REJECT, at, None)
            .await
    }

    /// Writes the decision on a call read as pending in this transaction, with the approval
    /// that made it (`vote`), when there is one.
    async fn decided(
        &self,
        tx: &mut Tx,
        decision: &DecisionRecord<'_>,
        transition: Transition,
        at: Timestamp,
        vote: Option<Step<'_>>,
    ) -> Result<(), StoreError> {
        // The call was read pending in this transaction (locked), so the update finds it.
        let facts = sqlx::query_as::<_, CallFacts>(returning_facts!(
            "UPDATE tool_calls SET status = $1, decided_at = $2, decided_by = $3, reason = $4, \
             pickup_by = $5 WHERE id = $6 AND status = $7"
        ))
        .bind(transition.to())
        .bind(at)
        .bind(decision.actor.name())
        .bind(decision.reason)
        .bind(at + decision.pickup)
        .bind(decision.call)
        .bind(transition.from())
        .fetch_one(&mut **tx)
        .await
        .map_err(query("decide a call"))?;
        let step = Step::entering(
            decision.call,
            transition,
            at,
            decision.actor,
            decision.reason,
        );
        let steps: Vec<Step<'_>> = vote.into_iter().chain([step]).collect();
        self.entered(tx, transition, &steps, facts).await
    }
}

/// Marks a review link used; false if it already was (or does not exist).
async fn spend_link(tx: &mut Tx, token_sha256: &str, at: Timestamp) -> Result<bool, StoreError> {
    let used = sqlx::query(
        "UPDATE review_links SET used_at = $1 WHERE token_sha256 = $2 AND used_at IS NULL",
    )
    .bind(at)
    .bind(token_sha256)
    .execute(&mut **tx)
    .await
    .map_err(query("use a review link"))?;
    Ok(used.rows_affected() == 1)
}
