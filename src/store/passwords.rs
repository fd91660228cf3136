//! Reviewers' dashboard passwords: their argon2 hashes (never the passwords), changes that end
//! the user's other sessions, and one-time set-password links (by their token's SHA-256 only).

use super::users::{end_access, end_sessions};
use super::{Store, StoreError, User, query};
use crate::domain::Timestamp;

impl Store {
    /// The stored argon2 hash of an enabled user's password (`None`: no such user, or no password).
    pub async fn password_hash(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, email, role, password_hash FROM users \
             WHERE email = $1 AND disabled_at IS NULL",
        )
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select password hash"))?;
        Ok(row.and_then(|(id, email, role, hash)| {
            hash.map(|hash| (User::from_parts(id, email, role), hash))
        }))
    }

    /// Sets a user's password hash and ends their browser sessions; false if there is no such user.
    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query("begin"))?;
        let changed = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(query("set password"))?
            .rows_affected();
        end_sessions(&mut tx, user_id).await?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(changed == 1)
    }

    /// A user's new password, as they chose it: the hash is set, and their browser sessions and
    /// API tokens end (a password changes because the old one may be known to someone else).
    /// Returns how many API tokens were revoked.
    pub async fn change_password(&self, user_id: &str, hash: &str) -> Result<u64, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(query("set password"))?;
        let revoked = end_access(&mut tx, user_id).await?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(revoked)
    }

    /// An admin's reset of `user_id`'s password: the old one stops working, sessions and API
    /// tokens end, earlier set-password links are void, and `mail` (holding the place of a new
    /// one-time link, minted when it is sent) is queued, all in one transaction.
    pub async fn reset_password(
        &self,
        user_id: &str,
        mail: &super::NewMail,
    ) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(query("clear a password"))?;
        end_access(&mut tx, user_id).await?;
        sqlx::query("DELETE FROM password_links WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(query("void old password links"))?;
        // An earlier reset's message not sent yet would mint a link when it is: it goes too
        // (one being sent right now mints nothing once it is cancelled).
        sqlx::query(
            "UPDATE outbox SET status = 'cancelled' WHERE kind = 'password' \
             AND status IN ('pending', 'sending') \
             AND recipient = (SELECT email FROM users WHERE id = $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(query("cancel earlier password emails"))?;
        super::outbox::insert_mail(&mut tx, None, mail, Timestamp::now()).await?;
        tx.commit().await.map_err(query("commit"))
    }

    /// Stores a set-password link for `user_id` by its token's SHA-256, valid until `expires_at`,
    /// for the message whose link place is `slot` (with `replace`, in place of the link minted
    /// there before). Nothing is stored, and `false` returned, when that message was cancelled
    /// by a later reset.
    pub async fn insert_password_link(
        &self,
        token_sha256: &str,
        user_id: &str,
        (slot, replace): (&str, bool),
        expires_at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        if replace {
            sqlx::query("DELETE FROM password_links WHERE slot = $1")
                .bind(slot)
                .execute(&mut *tx)
                .await
                .map_err(query("replace a password link"))?;
        }
        let stored = sqlx::query(
            "INSERT INTO password_links (token_sha256, user_id, expires_at, created_at, slot) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS \
             (SELECT 1 FROM outbox WHERE link_slot = $5 AND status = 'cancelled')",
        )
        .bind(token_sha256)
        .bind(user_id)
        .bind(Timestamp::from(expires_at).text())
        .bind(Timestamp::now().text())
        .bind(slot)
        .execute(&mut *tx)
        .await
        .map_err(query("store a password link"))?
        .rows_affected()
            == 1;
        tx.commit().await.map_err(query("commit"))?;
        Ok(stored)
    }

    /// The user a usable (unexpired, unused) set-password link is for.
    pub async fn password_link_user(&self, token_sha256: &str) -> Result<Option<User>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT users.id, users.email, users.role FROM password_links \
             JOIN users ON users.id = password_links.user_id \
             WHERE password_links.token_sha256 = $1 AND password_links.used_at IS NULL \
             AND password_links.expires_at > $2 AND users.disabled_at IS NULL",
        )
        .bind(token_sha256)
        .bind(Timestamp::now().text())
        .fetch_optional(&self.pool)
        .await
        .map_err(query("look up a password link"))?;
        Ok(row.map(|(id, email, role)| User::from_parts(id, email, role)))
    }

    /// Spends a set-password link and sets its user's password (ending their sessions and API
    /// tokens), in one transaction; `None` when the link is unknown, used or expired.
    pub async fn set_password_by_link(
        &self,
        token_sha256: &str,
        hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let now = Timestamp::now().text();
        let user: Option<(String,)> = sqlx::query_as(
            "UPDATE password_links SET used_at = $1 WHERE token_sha256 = $2 \
             AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(&now)
        .bind(token_sha256)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query("spend a password link"))?;
        let Some((user_id,)) = user else {
            return Ok(None);
        };
        let set = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND disabled_at IS NULL",
        )
        .bind(hash)
        .bind(&user_id)
        .execute(&mut *tx)
        .await
        .map_err(query("set password"))?
        .rows_affected();
        if set != 1 {
            // Disabled since the link was checked: nothing is set, and the link stays unspent.
            tx.rollback().await.map_err(query("rollback"))?;
            return Ok(None);
        }
        end_access(&mut tx, &user_id).await?;
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, email, role FROM users WHERE id = $1")
                .bind(&user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query("select user"))?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(row.map(|(id, email, role)| User::from_parts(id, email, role)))
    }
}
