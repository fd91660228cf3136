//! The email outbox: messages written in the same transaction as the event they announce (a
//! parked call), sent later by a worker in every instance. A row is claimed before it is sent
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two instances never claim the same row; SQLite's
//! write lock serializes its one instance), and marked sent after. A worker that dies between the
//! two leaves the row `sending`; after [`Store::reclaim_stale_mail`]'s timeout it is sent again.
//! So a crash can cause a duplicate email, never a lost one. A worker renews its claim just before
//! each send and marks only rows it still holds, so a slow worker and the one that reclaimed its
//! row cannot both send it.

use super::{Backend, Store, StoreError, Tx, query};
use crate::domain::{CallId, Timestamp};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPurpose {
    /// A call was parked: the first message about it.
    Parked,
    Reminder,
    Outcome,
    /// The calls parked within a minute of a recipient's last message, listed (rendered when
    /// sent, from `outbox_calls`).
    Digest,
    /// A one-time link to set a password.
    Password,
}

impl MailPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parked => "parked",
            Self::Reminder => "reminder",
            Self::Outcome => "outcome",
            Self::Digest => "digest",
            Self::Password => "password",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Parked,
            Self::Reminder,
            Self::Outcome,
            Self::Digest,
            Self::Password,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// A message to queue: a plain-text body, and an HTML alternative when there is one.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub purpose: MailPurpose,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    /// The mark of the placeholders where decision links go (`notify::links::LinkSlot`), when
    /// the message has any: the links are minted when it is sent, never stored.
    pub link_slot: Option<String>,
}

/// A message claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedMail {
    pub id: String,
    pub kind: Option<String>,
    pub call_id: Option<CallId>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub link_slot: Option<String>,
    pub attempts: i64,
}

/// A message as the outbox holds it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct MailRow {
    pub id: String,
    pub call_id: Option<CallId>,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct MailWithBodies {
    #[sqlx(flatten)]
    row: MailRow,
    body: String,
    html: Option<String>,
    link_slot: Option<String>,
    kind: Option<String>,
}

/// One message with its bodies, as the `/outbox` page shows it.
pub struct StoredMail {
    pub row: MailRow,
    pub body: String,
    pub html: Option<String>,
    pub link_slot: Option<String>,
    pub purpose: Option<MailPurpose>,
}

/// Queues `mail` (about call `call_id`, if any), due at `due` (`at` when it is now).
pub(super) async fn insert_mail(
    tx: &mut Tx,
    call_id: Option<&CallId>,
    mail: &NewMail,
    at: Timestamp,
) -> Result<String, StoreError> {
    let at = at.text();
    insert_due(tx, call_id, mail, &at, &at).await
}

async fn insert_due(
    tx: &mut Tx,
    call_id: Option<&CallId>,
    mail: &NewMail,
    at: &str,
    due: &str,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let notify_at =
        matches!(mail.purpose, MailPurpose::Parked | MailPurpose::Digest).then_some(due);
    sqlx::query(
        "INSERT INTO outbox (id, call_id, recipient, subject, body, html, status, attempts, \
         next_attempt_at, created_at, link_slot, kind, notify_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(call_id)
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(mail.html.as_deref())
    .bind(due)
    .bind(at)
    .bind(mail.link_slot.as_deref())
    .bind(mail.purpose.as_str())
    .bind(notify_at)
    .execute(&mut **tx)
    .await
    .map_err(query("queue an email"))?;
    Ok(id)
}

/// The body a digest carries until it is sent (its list is made then, from `outbox_calls`).
pub const DIGEST_PENDING_BODY: &str = "The calls this message lists are added until it is sent.";

/// Queues the parked call `call_id`'s message to one recipient, or, when that recipient was told
/// of a parked call less than `every` ago, adds the call to the digest that goes out `every`
/// after that message (made if needed). True when the message itself was queued.
pub(super) async fn queue_parked(
    tx: &mut Tx,
    backend: Backend,
    call_id: &CallId,
    mail: &NewMail,
    at: Timestamp,
    every: time::Duration,
) -> Result<bool, StoreError> {
    let now = at.text();
    if every <= time::Duration::ZERO {
        insert_mail(tx, Some(call_id), mail, at).await?;
        return Ok(true);
    }
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    // A digest still gathering (due later, not yet claimed) takes the call.
    let gathering: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM outbox WHERE recipient = $1 AND kind = 'digest' AND status = 'pending' \
         AND attempts = 0 AND notify_at > $2 ORDER BY notify_at LIMIT 1{lock}"
    )))
    .bind(&mail.recipient)
    .bind(&now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query("find a digest"))?;
    let digest = match gathering {
        Some((id,)) => Some(id),
        None => {
            let (last,): (Option<String>,) = sqlx::query_as(
                "SELECT MAX(notify_at) FROM outbox WHERE recipient = $1 \
                 AND kind IN ('parked', 'digest')",
            )
            .bind(&mail.recipient)
            .fetch_one(&mut **tx)
            .await
            .map_err(query("find a recipient's last message"))?;
            let last = last.and_then(|t| Timestamp::parse(&t).ok());
            match last.filter(|last| *last + every > at) {
                Some(last) => {
                    let digest = NewMail {
                        purpose: MailPurpose::Digest,
                        recipient: mail.recipient.clone(),
                        subject: "[Airlock] More calls are waiting for a decision".to_owned(),
                        body: DIGEST_PENDING_BODY.to_owned(),
                        html: None,
                        link_slot: None,
                    };
                    Some(insert_due(tx, None, &digest, &now, &(last + every).text()).await?)
                }
                None => None,
            }
        }
    };
    match digest {
        Some(digest) => {
            sqlx::query("INSERT INTO outbox_calls (mail_id, call_id) VALUES ($1, $2)")
                .bind(digest)
                .bind(call_id)
                .execute(&mut **tx)
                .await
                .map_err(query("add a call to a digest"))?;
            Ok(false)
        }
        None => {
            insert_mail(tx, Some(call_id), mail, at).await?;
            Ok(true)
        }
    }
}

impl Store {
    /// Claims up to `limit` messages that are due, for `instance`.
    pub async fn claim_mail(
        &self,
        instance: &str,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let now = Timestamp::now().text();
        let sql = match self.backend {
            Backend::Postgres => {
                "UPDATE outbox SET status = 'sending', claimed_by = $1, claimed_at = $2, \
                 attempts = attempts + 1 WHERE status = 'pending' AND id IN (SELECT id FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $2 ORDER BY id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) RETURNING id, kind, call_id, recipient, subject, body, html, link_slot, attempts"
            }
            Backend::Sqlite => {
                "UPDATE outbox SET status = 'sending', claimed_by = $1, claimed_at = $2, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $2 ORDER BY id LIMIT $3) \
                 RETURNING id, kind, call_id, recipient, subject, body, html, link_slot, attempts"
            }
        };
        let (_turn, mut tx) = self.begin_write().await?;
        let claimed = sqlx::query_as(sql)
            .bind(instance)
            .bind(&now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(query("claim emails"))?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(claimed)
    }

    /// Renews `claimer`'s claim on a message just before sending it; false when the claim was
    /// lost (another worker reclaimed it as stale), and the message must not be sent from here.
    pub async fn renew_mail_claim(&self, id: &str, claimer: &str) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE outbox SET claimed_at = $1 WHERE id = $2 AND claimed_by = $3 AND status = 'sending'",
        )
        .bind(Timestamp::now().text())
        .bind(id)
        .bind(claimer)
        .execute(&self.pool)
        .await
        .map_err(query("renew an email claim"))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Marks a message `claimer` sent. Only the holder of the claim can mark it.
    pub async fn mark_mail_sent(&self, id: &str, claimer: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL \
             WHERE id = $2 AND claimed_by = $3 AND status = 'sending'",
        )
        .bind(Timestamp::now().text())
        .bind(id)
        .bind(claimer)
        .execute(&self.pool)
        .await
        .map_err(query("mark an email sent"))?;
        Ok(())
    }

    /// A failed attempt: retried at `retry_at`, or given up (`failed`) when `retry_at` is `None`.
    pub async fn mark_mail_failed(
        &self,
        id: &str,
        claimer: &str,
        error: &str,
        retry_at: Option<time::OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let (status, next) = match retry_at {
            Some(at) => ("pending", Timestamp::from(at).text()),
            None => ("failed", Timestamp::now().text()),
        };
        sqlx::query(
            "UPDATE outbox SET status = $1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $4 AND claimed_by = $5 AND status = 'sending'",
        )
        .bind(status)
        .bind(next)
        .bind(error)
        .bind(id)
        .bind(claimer)
        .execute(&self.pool)
        .await
        .map_err(query("mark an email failed"))?;
        Ok(())
    }

    /// Puts back messages claimed before `cutoff` and never marked (their worker died mid-send).
    pub async fn reclaim_stale_mail(
        &self,
        cutoff: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'pending' WHERE status = 'sending' AND claimed_at < $1",
        )
        .bind(Timestamp::from(cutoff).text())
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(query("reclaim stale emails"))
    }

    /// One message with its bodies (the `/outbox` page).
    pub async fn mail(&self, id: &str) -> Result<Option<StoredMail>, StoreError> {
        let row: Option<MailWithBodies> = sqlx::query_as(
            "SELECT id, call_id, recipient, subject, status, attempts, created_at, sent_at, \
             last_error, body, html, link_slot, kind FROM outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select an email"))?;
        Ok(row.map(|m| StoredMail {
            row: m.row,
            body: m.body,
            html: m.html,
            link_slot: m.link_slot,
            purpose: m.kind.as_deref().and_then(MailPurpose::parse),
        }))
    }

    /// The calls a digest lists, oldest first.
    pub async fn digest_calls(&self, mail_id: &str) -> Result<Vec<super::CallRow>, StoreError> {
        let ids: Vec<(CallId,)> =
            sqlx::query_as("SELECT call_id FROM outbox_calls WHERE mail_id = $1 ORDER BY call_id")
                .bind(mail_id)
                .fetch_all(&self.pool)
                .await
                .map_err(query("select a digest's calls"))?;
        let mut calls = Vec::with_capacity(ids.len());
        for (id,) in ids {
            if let Some(call) = self.call(&id).await? {
                calls.push(call);
            }
        }
        Ok(calls)
    }

    /// The messages about one call, oldest first (shown on its page): its own, and digests
    /// listing it.
    pub async fn mails_of_call(&self, call_id: &CallId) -> Result<Vec<MailRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, call_id, recipient, subject, status, attempts, created_at, sent_at, \
             last_error FROM outbox WHERE call_id = $1 \
             OR id IN (SELECT mail_id FROM outbox_calls WHERE call_id = $1) ORDER BY id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("select a call's emails"))
    }

    /// The outbox, newest first.
    pub async fn mails(&self, limit: u32) -> Result<Vec<MailRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, call_id, recipient, subject, status, attempts, created_at, sent_at, \
             last_error FROM outbox ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select emails"))
    }
}
