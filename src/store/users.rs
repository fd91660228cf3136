//! Reviewers (dashboard and API users) and their API tokens. Only a token's SHA-256 is stored, so
//! a token is shown once, when created.

use sqlx::FromRow;
use uuid::Uuid;

use super::{Store, StoreError, now_rfc3339, query};

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

impl User {
    /// The user's role; a role the code does not know (a hand-edited row) reads as viewer.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
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
        .bind(now_rfc3339())
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
        sqlx::query(
            "INSERT INTO user_tokens (id, user_id, token_sha256, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&user.id)
        .bind(token_sha256)
        .bind(now_rfc3339())
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
