//! What the history page and the sweeps ask of the calls table: filtered keyset pages, daily
//! counts, calls past their expiry or left behind by a dead instance, and the masking of calls
//! stored before masked copies existed.

use super::calls::{open_statuses, select_calls};
use super::{CallRow, Store, StoreError, query};
use crate::domain::{CallId, CallStatus, Timestamp};

/// How many ids one `IN (...)` query carries (SQLite allows 32766 parameters; stay far below).
const IDS_PER_QUERY: usize = 500;

/// What the history page filters calls by; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub agent: Option<String>,
    /// Decided by, or approved by, this reviewer.
    pub reviewer: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Text anywhere in the arguments as stored.
    pub text: Option<String>,
}

impl Store {
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
            conditions.push(format!("created_at >= {}", param(since.text())));
        }
        if let Some(until) = &filter.until {
            conditions.push(format!("created_at < {}", param(until.text())));
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
        since: Timestamp,
    ) -> Result<Vec<(String, CallStatus, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT substr(decided_at, 1, 10) AS day, status, COUNT(*) FROM tool_calls \
             WHERE decided_at >= $1 GROUP BY substr(decided_at, 1, 10), status",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(query("count decisions per day"))
    }

    /// Up to `limit` calls stored before `args_shown` existed, with ids after `after`, in id
    /// order: (id, args_json).
    pub async fn calls_without_shown_args(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(CallId, String)>, StoreError> {
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
    pub async fn set_shown_args(&self, id: &CallId, shown: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tool_calls SET args_shown = $1, args_json = CASE WHEN status IN ({}) \
                 THEN args_json ELSE $1 END WHERE id = $2",
            open_statuses()
        )))
        .bind(shown)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("store masked arguments"))?;
        Ok(())
    }

    /// The statuses of those of `ids` that are no longer pending.
    pub async fn decided_among(&self, ids: &[CallId]) -> Result<Vec<CallId>, StoreError> {
        let mut decided = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // Only numbered placeholders are formatted in; the ids themselves are bound. (sqlx's
            // QueryBuilder writes `?` for the Any driver, which PostgreSQL rejects.)
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id FROM tool_calls WHERE status <> 'pending' AND id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query_as::<_, (CallId,)>(sqlx::AssertSqlSafe(sql));
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

    /// Calls past their deadline at `cutoff`, of any instance, oldest first: pending ones past
    /// their expiry, and approved ones past their pickup deadline.
    pub async fn overdue(
        &self,
        status: CallStatus,
        cutoff: Timestamp,
    ) -> Result<Vec<CallId>, StoreError> {
        let sql = match status {
            CallStatus::Approved => {
                "SELECT id FROM tool_calls WHERE status = $1 AND (pickup_by IS NULL OR pickup_by < $2) \
                 ORDER BY id LIMIT 1000"
            }
            _ => {
                "SELECT id FROM tool_calls WHERE status = $1 AND expires_at < $2 \
                 ORDER BY id LIMIT 1000"
            }
        };
        let rows: Vec<(CallId,)> = sqlx::query_as(sql)
            .bind(status)
            .bind(cutoff)
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
        alive_since: Timestamp,
    ) -> Result<Vec<CallId>, StoreError> {
        let rows: Vec<(CallId,)> = sqlx::query_as(
            "SELECT id FROM tool_calls WHERE status = $1 AND ( \
               ($2 = 1 AND instance_id = $3) \
               OR (instance_id <> $3 AND instance_id NOT IN \
                   (SELECT id FROM instances WHERE heartbeat_at >= $4))) \
             ORDER BY id LIMIT 1000",
        )
        .bind(status)
        .bind(i64::from(including_mine))
        .bind(me)
        .bind(alive_since)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select orphaned calls"))?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
