//! Rate-limit slots in the database, so a limit keyed by agent token holds across instances. A
//! slot is one counted call, alive until its `expires_at`: a sliding window, like the in-memory
//! limiter's. Taking one is serialized per bucket by a transaction-scoped advisory lock on
//! PostgreSQL (SQLite's write lock does the same).

use std::time::Duration;

use super::{Backend, Store, StoreError, query};
use crate::domain::Timestamp;

impl Store {
    /// Counts a call in `bucket` against `max` per `window`, or says how long until one would be
    /// accepted. Returns the slot's id, for [`Store::release_rate_slot`].
    pub async fn take_rate_slot(
        &self,
        bucket: &str,
        max: u32,
        window: Duration,
    ) -> Result<Result<String, Duration>, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(bucket)
                .execute(&mut *tx)
                .await
                .map_err(query("lock a rate bucket"))?;
        }
        let now = time::OffsetDateTime::now_utc();
        let now_text = Timestamp::from(now).text();
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM rate_slots WHERE bucket = $1 AND expires_at > $2")
                .bind(bucket)
                .bind(&now_text)
                .fetch_one(&mut *tx)
                .await
                .map_err(query("count rate slots"))?;
        if count >= i64::from(max) {
            // The slot whose expiry brings the count below `max`.
            let (frees_at,): (String,) = sqlx::query_as(
                "SELECT expires_at FROM rate_slots WHERE bucket = $1 AND expires_at > $2 \
                 ORDER BY expires_at LIMIT 1 OFFSET $3",
            )
            .bind(bucket)
            .bind(&now_text)
            .bind(count - i64::from(max))
            .fetch_one(&mut *tx)
            .await
            .map_err(query("find the next free rate slot"))?;
            let wait = time::OffsetDateTime::parse(
                &frees_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|at| Duration::try_from(at - now).unwrap_or_default())
            .unwrap_or(window);
            return Ok(Err(wait));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let expires = now + time::Duration::try_from(window).unwrap_or(time::Duration::ZERO);
        sqlx::query("INSERT INTO rate_slots (id, bucket, expires_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(bucket)
            .bind(Timestamp::from(expires).text())
            .execute(&mut *tx)
            .await
            .map_err(query("take a rate slot"))?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(Ok(id))
    }

    /// Gives a slot back (the upstream did not carry the call out).
    pub async fn release_rate_slot(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_slots WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("release a rate slot"))?;
        Ok(())
    }

    /// Forgets slots that have left their window.
    pub async fn prune_rate_slots(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_slots WHERE expires_at <= $1")
            .bind(Timestamp::now().text())
            .execute(&self.pool)
            .await
            .map_err(query("prune rate slots"))?;
        Ok(())
    }
}
