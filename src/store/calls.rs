//! The approval queue's tables: parked calls, reviewers' votes, and the history of every step.
//! This file parks calls and reads them; how a call moves is in `transitions`, what the history
//! page and the sweeps ask for in `call_queries`.

use sqlx::FromRow;

use super::{Backend, Store, StoreError, Tx, query};
use crate::domain::{
    Actor, AgentName, ArgsDigest, AttachKey, CallId, CallStatus, Timestamp, ToolName, UpstreamName,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parking {
    /// Stored as `pending`; `messages` of its notifications were queued as their own (the rest
    /// went into digests).
    Parked { messages: usize },
    /// An open call with the same key was there first (parked by a request racing this one, on
    /// any instance): nothing was stored, and the request joins that call.
    Joined(CallId),
    /// The agent already has this many open rows (at least `per_agent`); nothing was stored.
    AgentFull(i64),
    /// All agents together already have this many.
    QueueFull(i64),
}

/// A call about to be parked.
#[derive(Debug)]
pub struct NewCall<'a> {
    pub id: &'a CallId,
    pub upstream: &'a UpstreamName,
    pub tool: &'a ToolName,
    pub agent: &'a AgentName,
    pub agent_session: &'a str,
    pub instance_id: &'a str,
    pub args_json: &'a str,
    /// The arguments with the redaction rules applied: what people see, and all that is kept
    /// once the call is over.
    pub args_shown: &'a str,
    pub args_sha256: &'a ArgsDigest,
    pub attach_key: &'a AttachKey,
    pub rule_json: &'a str,
    pub approvals_needed: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A parked call as stored. Every typed column is read strictly: a row with a status or a time
/// the code cannot read fails to load (an error the caller reports), never a guess.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct CallRow {
    pub id: CallId,
    pub upstream: UpstreamName,
    pub tool: ToolName,
    pub agent: AgentName,
    pub agent_session: String,
    pub instance_id: String,
    pub args_json: String,
    pub args_sha256: ArgsDigest,
    pub rule_json: String,
    pub approvals_needed: i64,
    pub status: CallStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub finished_at: Option<Timestamp>,
    pub result_bytes: Option<i64>,
    pub result_sha256: Option<String>,
    /// 1 when the upstream's result had `isError: true`.
    pub result_is_error: Option<i64>,
    /// See [`NewCall::args_shown`]; `None` for calls stored before it existed.
    pub args_shown: Option<String>,
    /// What the call belongs to (`None` for calls parked before calls could be joined).
    pub attach_key: Option<AttachKey>,
    /// Approved: when it ends `unclaimed` unless its agent calls for it. Rejected, expired or
    /// unclaimed: until when the next call with its key is told so.
    pub pickup_by: Option<Timestamp>,
    /// When a request of its agent received why it did not run (after that its key is free).
    pub told_at: Option<Timestamp>,
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

    /// Whether the call is past its expiry at `now`, written or not.
    pub fn is_past_expiry(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRow {
    pub reviewer: String,
    pub via: String,
    pub reason: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: Timestamp,
    pub kind: String,
    pub actor: String,
    pub via: String,
    pub detail: Option<String>,
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
        // The JSON text as `to_string` writes it, written straight into bytes.
        let bytes = serde_json::to_vec(result).unwrap_or_default();
        Self {
            bytes: bytes.len(),
            sha256: crate::secrets::sha256_hex(&bytes),
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
             args_shown, attach_key, pickup_by, told_at FROM tool_calls ",
            $rest
        )
    };
}
pub(super) use select_calls;

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
        let (_turn, mut tx) = self.begin_write().await?;
        if let Some(limits) = limits {
            // Under the queue's lock (SQLite's write lock, the advisory lock on PostgreSQL):
            // the look for a call to join and the count cannot race another parking.
            self.lock_queue(&mut tx).await?;
            if let Some(open) = open_call_with_key(&mut tx, call.attach_key).await? {
                return Ok(Parking::Joined(open));
            }
            if let Some(refused) = count_open(&mut tx, call.agent, limits).await? {
                return Ok(refused);
            }
        }
        sqlx::query(
            "INSERT INTO tool_calls (id, upstream, tool, agent, agent_session, instance_id, \
             args_json, args_sha256, rule_json, approvals_needed, status, created_at, expires_at, \
             args_shown, attach_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .bind(CallStatus::Pending)
        .bind(call.created_at)
        .bind(call.expires_at)
        .bind(call.args_shown)
        .bind(call.attach_key)
        .execute(&mut *tx)
        .await
        .map_err(query("insert call"))?;
        let step = super::transitions::Step {
            call: call.id,
            at: call.created_at,
            kind: CallStatus::Pending.as_str(),
            actor: &Actor::agent(call.agent),
            detail: None,
        };
        step.record_history(&mut tx).await?;
        step.append_audit(&mut tx).await?;
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
                    super::outbox::insert_mail(&mut tx, Some(call.id), mail, call.created_at)
                        .await?;
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
        agent: &AgentName,
        limits: &QueueLimits,
    ) -> Result<Option<Parking>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(query("acquire"))?;
        count_open(&mut conn, agent, limits).await
    }

    /// Takes the queue's lock for a parking transaction. On PostgreSQL an advisory lock, so two
    /// instances counting at once cannot both see room for one more, nor both park one key;
    /// SQLite's write transaction holds the whole database already.
    async fn lock_queue(&self, tx: &mut Tx) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
                .execute(&mut **tx)
                .await
                .map_err(query("lock the queue for parking"))?;
        }
        Ok(())
    }

    /// The call a `tools/call` with `key` joins, as of `now`: the open one (pending, or approved
    /// and not picked up), or one that ended without running whose agent has not been told yet
    /// and still may be.
    pub async fn joinable(
        &self,
        key: &AttachKey,
        now: Timestamp,
    ) -> Result<Option<CallRow>, StoreError> {
        sqlx::query_as(select_calls!(
            "WHERE attach_key = $1 AND (status IN ($2, $3) \
             OR (status IN ($4, $5, $6) AND told_at IS NULL AND pickup_by > $7)) \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(key)
        .bind(CallStatus::Pending)
        .bind(CallStatus::Approved)
        .bind(CallStatus::Rejected)
        .bind(CallStatus::Expired)
        .bind(CallStatus::Unclaimed)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select a call to join"))
    }

    /// Records that the agent was told why call `id` did not run; true the first time.
    pub async fn mark_told(&self, id: &CallId) -> Result<bool, StoreError> {
        let told =
            sqlx::query("UPDATE tool_calls SET told_at = $1 WHERE id = $2 AND told_at IS NULL")
                .bind(Timestamp::now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(query("record that an agent was told"))?;
        Ok(told.rows_affected() == 1)
    }

    pub async fn call(&self, id: &CallId) -> Result<Option<CallRow>, StoreError> {
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
        // Each combination its own statement, so each is one range of an index (SQLite plans a
        // statement once: `$1 IS NULL OR status = $1` would read the whole table for the queue).
        let query_rows = match (status, before) {
            (Some(status), Some(before)) => sqlx::query_as(select_calls!(
                "WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(status)
            .bind(before),
            (Some(status), None) => {
                sqlx::query_as(select_calls!("WHERE status = $1 ORDER BY id DESC LIMIT $2"))
                    .bind(status)
            }
            (None, Some(before)) => {
                sqlx::query_as(select_calls!("WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                    .bind(before)
            }
            (None, None) => sqlx::query_as(select_calls!("ORDER BY id DESC LIMIT $1")),
        };
        query_rows
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query("select calls"))
    }

    /// How many calls are in `status`.
    pub async fn count_status(&self, status: CallStatus) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tool_calls WHERE status = $1")
            .bind(status)
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

    pub async fn approvals(&self, id: &CallId) -> Result<Vec<ApprovalRow>, StoreError> {
        sqlx::query_as(
            "SELECT reviewer, via, reason, at FROM call_approvals WHERE call_id = $1 ORDER BY at",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select approvals"))
    }

    pub async fn events(&self, id: &CallId) -> Result<Vec<EventRow>, StoreError> {
        sqlx::query_as(
            "SELECT seq, at, kind, actor, via, detail FROM call_events WHERE call_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select events"))
    }
}

/// The SQL list of the statuses in which a call can still change (`CallStatus::is_open`).
pub(super) fn open_statuses() -> String {
    let open: Vec<String> = CallStatus::ALL
        .into_iter()
        .filter(|status| status.is_open())
        .map(|status| format!("'{status}'"))
        .collect();
    open.join(", ")
}

/// The open call (pending, or approved and not yet picked up) with `key`, if any.
async fn open_call_with_key(tx: &mut Tx, key: &AttachKey) -> Result<Option<CallId>, StoreError> {
    let row: Option<(CallId,)> =
        sqlx::query_as("SELECT id FROM tool_calls WHERE attach_key = $1 AND status IN ($2, $3)")
            .bind(key)
            .bind(CallStatus::Pending)
            .bind(CallStatus::Approved)
            .fetch_optional(&mut **tx)
            .await
            .map_err(query("look for an open call with the same key"))?;
    Ok(row.map(|(id,)| id))
}

/// The refusal a call of `agent` meets under `limits`, if any. Counts stop at the limits (a full
/// queue costs no more to count than a nearly full one). Counted: calls waiting for a decision
/// and approved ones not yet on their way.
async fn count_open(
    conn: &mut sqlx::AnyConnection,
    agent: &AgentName,
    limits: &QueueLimits,
) -> Result<Option<Parking>, StoreError> {
    let (mine,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tool_calls WHERE agent = $1 \
         AND status IN ($2, $3) LIMIT $4) AS open",
    )
    .bind(agent)
    .bind(CallStatus::Pending)
    .bind(CallStatus::Approved)
    .bind(i64::from(limits.per_agent))
    .fetch_one(&mut *conn)
    .await
    .map_err(query("count an agent's open calls"))?;
    if mine >= i64::from(limits.per_agent) {
        return Ok(Some(Parking::AgentFull(mine)));
    }
    let (all,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tool_calls \
         WHERE status IN ($1, $2) LIMIT $3) AS open",
    )
    .bind(CallStatus::Pending)
    .bind(CallStatus::Approved)
    .bind(i64::from(limits.total))
    .fetch_one(&mut *conn)
    .await
    .map_err(query("count open calls"))?;
    if all >= i64::from(limits.total) {
        return Ok(Some(Parking::QueueFull(all)));
    }
    Ok(None)
}
