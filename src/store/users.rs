//! Reviewers (dashboard and API users) and their API tokens. Only a token's SHA-256 is stored, so
//! a token is shown once, when created.

use sqlx::FromRow;
use uuid::Uuid;

use super::{Backend, Store, StoreError, Tx, query};
use crate::domain::Timestamp;

/// What a user may do: admins everything, approvers decide, viewers only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Approver,
    Viewer,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "approver" => Some(Self::Approver),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Approver => "approver",
            Self::Viewer => "viewer",
        }
    }

    pub fn may_decide(self) -> bool {
        matches!(self, Self::Admin | Self::Approver)
    }
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    role: String,
}

/// A user as the admin's list shows it, disabled ones included.
#[derive(Debug, Clone, FromRow)]
pub struct UserListing {
    pub id: String,
    pub email: String,
    role: String,
    pub disabled_at: Option<String>,
    pub created_at: String,
    /// 1 when the user has a password (can sign in to the dashboard).
    pub has_password: i64,
}

impl UserListing {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
}

/// One of a user's API tokens, without the token.
#[derive(Debug, Clone, FromRow)]
pub struct TokenListing {
    pub id: String,
    pub label: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl User {
    pub(super) fn from_parts(id: String, email: String, role: String) -> Self {
        Self { id, email, role }
    }

    /// The user's role; a role the code does not know (a hand-edited row) reads as viewer.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }

    /// The user as history and the audit log record them, acting through `via`.
    pub fn actor(&self, via: crate::domain::Via) -> crate::domain::Actor {
        crate::domain::Actor::new(self.email.as_str(), via)
    }
}

impl Store {
    /// Creates a user; `None` when a user with that email exists. Emails are kept in lower case,
    /// so one person cannot be two reviewers by changing the case.
    pub async fn add_user(&self, email: &str, role: Role) -> Result<Option<User>, StoreError> {
        let email = &email.to_lowercase();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(email)
        .bind(role.as_str())
        .bind(Timestamp::now().text())
        .execute(&self.pool)
        .await
        .map_err(query("insert user"))?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        self.user_by_email(email).await
    }

    /// The enabled user with this email (in any case).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = &email.to_lowercase();
        sqlx::query_as("SELECT id, email, role FROM users WHERE email = $1 AND disabled_at IS NULL")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select user"))
    }

    pub async fn add_user_token(&self, user: &User, token_sha256: &str) -> Result<(), StoreError> {
        self.add_labelled_user_token(user, token_sha256, None).await
    }

    /// Stores a new API token of `user` under a label the user chose (shown on /account).
    pub async fn add_labelled_user_token(
        &self,
        user: &User,
        token_sha256: &str,
        label: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_tokens (id, user_id, token_sha256, created_at, label) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&user.id)
        .bind(token_sha256)
        .bind(Timestamp::now().text())
        .bind(label)
        .execute(&self.pool)
        .await
        .map_err(query("insert user token"))?;
        Ok(())
    }

    /// The enabled user holding the unrevoked API token with this SHA-256.
    pub async fn user_by_token(&self, token_sha256: &str) -> Result<Option<User>, StoreError> {
        sqlx::query_as(
            "SELECT users.id, users.email, users.role FROM user_tokens \
             JOIN users ON users.id = user_tokens.user_id \
             WHERE user_tokens.token_sha256 = $1 AND user_tokens.revoked_at IS NULL \
             AND users.disabled_at IS NULL",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select user by token"))
    }
}

impl Store {
    /// Every user, enabled or not, by email.
    pub async fn list_users(&self) -> Result<Vec<UserListing>, StoreError> {
        sqlx::query_as(
            "SELECT id, email, role, disabled_at, created_at, \
             CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS has_password \
             FROM users ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("list users"))
    }

    /// The enabled user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        sqlx::query_as("SELECT id, email, role FROM users WHERE id = $1 AND disabled_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select user by id"))
    }

    /// Changes a user's role, unless that would leave no enabled admin; false if refused.
    pub async fn set_role(&self, user_id: &str, role: Role) -> Result<bool, StoreError> {
        self.change_user(
            user_id,
            "UPDATE users SET role = $1 WHERE id = $2",
            role.as_str(),
            role == Role::Admin,
        )
        .await
    }

    /// Disables (`true`) or enables a user. Disabling ends the user's sessions and, through the
    /// `disabled_at` check, their API tokens; the last enabled admin cannot be disabled.
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError> {
        if disabled {
            self.change_user(
                user_id,
                "UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL",
                &Timestamp::now().text(),
                false,
            )
            .await
        } else {
            sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1")
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(query("enable user"))?;
            Ok(true)
        }
    }

    /// Runs `sql` (binding `value` and the user id) in a transaction that is rolled back if it
    /// leaves no enabled admin, unless `keeps_admin` says the change cannot remove one.
    async fn change_user(
        &self,
        user_id: &str,
        sql: &'static str,
        value: &str,
        keeps_admin: bool,
    ) -> Result<bool, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        if !keeps_admin && self.backend == Backend::Postgres {
            // SQLite's BEGIN IMMEDIATE already serialises writers; on PostgreSQL two admins
            // demoting each other at once would each count the other as still there.
            sqlx::query(
                "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL FOR UPDATE",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(query("lock the admins"))?;
        }
        sqlx::query(sql)
            .bind(value)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(query("change user"))?;
        if !keeps_admin {
            let (admins,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(query("count admins"))?;
            if admins == 0 {
                tx.rollback().await.map_err(query("rollback"))?;
                return Ok(false);
            }
        }
        end_sessions_if_disabled(&mut tx, user_id).await?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(true)
    }

    /// A user's API tokens, newest first.
    pub async fn user_tokens(&self, user_id: &str) -> Result<Vec<TokenListing>, StoreError> {
        sqlx::query_as(
            "SELECT id, label, created_at, revoked_at FROM user_tokens \
             WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list user tokens"))
    }

    /// Revokes one of `user_id`'s tokens; false if it is not theirs or already revoked.
    pub async fn revoke_user_token(
        &self,
        user_id: &str,
        token_id: &str,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE user_tokens SET revoked_at = $1 \
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(Timestamp::now().text())
        .bind(token_id)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(query("revoke user token"))?;
        Ok(revoked.rows_affected() == 1)
    }
}

/// Ends a user's browser sessions and revokes their API tokens; returns how many tokens.
pub(super) async fn end_access(tx: &mut Tx, user_id: &str) -> Result<u64, StoreError> {
    end_sessions(tx, user_id).await?;
    sqlx::query("UPDATE user_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(Timestamp::now().text())
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map(|r| r.rows_affected())
        .map_err(query("revoke API tokens"))
}

pub(super) async fn end_sessions(tx: &mut Tx, user_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(query("end sessions"))?;
    Ok(())
}

async fn end_sessions_if_disabled(tx: &mut Tx, user_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM user_sessions WHERE user_id = $1 \
         AND user_id IN (SELECT id FROM users WHERE disabled_at IS NOT NULL)",
    )
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(query("end sessions"))?;
    Ok(())
}
