//! The audit log's tables (the `audit` module says what they hold). An event is appended in the transaction of the
//! change it records: the head row is bumped first (on PostgreSQL that locks it, so appenders
//! queue; SQLite's write lock does the same), the event is written with the head's hash as its
//! `prev_hash`, and the head moves to the new hash.

use super::{Store, StoreError, Tx, query};
use crate::domain::{AuditEvent, Timestamp, event_hash};

pub use crate::domain::NewAuditEvent;

/// Events one INSERT statement carries at most. Kept small: SQLite finds a `$N` parameter's
/// name by a linear scan, so binding a statement's parameters costs their number squared (with
/// 100 rows a call, this was 8% of the proxy's CPU), and its anonymous `?` parameters, which
/// cost nothing to find, are what SQLite gets.
const ROWS_PER_INSERT: usize = 32;
/// The columns an INSERT gives each event.
const COLUMNS: usize = 12;

pub(super) async fn append_audit(tx: &mut Tx, new: &NewAuditEvent<'_>) -> Result<(), StoreError> {
    append_audit_many(tx, std::slice::from_ref(new)).await
}

/// Appends `events` in order: the head is moved past all of them first (taking its lock), each
/// is chained to the one before, and the head's hash is set once at the end.
pub(super) async fn append_audit_many(
    tx: &mut Tx,
    events: &[NewAuditEvent<'_>],
) -> Result<(), StoreError> {
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    if count == 0 {
        return Ok(());
    }
    let (last_seq, head_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(count)
            .fetch_one(&mut **tx)
            .await
            .map_err(query("advance the audit head"))?;
    let first_seq = last_seq - count + 1;
    // hashes[i] is event i's; event i follows hashes[i - 1], the first the head's.
    let mut hashes: Vec<String> = Vec::with_capacity(events.len());
    for (new, seq) in events.iter().zip(first_seq..) {
        let prev = hashes.last().unwrap_or(&head_hash);
        let hash = event_hash(prev, &new.canonical(seq));
        hashes.push(hash);
    }
    // Many rows per statement: each statement has a fixed cost that, paid per event, showed in
    // the proxy's own latency (benches/proxy.rs). The rows are bound straight from the borrowed
    // fields (sqlx copies each once).
    let anonymous = tx.backend_name() == "SQLite";
    for (chunk, rows) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_sql(rows.len(), anonymous)));
        for (new, at) in rows.iter().zip(chunk * ROWS_PER_INSERT..) {
            let prev = at
                .checked_sub(1)
                .map_or(&head_hash, |before| &hashes[before]);
            insert = insert
                .bind(first_seq + i64::try_from(at).unwrap_or(i64::MAX))
                .bind(new.at)
                .bind(new.kind)
                .bind(new.actor)
                .bind(new.via)
                .bind(new.upstream)
                .bind(new.tool)
                .bind(new.call_id)
                .bind(new.args_digest)
                .bind(new.detail)
                .bind(prev.as_str())
                .bind(hashes[at].as_str());
        }
        insert
            .execute(&mut **tx)
            .await
            .map_err(query("append audit events"))?;
    }
    let last_hash = hashes.last().unwrap_or(&head_hash);
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(last_hash.as_str())
        .execute(&mut **tx)
        .await
        .map_err(query("move the audit head"))?;
    Ok(())
}

/// `INSERT INTO audit_events ... VALUES` with `rows` rows of parameters: anonymous (`?`) for
/// SQLite, numbered (`$N`) for PostgreSQL.
fn insert_sql(rows: usize, anonymous: bool) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(160 + rows * COLUMNS * 5);
    sql.push_str(
        "INSERT INTO audit_events (seq, at, kind, actor, via, upstream, tool, call_id, \
         args_digest, detail, prev_hash, hash) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMNS {
            if column > 0 {
                sql.push_str(", ");
            }
            if anonymous {
                sql.push('?');
            } else {
                // Writing to a String cannot fail.
                let _ = write!(sql, "${}", row * COLUMNS + column + 1);
            }
        }
        sql.push(')');
    }
    sql
}

impl Store {
    /// Up to `limit` events numbered above `after`, in order.
    pub async fn audit_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        sqlx::query_as(
            "SELECT seq, at, kind, actor, via, upstream, tool, call_id, args_digest, detail, \
             prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("read audit events"))
    }

    /// One call's audit events, in order.
    pub async fn audit_events_of_call(&self, call_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        sqlx::query_as(
            "SELECT seq, at, kind, actor, via, upstream, tool, call_id, args_digest, detail, \
             prev_hash, hash FROM audit_events WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("read a call's audit events"))
    }

    /// The chain's newest number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(query("read the audit head"))
    }

    /// The head and the pruned start in one read.
    pub async fn audit_bounds(&self) -> Result<AuditBounds, StoreError> {
        sqlx::query_as(
            "SELECT seq AS head_seq, hash AS head_hash, pruned_seq, pruned_hash \
             FROM audit_head WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(query("read the audit head"))
    }

    /// The number and hash of the last event removed by retention (0 and the genesis hash when
    /// none was): the first kept event follows it.
    pub async fn audit_pruned(&self) -> Result<(i64, String), StoreError> {
        sqlx::query_as("SELECT pruned_seq, pruned_hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(query("read where the audit log starts"))
    }

    /// Removes the events recorded before `cutoff` (stored-time text) and keeps the number and
    /// hash of the last one removed, so the rest still verifies; the removal is itself recorded
    /// (`pruned`). Returns how many events went, if any did.
    pub async fn audit_prune(&self, cutoff: &str, why: &str) -> Result<Option<i64>, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        // Events are numbered in the order they were appended; their times are when they
        // happened, a little earlier for batched ones. Everything before the first event at or
        // after the cutoff goes.
        let (head, pruned): (i64, i64) = sqlx::query_as(
            "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, pruned_seq",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(query("lock the audit head"))?;
        let (first_kept,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(seq) FROM audit_events WHERE at >= $1")
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await
                .map_err(query("find the first audit event to keep"))?;
        let last_removed = first_kept.map_or(head, |seq| seq - 1);
        if last_removed <= pruned {
            return Ok(None);
        }
        let (hash,): (String,) = sqlx::query_as("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(last_removed)
            .fetch_one(&mut *tx)
            .await
            .map_err(query("read the last audit event to remove"))?;
        sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
            .bind(last_removed)
            .execute(&mut *tx)
            .await
            .map_err(query("remove old audit events"))?;
        sqlx::query("UPDATE audit_head SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1")
            .bind(last_removed)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(query("keep the last removed audit event"))?;
        let detail = format!(
            "events {} to {last_removed} removed ({why}); the last removed had hash {hash}",
            pruned + 1
        );
        append_audit(
            &mut tx,
            &NewAuditEvent {
                at: &Timestamp::now().text(),
                kind: "pruned",
                actor: "system",
                via: "system",
                upstream: None,
                tool: None,
                call_id: None,
                args_digest: None,
                detail: Some(&detail),
            },
        )
        .await?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(Some(last_removed - pruned))
    }
}

/// What an audit search or export selects; `None` fields do not filter. Times are stored-time
/// text.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    /// Events of calls made by this agent (whoever recorded them).
    pub agent: Option<String>,
    /// Events of this kind (`allowed`, `denied`, `approved`, `sign_in`, ...).
    pub kind: Option<String>,
    /// Events recorded by this actor (a reviewer's email, `cli`, `system`, `agent:NAME`).
    pub actor: Option<String>,
    /// Events numbered up to this one (an export stops at the head it started with).
    pub max_seq: Option<i64>,
    /// Only events of calls (for reviewers who are not admins: sign-ins and user changes are
    /// for admins).
    pub calls_only: bool,
}

impl AuditFilter {
    /// The filters in words (`tool=get_chats agent=claude`), empty for none.
    pub fn describe(&self) -> String {
        [
            ("since", &self.since),
            ("until", &self.until),
            ("upstream", &self.upstream),
            ("tool", &self.tool),
            ("agent", &self.agent),
            ("kind", &self.kind),
            ("actor", &self.actor),
        ]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
        .chain(self.calls_only.then(|| "calls-only".to_owned()))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// Where the kept log starts and ends, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditBounds {
    pub head_seq: i64,
    pub head_hash: String,
    pub pruned_seq: i64,
    pub pruned_hash: String,
}

/// Which way a page of events runs from its starting number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOrder {
    /// Oldest first, numbered above the start.
    After(i64),
    /// Newest first, numbered below the start.
    Before(i64),
}

impl Store {
    /// Up to `limit` events matching `filter`, from `order`'s start in its direction.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut binds: Vec<String> = Vec::new();
        let mut param = |value: &str| {
            binds.push(value.to_owned());
            format!("${}", binds.len() + 1)
        };
        let (start, start_at, direction) = match order {
            AuditOrder::After(seq) => ("seq > $1", seq, "ASC"),
            AuditOrder::Before(seq) => ("seq < $1", seq, "DESC"),
        };
        let mut conditions = vec![start.to_owned()];
        let columns = [
            ("at >=", &filter.since),
            ("at <", &filter.until),
            ("upstream =", &filter.upstream),
            ("tool =", &filter.tool),
            ("kind =", &filter.kind),
            ("actor =", &filter.actor),
        ];
        for (test, value) in columns {
            if let Some(value) = value {
                conditions.push(format!("{test} {}", param(value)));
            }
        }
        if filter.calls_only {
            conditions.push("call_id IS NOT NULL".to_owned());
        }
        if let Some(max_seq) = filter.max_seq {
            conditions.push(format!(
                "seq <= CAST({} AS BIGINT)",
                param(&max_seq.to_string())
            ));
        }
        if let Some(agent) = &filter.agent {
            conditions.push(format!(
                "call_id IN (SELECT call_id FROM audit_events WHERE actor = {} \
                 AND call_id IS NOT NULL)",
                param(&format!("agent:{agent}"))
            ));
        }
        let limit_param = format!("${}", binds.len() + 2);
        let sql = format!(
            "SELECT seq, at, kind, actor, via, upstream, tool, call_id, args_digest, detail, \
             prev_hash, hash FROM audit_events WHERE {} ORDER BY seq {direction} LIMIT {limit_param}",
            conditions.join(" AND ")
        );
        let mut rows = sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql)).bind(start_at);
        for value in binds {
            rows = rows.bind(value);
        }
        rows.bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query("read audit events"))
    }

    /// Appends an event that belongs to no call change (a sign-in, a user or token change, a
    /// policy reload), in a transaction of its own.
    pub async fn audit(&self, event: &NewAuditEvent<'_>) -> Result<(), StoreError> {
        self.audit_many(std::slice::from_ref(event)).await
    }

    /// Appends `events` in order, all or none, in one transaction.
    pub async fn audit_many(&self, events: &[NewAuditEvent<'_>]) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        append_audit_many(&mut tx, events).await?;
        tx.commit().await.map_err(query("commit"))
    }
}
