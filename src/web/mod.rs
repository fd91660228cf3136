//! The reviewer face: the dashboard (signed-in browsers), its live feed and assets, and the JSON
//! API (reviewer API tokens). Every response of this face carries the browser security headers.

mod api;
mod assets;
pub mod client;
pub(crate) mod dashboard;
mod error;
pub mod fields;
pub mod live;
mod page;
pub mod passwords;
mod review;
mod reviewer;
mod session;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub use error::AppError;
pub use page::own_host;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(api::router())
        .merge(dashboard::router())
        .route("/events", get(live::events))
        .route(
            "/review/{token}",
            get(review::confirm)
                .post(review::decide)
                .layer(axum::middleware::map_response(review::no_referrer)),
        )
        .route("/static/airlock.css", get(assets::css))
        .route("/static/airlock.js", get(assets::js))
        .route("/static/favicon.svg", get(assets::icon))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page::own_host,
        ))
        .layer(axum::middleware::from_fn(page::security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(fields::MAX_BODY_BYTES))
}
