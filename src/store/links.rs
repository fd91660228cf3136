//! What email links need from the store: the server's own secrets (made once, shared by every
//! instance on the database), single use of review links, and the once-only marks of a call's
//! reminder and outcome emails.

use super::{CallRow, Store, StoreError, now_rfc3339, query, timestamp};

impl Store {
    /// The secret called `name`: `candidate` if none was stored yet (then it is stored), else the
    /// stored one. Every instance ends up with the same value.
    pub async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query("store a server secret"))?;
        let (value,): (String,) =
            sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(query("read a server secret"))?;
        Ok(value)
    }

    /// Marks a review link used; false if it already was.
    pub async fn use_review_link(&self, nonce: &str, call_id: &str) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO used_review_links (nonce, call_id, used_at) VALUES ($1, $2, $3) \
             ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(call_id)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query("use a review link"))?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Whether a review link was used already.
    pub async fn review_link_used(&self, nonce: &str) -> Result<bool, StoreError> {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT nonce FROM used_review_links WHERE nonce = $1")
                .bind(nonce)
                .fetch_optional(&self.pool)
                .await
                .map_err(query("look up a review link"))?;
        Ok(found.is_some())
    }

    /// Pending calls that expire before `by` and have had no reminder; each is claimed (marked
    /// reminded) by exactly one caller, which then queues its reminder.
    pub async fn claim_reminders(
        &self,
        by: time::OffsetDateTime,
    ) -> Result<Vec<CallRow>, StoreError> {
        let due: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM tool_calls WHERE status = 'pending' AND reminded_at IS NULL \
             AND expires_at < $1 ORDER BY id LIMIT 100",
        )
        .bind(timestamp(by))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select calls to remind"))?;
        self.claim_each(
            due,
            "UPDATE tool_calls SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL",
        )
        .await
    }

    /// Calls that ended since `since` and whose outcome email was not queued yet, claimed like
    /// [`Store::claim_reminders`]. (Only recent ones: turning outcome emails on does not mail
    /// the whole history.)
    pub async fn claim_outcomes(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<CallRow>, StoreError> {
        let due: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM tool_calls WHERE decided_at > $1 AND outcome_mailed_at IS NULL \
             AND status IN ('rejected', 'expired', 'completed', 'failed', 'outcome_unknown', \
             'withdrawn', 'abandoned') ORDER BY id LIMIT 100",
        )
        .bind(timestamp(since))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select decided calls"))?;
        self.claim_each(
            due,
            "UPDATE tool_calls SET outcome_mailed_at = $1 WHERE id = $2 AND outcome_mailed_at IS NULL",
        )
        .await
    }

    async fn claim_each(
        &self,
        ids: Vec<(String,)>,
        mark: &'static str,
    ) -> Result<Vec<CallRow>, StoreError> {
        let mut claimed = Vec::new();
        for (id,) in ids {
            let won = sqlx::query(mark)
                .bind(now_rfc3339())
                .bind(&id)
                .execute(&self.pool)
                .await
                .map_err(query("claim a call's email"))?
                .rows_affected()
                == 1;
            if won && let Some(row) = self.call(&id).await? {
                claimed.push(row);
            }
        }
        Ok(claimed)
    }
}
