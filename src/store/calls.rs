//! The approval queue's tables: parked calls, reviewers' votes, and the history of every
//! transition. A status changes only through a [`Transition`] and only by a conditional update on
//! the status it is expected to have, so concurrent deciders cannot both win.

use sqlx::FromRow;

use super::{Backend, Store, StoreError, Tx, announce_decision, query, timestamp};
use crate::approval::{CallStatus, Transition};

/// How many calls may wait at once, and how often one recipient is told of new ones.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Open rows (`pending`, or `approved` and not yet on its way) one agent may have.
    pub per_agent: u32,
    /// Open rows of all agents together.
    pub total: u32,
    /// At most one message per recipient this often; calls parked in between are listed in
    /// the next digest.
    pub notify_every: time::Duration,
}

/// What became of a call offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    /// Stored as `pending`; `messages` of its notifications were queued as their own (the rest
    /// went into digests).
    Parked { messages: usize },
    /// The agent already has this many open rows (at least `per_agent`); nothing was stored.
    AgentFull(i64),
    /// All agents together already have this many.
    QueueFull(i64),
}

/// A call about to be parked.
#[derive(Debug)]
pub struct NewCall<'a> {
    pub id: &'a str,
    pub upstream: &'a str,
    pub tool: &'a str,
    pub agent: &'a str,
    pub agent_session: &'a str,
    pub instance_id: &'a str,
    pub args_json: &'a str,
    /// The arguments with the redaction rules applied: what people see, and all that is kept
    /// once the call is over.
    pub args_shown: &'a str,
    pub args_sha256: &'a str,
    pub rule_json: &'a str,
    pub approvals_needed: u32,
    pub created_at: time::OffsetDateTime,
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct CallRow {
    pub id: String,
    pub upstream: String,
    pub tool: String,
    pub agent: String,
    pub agent_session: String,
    pub instance_id: String,
    pub args_json: String,
    pub args_sha256: String,
    pub rule_json: String,
    pub approvals_needed: i64,
    status: String,
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub finished_at: Option<String>,
    pub result_bytes: Option<i64>,
    pub result_sha256: Option<String>,
    /// 1 when the upstream's result had `isError: true`.
    pub result_is_error: Option<i64>,
    /// See [`NewCall::args_shown`]; `None` for calls stored before it existed.
    pub args_shown: Option<String>,
}

impl CallRow {
    /// The arguments as people may see them: secret fields masked.
    pub fn shown_arguments(&self) -> serde_json::Value {
        match &self.args_shown {
            Some(shown) => serde_json::from_str(shown).unwrap_or(serde_json::Value::Null),
            None => serde_json::from_str(&self.args_json).map_or(serde_json::Value::Null, |args| {
                crate::redact::Redactor::built_in().redact(&args)
            }),
        }
    }

    /// The call's status; a value the code does not know (a hand-edited row) reads as abandoned,
    /// which is final: such a call is never forwarded.
    pub fn status(&self) -> CallStatus {
        CallStatus::parse(&self.status).unwrap_or(CallStatus::Abandoned)
    }
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRow {
    pub reviewer: String,
    pub via: String,
    pub reason: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub via: String,
    pub detail: Option<String>,
}

/// Who caused a change, and through which face.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub via: &'a str,
}

/// What one reviewer's approval did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// Counted; the call still needs more approvals.
    Counted {
        have: u32,
        need: u32,
    },
    /// Counted, and the quorum is reached: the call is now `approved`.
    Released,
    /// This reviewer had already approved; nothing changed.
    Duplicate {
        have: u32,
        need: u32,
    },
    /// The call is no longer pending.
    NotPending(CallStatus),
    NotFound,
}

/// What the history page filters calls by; `None` fields do not filter. Times are
/// [`timestamp`](super::timestamp) text.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub agent: Option<String>,
    /// Decided by, or approved by, this reviewer.
    pub reviewer: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Text anywhere in the arguments as stored.
    pub text: Option<String>,
}

/// What a forwarded call's upstream answer was, without the answer itself.
#[derive(Debug, Clone)]
pub struct ResultSummary {
    pub bytes: usize,
    pub sha256: String,
    pub is_error: bool,
}

impl ResultSummary {
    /// The size and digest of a `tools/call` result (its JSON text), and its `isError`.
    pub fn of(result: &serde_json::Value) -> Self {
        let bytes = result.to_string();
        Self {
            bytes: bytes.len(),
            sha256: crate::secrets::sha256_hex(bytes.as_bytes()),
            is_error: result.get("isError") == Some(&serde_json::Value::Bool(true)),
        }
    }

    /// What the audit log keeps of a result: never the result itself.
    pub fn describe(&self) -> String {
        format!(
            "result of {} bytes, SHA-256 {}{}",
            self.bytes,
            self.sha256,
            if self.is_error { ", isError" } else { "" }
        )
    }
}

/// `SELECT <every column of CallRow> FROM tool_calls <rest>`, as one literal string.
macro_rules! select_calls {
    ($rest:literal) => {
        concat!(
            "SELECT id, upstream, tool, agent, agent_session, instance_id, args_json, \
             args_sha256, rule_json, approvals_needed, status, created_at, expires_at, decided_at, \
             decided_by, reason, finished_at, result_bytes, result_sha256, result_is_error, \
             args_shown FROM tool_calls ",
            $rest
        )
    };
}

/// How many ids one `IN (...)` query carries (SQLite allows 32766 parameters; stay far below).
const IDS_PER_QUERY: usize = 500;

impl Store {
    /// Commits a new `pending` call, its first history row and its notifications, in one
    /// transaction: a call is never waiting without its emails queued, nor announced without
    /// existing. Refused (nothing stored) when the agent, or everyone, has as many open calls as
    /// `limits` allow; the count and the insert are one step (SQLite's write lock, an advisory
    /// lock on PostgreSQL), so instances parking at once cannot overshoot. Without `limits`
    /// (loading calls in bulk) nothing is counted and every message is queued as it is.
    pub async fn insert_call(
        &self,
        call: &NewCall<'_>,
        mails: &[super::NewMail],
        limits: Option<&QueueLimits>,
    ) -> Result<Parking, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(limits) = limits
            && let Some(refused) = self.over_limits(&mut tx, call.agent, limits).await?
        {
            return Ok(refused);
        }
        let created = timestamp(call.created_at);
        sqlx::query(
            "INSERT INTO tool_calls (id, upstream, tool, agent, agent_session, instance_id, \
             args_json, args_sha256, rule_json, approvals_needed, status, created_at, expires_at, \
             args_shown) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(call.id)
        .bind(call.upstream)
        .bind(call.tool)
        .bind(call.agent)
        .bind(call.agent_session)
        .bind(call.instance_id)
        .bind(call.args_json)
        .bind(call.args_sha256)
        .bind(call.rule_json)
        .bind(i64::from(call.approvals_needed))
        .bind(CallStatus::Pending.as_str())
        .bind(&created)
        .bind(timestamp(call.expires_at))
        .bind(call.args_shown)
        .execute(&mut *tx)
        .await
        .map_err(query("insert call"))?;
        let agent = format!("agent:{}", call.agent);
        insert_event(
            &mut tx,
            call.id,
            &created,
            CallStatus::Pending.as_str(),
            Actor {
                name: &agent,
                via: "mcp",
            },
            None,
        )
        .await?;
        let mut messages = 0;
        for mail in mails {
            let own = match limits {
                Some(limits) => {
                    super::outbox::queue_parked(
                        &mut tx,
                        self.backend,
                        call.id,
                        mail,
                        call.created_at,
                        limits.notify_every,
                    )
                    .await?
                }
                None => {
                    super::outbox::insert_mail(&mut tx, Some(call.id), mail, &created).await?;
                    true
                }
            };
            messages += usize::from(own);
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(Parking::Parked { messages })
    }

    /// The refusal a call of `agent` meets under `limits`, if any, as the queue is now (no lock:
    /// a cheap look before the work of parking; [`Self::insert_call`] counts again, locked).
    pub async fn queue_refusal(
        &self,
        agent: &str,
        limits: &QueueLimits,
    ) -> Result<Option<Parking>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(query("acquire"))?;
        count_open(&mut conn, agent, limits).await
    }

    /// [`Self::queue_refusal`] inside the parking transaction. On PostgreSQL the transaction
    /// first takes the queue's advisory lock, so two instances counting at once cannot both see
    /// room for one more.
    async fn over_limits(
        &self,
        tx: &mut Tx,
        agent: &str,
        limits: &QueueLimits,
    ) -> Result<Option<Parking>, StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
                .execute(&mut **tx)
                .await
                .map_err(query("lock the queue for parking"))?;
        }
        count_open(tx, agent, limits).await
    }

    pub async fn call(&self, id: &str) -> Result<Option<CallRow>, StoreError> {
        sqlx::query_as(select_calls!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select call"))
    }

    /// Calls newest first, optionally of one status, older than `before` (keyset pagination).
    pub async fn calls(
        &self,
        status: Option<CallStatus>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CallRow>, StoreError> {
        sqlx::query_as(select_calls!(
            "WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(status.map(CallStatus::as_str))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select calls"))
    }

    /// Calls matching `filter`, newest first, `limit` at a time after the id `before` (keyset
    /// pages: each page is one index range, however deep). Only the given filters become SQL, so
    /// the planner can use the index of the one that narrows most.
    pub async fn history(
        &self,
        filter: &CallFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CallRow>, StoreError> {
        let mut binds: Vec<String> = Vec::new();
        // Each value gets the next numbered placeholder.
        let mut param = |value: String| {
            binds.push(value);
            format!("${}", binds.len())
        };
        let mut conditions: Vec<String> = Vec::new();
        if let Some(status) = filter.status {
            conditions.push(format!("status = {}", param(status.as_str().to_owned())));
        }
        for (column, value) in [
            ("upstream", &filter.upstream),
            ("tool", &filter.tool),
            ("agent", &filter.agent),
        ] {
            if let Some(value) = value {
                conditions.push(format!("{column} = {}", param(value.clone())));
            }
        }
        if let Some(reviewer) = &filter.reviewer {
            let (by, voted) = (
                param(reviewer.to_lowercase()),
                param(reviewer.to_lowercase()),
            );
            conditions.push(format!(
                "(decided_by = {by} OR id IN (SELECT call_id FROM call_approvals WHERE reviewer = {voted}))"
            ));
        }
        if let Some(since) = &filter.since {
            conditions.push(format!("created_at >= {}", param(since.clone())));
        }
        if let Some(until) = &filter.until {
            conditions.push(format!("created_at < {}", param(until.clone())));
        }
        if let Some(text) = &filter.text {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            conditions.push(format!(
                "COALESCE(args_shown, args_json) LIKE {} ESCAPE '\\'",
                param(format!("%{escaped}%"))
            ));
        }
        if let Some(before) = before {
            conditions.push(format!("id < {}", param(before.to_owned())));
        }
        let limit_param = format!("${}", binds.len() + 1);
        let mut sql = select_calls!("").to_owned();
        if !conditions.is_empty() {
            sql.push_str("WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit_param}"));
        let mut query_rows = sqlx::query_as::<_, CallRow>(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query_rows = query_rows.bind(value);
        }
        query_rows
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query("select history"))
    }

    /// How many calls were decided each day since `since` (`YYYY-MM-DD` in UTC), by status.
    pub async fn decisions_per_day(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT substr(decided_at, 1, 10) AS day, status, COUNT(*) FROM tool_calls \
             WHERE decided_at >= $1 GROUP BY substr(decided_at, 1, 10), status",
        )
        .bind(timestamp(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query("count decisions per day"))
    }

    /// How many calls are in `status`.
    pub async fn count_status(&self, status: CallStatus) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tool_calls WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(query("count calls"))?;
        Ok(n)
    }

    /// The newest history row's number: it changes whenever any call changes, on any instance.
    pub async fn latest_event(&self) -> Result<i64, StoreError> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM call_events")
            .fetch_one(&self.pool)
            .await
            .map_err(query("select the latest event"))?;
        Ok(seq)
    }

    pub async fn approvals(&self, id: &str) -> Result<Vec<ApprovalRow>, StoreError> {
        sqlx::query_as(
            "SELECT reviewer, via, reason, at FROM call_approvals WHERE call_id = $1 ORDER BY at",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select approvals"))
    }

    pub async fn events(&self, id: &str) -> Result<Vec<EventRow>, StoreError> {
        sqlx::query_as(
            "SELECT seq, at, kind, actor, via, detail FROM call_events WHERE call_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select events"))
    }

    /// Moves a call along `transition` if it is still in the expected status, recording who and
    /// why; a move out of `pending` is the call's decision. Returns whether this caller won.
    pub async fn transition(
        &self,
        id: &str,
        transition: Transition,
        actor: Actor<'_>,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let at = super::now_rfc3339();
        let update = if transition.decides() {
            sqlx::query(
                "UPDATE tool_calls SET status = $1, decided_at = $2, decided_by = $3, reason = $4 \
                 WHERE id = $5 AND status = $6",
            )
            .bind(transition.to().as_str())
            .bind(&at)
            .bind(actor.name)
            .bind(detail)
        } else {
            sqlx::query("UPDATE tool_calls SET status = $1 WHERE id = $2 AND status = $3")
                .bind(transition.to().as_str())
        };
        let won = update
            .bind(id)
            .bind(transition.from().as_str())
            .execute(&mut *tx)
            .await
            .map_err(query("update call status"))?
            .rows_affected()
            == 1;
        if won {
            insert_event(&mut tx, id, &at, transition.to().as_str(), actor, detail).await?;
            if transition.decides() {
                announce_decision(self.backend, &mut tx, id).await?;
            }
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(won)
    }

    /// Records the upstream's answer to a forwarded call (its size and digest, never its content).
    pub async fn finish(
        &self,
        id: &str,
        transition: Transition,
        result: Option<&ResultSummary>,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let at = super::now_rfc3339();
        let won = sqlx::query(
            "UPDATE tool_calls SET status = $1, finished_at = $3, result_bytes = $4, \
             result_sha256 = $5, result_is_error = $6 WHERE id = $7 AND status = $2",
        )
        .bind(transition.to().as_str())
        .bind(transition.from().as_str())
        .bind(&at)
        .bind(result.map(|r| i64::try_from(r.bytes).unwrap_or(i64::MAX)))
        .bind(result.map(|r| r.sha256.as_str()))
        .bind(result.map(|r| i64::from(r.is_error)))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(query("record call outcome"))?
        .rows_affected()
            == 1;
        if won {
            let system = Actor {
                name: "system",
                via: "system",
            };
            insert_event(&mut tx, id, &at, transition.to().as_str(), system, detail).await?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(won)
    }

    /// One reviewer's approval: counted once per reviewer, and when it completes the quorum the
    /// call becomes `approved`, all in one write transaction.
    pub async fn approve(
        &self,
        id: &str,
        reviewer: Actor<'_>,
        reason: Option<&str>,
        release: Transition,
    ) -> Result<Vote, StoreError> {
        let mut tx = self.begin_write().await?;
        // Locks the call's row on PostgreSQL; SQLite holds the whole write lock already.
        let select = match self.backend {
            Backend::Sqlite => "SELECT status, approvals_needed FROM tool_calls WHERE id = $1",
            Backend::Postgres => {
                "SELECT status, approvals_needed FROM tool_calls WHERE id = $1 FOR UPDATE"
            }
        };
        let row: Option<(String, i64)> = sqlx::query_as(select)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query("select call for approval"))?;
        let Some((status, need)) = row else {
            return Ok(Vote::NotFound);
        };
        let status = CallStatus::parse(&status).unwrap_or(CallStatus::Abandoned);
        if status != release.from() {
            return Ok(Vote::NotPending(status));
        }
        let need = u32::try_from(need).unwrap_or(u32::MAX);
        let at = super::now_rfc3339();
        let counted = sqlx::query(
            "INSERT INTO call_approvals (call_id, reviewer, via, reason, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (call_id, reviewer) DO NOTHING",
        )
        .bind(id)
        .bind(reviewer.name)
        .bind(reviewer.via)
        .bind(reason)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(query("insert approval"))?
        .rows_affected()
            == 1;
        let (have,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM call_approvals WHERE call_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(query("count approvals"))?;
        let have = u32::try_from(have).unwrap_or(u32::MAX);
        if !counted {
            return Ok(Vote::Duplicate { have, need });
        }
        insert_event(&mut tx, id, &at, "approval", reviewer, reason).await?;
        let vote = if have >= need {
            sqlx::query(
                "UPDATE tool_calls SET status = $1, decided_at = $2, decided_by = $3, reason = $4 \
                 WHERE id = $5 AND status = $6",
            )
            .bind(release.to().as_str())
            .bind(&at)
            .bind(reviewer.name)
            .bind(reason)
            .bind(id)
            .bind(release.from().as_str())
            .execute(&mut *tx)
            .await
            .map_err(query("release call"))?;
            insert_event(&mut tx, id, &at, release.to().as_str(), reviewer, reason).await?;
            announce_decision(self.backend, &mut tx, id).await?;
            Vote::Released
        } else {
            Vote::Counted { have, need }
        };
        tx.commit().await.map_err(query("commit"))?;
        Ok(vote)
    }

    /// Up to `limit` calls stored before `args_shown` existed, with ids after `after`, in id
    /// order: (id, args_json).
    pub async fn calls_without_shown_args(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as(
            "SELECT id, args_json FROM tool_calls WHERE id > $1 AND args_shown IS NULL \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select calls without masked arguments"))
    }

    /// Stores a call's masked arguments; for a call that is over they also replace the real ones.
    pub async fn set_shown_args(&self, id: &str, shown: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tool_calls SET args_shown = $1, args_json = CASE WHEN status IN \
             ('pending', 'approved', 'forwarding') THEN args_json ELSE $1 END WHERE id = $2",
        )
        .bind(shown)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("store masked arguments"))?;
        Ok(())
    }

    /// The statuses of those of `ids` that are no longer pending.
    pub async fn decided_among(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut decided = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // Only numbered placeholders are formatted in; the ids themselves are bound. (sqlx's
            // QueryBuilder writes `?` for the Any driver, which PostgreSQL rejects.)
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id FROM tool_calls WHERE status <> 'pending' AND id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(query("select decided calls"))?;
            decided.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(decided)
    }

    /// Calls of `instance` in `status` whose `expires_at` has passed `cutoff`, oldest first.
    pub async fn overdue(
        &self,
        status: CallStatus,
        instance: &str,
        cutoff: time::OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM tool_calls WHERE status = $1 AND instance_id = $2 AND expires_at < $3 \
             ORDER BY id LIMIT 1000",
        )
        .bind(status.as_str())
        .bind(instance)
        .bind(timestamp(cutoff))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select overdue calls"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Ids of calls in `status` whose agent's request is gone: held by an instance that is not
    /// alive (no heartbeat since `alive_since`) other than `me`, or, when `including_mine`, by
    /// `me` (an earlier run of this instance).
    pub async fn orphaned(
        &self,
        status: CallStatus,
        me: &str,
        including_mine: bool,
        alive_since: time::OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM tool_calls WHERE status = $1 AND ( \
               ($2 = 1 AND instance_id = $3) \
               OR (instance_id <> $3 AND instance_id NOT IN \
                   (SELECT id FROM instances WHERE heartbeat_at >= $4))) \
             ORDER BY id LIMIT 1000",
        )
        .bind(status.as_str())
        .bind(i64::from(including_mine))
        .bind(me)
        .bind(timestamp(alive_since))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select orphaned calls"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

/// The refusal a call of `agent` meets under `limits`, if any. Counts stop at the limits (a full
/// queue costs no more to count than a nearly full one).
async fn count_open(
    conn: &mut sqlx::AnyConnection,
    agent: &str,
    limits: &QueueLimits,
) -> Result<Option<Parking>, StoreError> {
    let (mine,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tool_calls WHERE agent = $1 \
         AND status IN ('pending', 'approved') LIMIT $2) AS open",
    )
    .bind(agent)
    .bind(i64::from(limits.per_agent))
    .fetch_one(&mut *conn)
    .await
    .map_err(query("count an agent's open calls"))?;
    if mine >= i64::from(limits.per_agent) {
        return Ok(Some(Parking::AgentFull(mine)));
    }
    let (all,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tool_calls \
         WHERE status IN ('pending', 'approved') LIMIT $1) AS open",
    )
    .bind(i64::from(limits.total))
    .fetch_one(&mut *conn)
    .await
    .map_err(query("count open calls"))?;
    if all >= i64::from(limits.total) {
        return Ok(Some(Parking::QueueFull(all)));
    }
    Ok(None)
}

async fn insert_event(
    tx: &mut Tx,
    call_id: &str,
    at: &str,
    kind: &str,
    actor: Actor<'_>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO call_events (call_id, at, kind, actor, via, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(call_id)
    .bind(at)
    .bind(kind)
    .bind(actor.name)
    .bind(actor.via)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map_err(query("insert call event"))?;
    // A call that is over keeps only the masked copy of its arguments (and their digest).
    if CallStatus::parse(kind).is_some_and(|status| !status.is_open()) {
        sqlx::query(
            "UPDATE tool_calls SET args_json = args_shown WHERE id = $1 AND args_shown IS NOT NULL",
        )
        .bind(call_id)
        .execute(&mut **tx)
        .await
        .map_err(query("scrub the arguments of a call that is over"))?;
    }
    // The same change, in the hash-chained audit log; if that write fails, so does the change.
    let (upstream, tool, digest): (String, String, String) =
        sqlx::query_as("SELECT upstream, tool, args_sha256 FROM tool_calls WHERE id = $1")
            .bind(call_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(query("read the call for the audit log"))?;
    super::audit::append_audit(
        tx,
        &super::NewAuditEvent {
            at,
            kind,
            actor: actor.name,
            via: actor.via,
            upstream: Some(&upstream),
            tool: Some(&tool),
            call_id: Some(call_id),
            args_digest: Some(&digest),
            detail,
        },
    )
    .await
}
