//! Reviewers on the API present a personal API token (`airlock user token EMAIL`) as a bearer
//! token; it is looked up by its SHA-256. Agent tokens are not reviewer tokens.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppError;
use crate::app::AppState;
use crate::store::User;

/// The signed-in reviewer of an API request.
pub struct ApiUser(pub User);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AppError::Unauthorized(
                "a reviewer API token is required: Authorization: Bearer <token> (airlock user token EMAIL)",
            ))?;
        let digest = crate::secrets::sha256_hex(token.as_bytes());
        app.store
            .user_by_token(&digest)
            .await?
            .map(ApiUser)
            .ok_or(AppError::Unauthorized(
                "unknown or revoked reviewer API token",
            ))
    }
}
