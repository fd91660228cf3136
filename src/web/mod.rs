//! The reviewer face: the JSON API (and, later, the dashboard), authenticated as users.

mod api;
mod error;
mod reviewer;

use axum::Router;

use crate::app::AppState;

pub use error::AppError;

pub fn router() -> Router<AppState> {
    Router::new().merge(api::router())
}
