//! Airlock instances sharing the database, and their heartbeats. An instance is alive while its
//! heartbeat is younger than the configured timeout; a call held by an instance that is not alive
//! has lost its agent's request.

use super::{Store, StoreError, query, timestamp};

/// Another instance seen recently.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub heartbeat_at: String,
}

impl Store {
    /// Records that instance `id` (re)started now.
    pub async fn register_instance(&self, id: &str) -> Result<(), StoreError> {
        let now = super::now_rfc3339();
        sqlx::query(
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET started_at = $2, heartbeat_at = $2",
        )
        .bind(id)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(query("register instance"))?;
        Ok(())
    }

    pub async fn heartbeat(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET heartbeat_at = $1 WHERE id = $2")
            .bind(super::now_rfc3339())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("heartbeat"))?;
        Ok(())
    }

    /// Instances other than `id` whose heartbeat is newer than `alive_since`.
    pub async fn other_live_instances(
        &self,
        id: &str,
        alive_since: time::OffsetDateTime,
    ) -> Result<Vec<InstanceRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, heartbeat_at FROM instances WHERE id <> $1 AND heartbeat_at >= $2 ORDER BY id",
        )
        .bind(id)
        .bind(timestamp(alive_since))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select live instances"))
    }
}
