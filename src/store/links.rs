//! What email links need from the store: review links (by their token's SHA-256 only; single
//! use), and the once-only marks of a call's reminder and outcome emails.

use super::{CallRow, NewMail, Store, StoreError, query};
use crate::domain::{Action, ArgsDigest, CallId, CallStatus, Timestamp};

/// A review link as stored: what it decides, never its token. A row whose action, digest or time
/// does not read fails to load, and so decides nothing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReviewLinkRow {
    pub token_sha256: String,
    pub call_id: CallId,
    pub reviewer: String,
    pub action: Action,
    pub args_digest: ArgsDigest,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// A review link about to be stored, by its token's SHA-256.
#[derive(Debug, Clone)]
pub struct NewReviewLink<'a> {
    pub token_sha256: &'a str,
    pub call: &'a CallId,
    pub reviewer: &'a str,
    pub action: Action,
    pub digest: &'a ArgsDigest,
    pub expires_at: Timestamp,
    /// The message place it fills, if any: it replaces the unused link minted there before.
    pub slot: Option<&'a str>,
}

impl Store {
    /// Stores a review link by its token's SHA-256 (the token itself is never stored), in place
    /// of the unused one minted for the same message place before, and forgets links that
    /// expired a week ago.
    pub async fn insert_review_link(&self, link: &NewReviewLink<'_>) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let (_turn, mut tx) = self.begin_write().await?;
        if let Some(slot) = link.slot {
            sqlx::query(
                "DELETE FROM review_links WHERE slot = $1 AND action = $2 AND used_at IS NULL",
            )
            .bind(slot)
            .bind(link.action)
            .execute(&mut *tx)
            .await
            .map_err(query("replace a message's review link"))?;
        }
        sqlx::query(
            "INSERT INTO review_links (token_sha256, call_id, reviewer, action, args_digest, \
             expires_at, created_at, slot) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(link.token_sha256)
        .bind(link.call)
        .bind(link.reviewer)
        .bind(link.action)
        .bind(link.digest)
        .bind(link.expires_at)
        .bind(now)
        .bind(link.slot)
        .execute(&mut *tx)
        .await
        .map_err(query("store a review link"))?;
        tx.commit().await.map_err(query("commit"))?;
        sqlx::query("DELETE FROM review_links WHERE expires_at < $1")
            .bind(now - time::Duration::days(7))
            .execute(&self.pool)
            .await
            .map_err(query("forget old review links"))?;
        Ok(())
    }

    /// The review link whose token has this SHA-256.
    pub async fn review_link(
        &self,
        token_sha256: &str,
    ) -> Result<Option<ReviewLinkRow>, StoreError> {
        sqlx::query_as(
            "SELECT token_sha256, call_id, reviewer, action, args_digest, expires_at, used_at \
             FROM review_links WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("look up a review link"))
    }

    /// Pending calls that expire between now and `by` and have had no reminder.
    pub async fn due_reminders(&self, by: Timestamp) -> Result<Vec<CallRow>, StoreError> {
        self.calls_where(
            "status = 'pending' AND reminded_at IS NULL AND expires_at > $1 AND expires_at < $2",
            &[&Timestamp::now().text(), &by.text()],
        )
        .await
    }

    /// Calls that ended after `since` and whose outcome email was not queued yet. (Only recent
    /// ones: turning outcome emails on does not mail the whole history.)
    pub async fn due_outcomes(&self, since: Timestamp) -> Result<Vec<CallRow>, StoreError> {
        let over: Vec<String> = CallStatus::ALL
            .into_iter()
            .filter(|status| !status.is_open())
            .map(|status| format!("'{status}'"))
            .collect();
        self.calls_where(
            &format!(
                "outcome_mailed_at IS NULL AND COALESCE(finished_at, decided_at) > $1 \
                 AND status IN ({})",
                over.join(", ")
            ),
            &[&since.text()],
        )
        .await
    }

    async fn calls_where(
        &self,
        condition: &str,
        binds: &[&str],
    ) -> Result<Vec<CallRow>, StoreError> {
        let ids: Vec<(CallId,)> = {
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
        id: &CallId,
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
        let now = Timestamp::now();
        let (_turn, mut tx) = self.begin_write().await?;
        let won = sqlx::query(mark)
            .bind(now)
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
            super::outbox::insert_mail(&mut tx, Some(id), mail, now).await?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(true)
    }
}

/// Which once-only email about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    Reminder,
    Outcome,
}
