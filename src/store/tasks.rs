//! MCP tasks of parked calls. A task is found by the SHA-256 of its id together with the SHA-256
//! of the agent token that created it, so a task id alone, or another agent's token, finds
//! nothing. Its status is its call's: this table only names the call, the token and the lifetime.

use sqlx::FromRow;

use super::{Store, StoreError, query};
use crate::domain::{CallId, Timestamp};

/// A task as stored (its id is never stored, only its SHA-256).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct TaskRow {
    pub id_sha256: String,
    pub call_id: CallId,
    pub created_at: Timestamp,
    pub ttl_ms: i64,
}

impl TaskRow {
    /// Whether the task's lifetime is over at `now` (it is then as good as gone).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.created_at + time::Duration::milliseconds(self.ttl_ms) <= now
    }
}

impl Store {
    /// Records a task for `call`, reachable with `token_sha256` only; the one already there
    /// when the token has a task for the call.
    pub async fn insert_task(
        &self,
        id_sha256: &str,
        call: &CallId,
        token_sha256: &str,
        ttl_ms: i64,
    ) -> Result<TaskRow, StoreError> {
        let created_at = Timestamp::now();
        sqlx::query(
            "INSERT INTO tasks (id_sha256, call_id, token_sha256, created_at, ttl_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_sha256) DO NOTHING",
        )
        .bind(id_sha256)
        .bind(call)
        .bind(token_sha256)
        .bind(created_at)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await
        .map_err(query("insert a task"))?;
        self.task(id_sha256, token_sha256)
            .await?
            .ok_or_else(|| StoreError::Query {
                context: "read back a task",
                source: sqlx::Error::RowNotFound,
            })
    }

    /// The task with this id digest, if `token_sha256` created it.
    pub async fn task(
        &self,
        id_sha256: &str,
        token_sha256: &str,
    ) -> Result<Option<TaskRow>, StoreError> {
        sqlx::query_as(
            "SELECT id_sha256, call_id, created_at, ttl_ms FROM tasks \
             WHERE id_sha256 = $1 AND token_sha256 = $2",
        )
        .bind(id_sha256)
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select a task"))
    }

    /// Tasks `token_sha256` created, newest first, after the cursor `before` (a task's
    /// `created_at` and id digest, as the previous page ended), at most `limit`.
    pub async fn tasks_of(
        &self,
        token_sha256: &str,
        before: Option<(Timestamp, &str)>,
        limit: u32,
    ) -> Result<Vec<TaskRow>, StoreError> {
        let (at, id) = before.map_or((None, None), |(at, id)| (Some(at), Some(id)));
        sqlx::query_as(
            "SELECT id_sha256, call_id, created_at, ttl_ms FROM tasks WHERE token_sha256 = $1 \
             AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND id_sha256 < $3)) \
             ORDER BY created_at DESC, id_sha256 DESC LIMIT $4",
        )
        .bind(token_sha256)
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("list tasks"))
    }
}
