//! Reviewers' browser sessions and failed sign-ins. A session is found by the SHA-256 of its
//! cookie, so the table never holds a usable cookie; it is valid until `expires_at` and only while
//! its user is enabled.

use super::{Store, StoreError, User, query};
use crate::domain::Timestamp;

/// A signed-in browser: its user and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub user: User,
    pub csrf: String,
    pub expires_at: String,
}

impl Store {
    pub async fn create_session(
        &self,
        cookie_sha256: &str,
        user: &User,
        csrf: &str,
        ttl: time::Duration,
    ) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc();
        sqlx::query(
            "INSERT INTO user_sessions (id_sha256, user_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(cookie_sha256)
        .bind(&user.id)
        .bind(csrf)
        .bind(Timestamp::from(now).text())
        .bind(Timestamp::from(now + ttl).text())
        .execute(&self.pool)
        .await
        .map_err(query("insert session"))?;
        Ok(())
    }

    /// The unexpired session of an enabled user with this cookie digest.
    pub async fn session(&self, cookie_sha256: &str) -> Result<Option<BrowserSession>, StoreError> {
        let row: Option<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT users.id, users.email, users.role, user_sessions.csrf, user_sessions.expires_at \
             FROM user_sessions JOIN users ON users.id = user_sessions.user_id \
             WHERE user_sessions.id_sha256 = $1 AND user_sessions.expires_at > $2 \
             AND users.disabled_at IS NULL",
        )
        .bind(cookie_sha256)
        .bind(Timestamp::now().text())
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select session"))?;
        Ok(
            row.map(|(id, email, role, csrf, expires_at)| BrowserSession {
                user: User::from_parts(id, email, role),
                csrf,
                expires_at,
            }),
        )
    }

    /// Ends a session (sign-out; `None` ends none), and forgets sessions that expired.
    pub async fn end_session(&self, cookie_sha256: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_sessions WHERE id_sha256 = $1 OR expires_at <= $2")
            .bind(cookie_sha256.unwrap_or_default())
            .bind(Timestamp::now().text())
            .execute(&self.pool)
            .await
            .map_err(query("delete session"))?;
        Ok(())
    }

    /// Records a sign-in attempt for `email` from `client`, counted as a failure until a success
    /// clears it (recorded before the password is checked, so concurrent guesses all count), and
    /// forgets failures older than `window`.
    pub async fn record_login_attempt(
        &self,
        email: &str,
        client: &str,
        window: time::Duration,
    ) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc();
        sqlx::query("INSERT INTO login_failures (email, client, at) VALUES ($1, $2, $3)")
            .bind(email.to_lowercase())
            .bind(client)
            .bind(Timestamp::from(now).text())
            .execute(&self.pool)
            .await
            .map_err(query("insert login failure"))?;
        sqlx::query("DELETE FROM login_failures WHERE at <= $1")
            .bind(Timestamp::from(now - window).text())
            .execute(&self.pool)
            .await
            .map_err(query("prune login failures"))?;
        Ok(())
    }

    /// `email`'s failed sign-ins within `window`: how many, and when the oldest was.
    pub async fn login_failures(
        &self,
        email: &str,
        window: time::Duration,
    ) -> Result<(i64, Option<String>), StoreError> {
        let since = Timestamp::from(time::OffsetDateTime::now_utc() - window).text();
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE email = $1 AND at > $2")
            .bind(email.to_lowercase())
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(query("count login failures"))
    }

    /// `client`'s failed sign-ins within `window`, whatever the emails: how many, and when the
    /// oldest was.
    pub async fn client_login_failures(
        &self,
        client: &str,
        window: time::Duration,
    ) -> Result<(i64, Option<String>), StoreError> {
        let since = Timestamp::from(time::OffsetDateTime::now_utc() - window).text();
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE client = $1 AND at > $2")
            .bind(client)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(query("count a client's login failures"))
    }

    /// Forgets `email`'s failures after a successful sign-in. (A client's failures at other
    /// emails stay counted: signing in to one's own account does not reset guessing at others.)
    pub async fn clear_login_failures(&self, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE email = $1")
            .bind(email.to_lowercase())
            .execute(&self.pool)
            .await
            .map_err(query("clear login failures"))?;
        Ok(())
    }
}
