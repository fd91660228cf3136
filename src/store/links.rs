//! What email links need from the store: the server's own secrets (made once, shared by every
//! instance on the database), single use of review links, and the once-only marks of a call's
//! reminder and outcome emails.

use super::{CallRow, NewMail, Store, StoreError, now_rfc3339, query, timestamp};

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

    /// Pending calls that expire between now and `by` and have had no reminder.
    pub async fn due_reminders(
        &self,
        by: time::OffsetDateTime,
    ) -> Result<Vec<CallRow>, StoreError> {
        self.calls_where(
            "status = 'pending' AND reminded_at IS NULL AND expires_at > $1 AND expires_at < $2",
            &[&now_rfc3339(), &timestamp(by)],
        )
        .await
    }

    /// Calls that ended after `since` and whose outcome email was not queued yet. (Only recent
    /// ones: turning outcome emails on does not mail the whole history.)
    pub async fn due_outcomes(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<CallRow>, StoreError> {
        self.calls_where(
            "outcome_mailed_at IS NULL AND COALESCE(finished_at, decided_at) > $1 \
             AND status IN ('rejected', 'expired', 'completed', 'failed', 'outcome_unknown', \
             'withdrawn', 'abandoned')",
            &[&timestamp(since)],
        )
        .await
    }

    async fn calls_where(
        &self,
        condition: &'static str,
        binds: &[&str],
    ) -> Result<Vec<CallRow>, StoreError> {
        let ids: Vec<(String,)> = {
            let sql = format!("SELECT id FROM tool_calls WHERE {condition} ORDER BY id LIMIT 100");
            let mut query_ids = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for bind in binds {
                query_ids = query_ids.bind(*bind);
            }
            query_ids
                .fetch_all(&self.pool)
                .await
                .map_err(query("select calls due an email"))?
        };
        let mut rows = Vec::with_capacity(ids.len());
        for (id,) in ids {
            if let Some(row) = self.call(&id).await? {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// Marks call `id`'s reminder (or outcome) email done and queues `mails`, in one transaction;
    /// false (and nothing queued) when another caller did it first.
    pub async fn queue_followup(
        &self,
        id: &str,
        kind: Followup,
        mails: &[NewMail],
    ) -> Result<bool, StoreError> {
        let mark = match kind {
            Followup::Reminder => {
                "UPDATE tool_calls SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL"
            }
            Followup::Outcome => {
                "UPDATE tool_calls SET outcome_mailed_at = $1 WHERE id = $2 AND outcome_mailed_at IS NULL"
            }
        };
        let now = now_rfc3339();
        let mut tx = self.begin_write().await?;
        let won = sqlx::query(mark)
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query("mark a call's email"))?
            .rows_affected()
            == 1;
        if !won {
            tx.rollback().await.map_err(query("rollback"))?;
            return Ok(false);
        }
        for mail in mails {
            super::outbox::insert_mail(&mut tx, id, mail, &now).await?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(true)
    }

    /// Takes back the use of a review link whose decision could not be made (so it can be used
    /// again).
    pub async fn unuse_review_link(&self, nonce: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM used_review_links WHERE nonce = $1")
            .bind(nonce)
            .execute(&self.pool)
            .await
            .map_err(query("take back a review link's use"))?;
        Ok(())
    }
}

/// Which once-only email about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    Reminder,
    Outcome,
}
