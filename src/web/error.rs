//! The one error type of the reviewer face, turned into an HTTP response: a status and a JSON
//! `{"error": "..."}` a person can read. Internal failures are logged once, with their cause chain,
//! and shown as an opaque message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::approval::DecideError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the database is unavailable right now; try again")]
    Store(#[from] StoreError),
}

impl From<DecideError> for AppError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::NotFound(_) => Self::NotFound(e.to_string()),
            DecideError::NotPending { .. }
            | DecideError::AlreadyApproved { .. }
            | DecideError::DigestMismatch => Self::Conflict(e.to_string()),
            DecideError::Forbidden(why) => Self::Forbidden(why),
            DecideError::ReasonRequired | DecideError::ReasonTooLong(_) => {
                Self::BadRequest(e.to_string())
            }
            DecideError::Store(e) => Self::Store(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Store(e) => {
                tracing::error!(error = %crate::telemetry::error_chain(e), "reviewer request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let mut response = (status, Json(json!({"error": self.to_string()}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"airlock-reviewers\""),
            );
        }
        response
    }
}
