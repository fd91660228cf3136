//! The one error of the reviewer face, [`AppError`], with its HTTP status, and its two renderers:
//! as JSON (`{"error": "..."}`, the API) by itself, and as an HTML page through [`PageError`] (the
//! dashboard). Internal failures are logged once, with their cause chain, and shown as an opaque
//! message.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::approval::DecideError;
use crate::store::{Role, StoreError};

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
    /// Something Airlock needs (randomness, a turn at password hashing) is not there right now;
    /// the request may work later.
    #[error("{0}")]
    Unavailable(String),
    #[error("the database is unavailable right now; try again")]
    Store(#[from] StoreError),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The cause of an internal failure goes to the log (once, here), not to the reader.
    fn log(&self) {
        if let Self::Store(e) = self {
            tracing::error!(error = %crate::telemetry::error_chain(e), "reviewer request failed");
        }
    }
}

impl From<DecideError> for AppError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::NotFound(_) => Self::NotFound(e.to_string()),
            DecideError::NotPending { .. }
            | DecideError::AlreadyApproved { .. }
            | DecideError::DigestMismatch
            | DecideError::LinkUsed => Self::Conflict(e.to_string()),
            DecideError::Forbidden(why) => Self::Forbidden(why),
            DecideError::ReasonRequired | DecideError::ReasonTooLong(_) => {
                Self::BadRequest(e.to_string())
            }
            DecideError::Store(e) => Self::Store(e),
        }
    }
}

impl From<super::passwords::Busy> for AppError {
    fn from(_: super::passwords::Busy) -> Self {
        Self::Unavailable("Airlock is busy checking passwords; try again in a moment.".to_owned())
    }
}

/// The JSON renderer (the API).
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
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

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// The HTML renderer (the dashboard): an [`AppError`] shown as a page with its status and message.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl PageError {
    pub fn forbidden(message: &str) -> Self {
        Self(AppError::Forbidden(message.to_owned()))
    }

    pub fn bad_request(message: &str) -> Self {
        Self(AppError::BadRequest(message.to_owned()))
    }

    pub fn not_found(message: &str) -> Self {
        Self(AppError::NotFound(message.to_owned()))
    }

    /// Something Airlock needs (the database, randomness) failed; the request may work later.
    pub fn unavailable(message: &str) -> Self {
        Self(AppError::Unavailable(message.to_owned()))
    }

    /// Refuses what only an admin may do.
    pub fn admin_only(signed: &super::session::SignedIn) -> Result<(), Self> {
        if signed.user.role() == Role::Admin {
            Ok(())
        } else {
            Err(Self::forbidden("Only an admin can do this."))
        }
    }
}

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let message = self.0.to_string();
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        (status, page).into_response()
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;
