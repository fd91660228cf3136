//! Airlock instances sharing the database, and their heartbeats. An instance is alive while its
//! heartbeat is younger than the configured timeout. Heartbeats are written and judged with the
//! database's clock, so instances whose clocks disagree still agree on who is alive.

use super::{Backend, Store, StoreError, query};
use crate::domain::Timestamp;

/// An instance's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub heartbeat_at: String,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub token: Option<String>,
}

/// The process holding an instance id.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    pub host: &'a str,
    pub pid: u32,
    /// Random, per process.
    pub token: &'a str,
}

impl Store {
    /// The database's clock, in the stored time format.
    pub async fn db_now(&self) -> Result<Timestamp, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            Backend::Postgres => {
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            }
        };
        let (now,): (Timestamp,) = sqlx::query_as(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(query("read the database clock"))?;
        Ok(now)
    }

    /// Records that `holder` (re)started instance `id` now.
    pub async fn register_instance(&self, id: &str, holder: Holder<'_>) -> Result<(), StoreError> {
        let now = self.db_now().await?.text();
        sqlx::query(
            "INSERT INTO instances (id, started_at, heartbeat_at, host, pid, token) \
             VALUES ($1, $2, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE \
             SET started_at = $2, heartbeat_at = $2, host = $3, pid = $4, token = $5",
        )
        .bind(id)
        .bind(&now)
        .bind(holder.host)
        .bind(i64::from(holder.pid))
        .bind(holder.token)
        .execute(&self.pool)
        .await
        .map_err(query("register instance"))?;
        Ok(())
    }

    /// Beats for instance `id` held by `token`; false when the row is gone or another process
    /// holds the id now.
    pub async fn heartbeat(&self, id: &str, token: &str) -> Result<bool, StoreError> {
        let now = self.db_now().await?.text();
        let beat =
            sqlx::query("UPDATE instances SET heartbeat_at = $1 WHERE id = $2 AND token = $3")
                .bind(now)
                .bind(id)
                .bind(token)
                .execute(&self.pool)
                .await
                .map_err(query("heartbeat"))?;
        Ok(beat.rows_affected() == 1)
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        sqlx::query_as("SELECT id, heartbeat_at, host, pid, token FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select instance"))
    }

    /// Instances other than `id` whose heartbeat is newer than `alive_since`.
    pub async fn other_live_instances(
        &self,
        id: &str,
        alive_since: Timestamp,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, heartbeat_at, host, pid, token FROM instances \
             WHERE id <> $1 AND heartbeat_at >= $2 ORDER BY id",
        )
        .bind(id)
        .bind(alive_since)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select live instances"))
    }
}
