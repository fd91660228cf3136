//! Policy counters (`state` blocks in policies): a value per counter key and calendar window,
//! shared by every instance. A call reserves all its increments in one transaction, or none of
//! them; the same rows serialize concurrent reservations (the SQLite write lock, a transaction
//! advisory lock per key on PostgreSQL), so two calls cannot both take the last unit.

use super::{Backend, Store, StoreError, query};

/// One increment of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterStep {
    /// Whose counter (already a digest of agent, upstream, scope and name).
    pub key: String,
    /// The start of the calendar window it counts in (Unix seconds).
    pub window_start: i64,
    pub amount: i64,
    /// The most the counter may reach; `None` counts without a limit.
    pub limit: Option<i64>,
}

impl Store {
    /// The value of each `(key, window_start)` (zero when nothing was counted there yet).
    pub async fn counter_values(&self, keys: &[(String, i64)]) -> Result<Vec<i64>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for (key, window_start) in keys {
            let value: Option<(i64,)> = sqlx::query_as(
                "SELECT value FROM policy_counters WHERE counter_key = $1 AND window_start = $2",
            )
            .bind(key)
            .bind(window_start)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("read a policy counter"))?;
            values.push(value.map_or(0, |(v,)| v));
        }
        Ok(values)
    }

    /// Adds every step, or none: `Ok(Err(i))` when step `i` would pass its limit.
    pub async fn reserve_counters(
        &self,
        steps: &[CounterStep],
    ) -> Result<Result<(), usize>, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        for (i, step) in steps.iter().enumerate() {
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&step.key)
                    .execute(&mut *tx)
                    .await
                    .map_err(query("lock a policy counter"))?;
            }
            sqlx::query("DELETE FROM policy_counters WHERE counter_key = $1 AND window_start < $2")
                .bind(&step.key)
                .bind(step.window_start)
                .execute(&mut *tx)
                .await
                .map_err(query("forget a policy counter's past windows"))?;
            sqlx::query(
                "INSERT INTO policy_counters (counter_key, window_start, value) VALUES ($1, $2, 0) \
                 ON CONFLICT (counter_key, window_start) DO NOTHING",
            )
            .bind(&step.key)
            .bind(step.window_start)
            .execute(&mut *tx)
            .await
            .map_err(query("start a policy counter"))?;
            let added = match step.limit {
                Some(limit) => sqlx::query(
                    "UPDATE policy_counters SET value = value + $1 \
                     WHERE counter_key = $2 AND window_start = $3 AND value + $1 <= $4",
                )
                .bind(step.amount)
                .bind(&step.key)
                .bind(step.window_start)
                .bind(limit),
                None => sqlx::query(
                    "UPDATE policy_counters SET value = value + $1 \
                     WHERE counter_key = $2 AND window_start = $3",
                )
                .bind(step.amount)
                .bind(&step.key)
                .bind(step.window_start),
            }
            .execute(&mut *tx)
            .await
            .map_err(query("reserve a policy counter"))?;
            if added.rows_affected() == 0 {
                return Ok(Err(i));
            }
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(Ok(()))
    }

    /// Takes reserved steps back (the upstream answered with an error). A window that has
    /// ended since is left alone: its count no longer matters.
    pub async fn release_counters(&self, steps: &[CounterStep]) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        for step in steps {
            sqlx::query(
                "UPDATE policy_counters SET value = value - $1 \
                 WHERE counter_key = $2 AND window_start = $3",
            )
            .bind(step.amount)
            .bind(&step.key)
            .bind(step.window_start)
            .execute(&mut *tx)
            .await
            .map_err(query("give a policy counter back"))?;
        }
        tx.commit().await.map_err(query("commit"))
    }
}
