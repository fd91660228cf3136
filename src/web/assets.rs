//! The dashboard's stylesheet, script and icon, compiled into the binary (no CDN, no files to
//! deploy next to it: the dashboard works offline and from any working directory).

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("../../static/airlock.css");
const JS: &str = include_str!("../../static/airlock.js");
const ICON: &str = include_str!("../../static/favicon.svg");

/// Assets change only with the binary; browsers may keep them for an hour.
const CACHE: &str = "public, max-age=3600";

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        CSS,
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        JS,
    )
}

pub async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, CACHE),
        ],
        ICON,
    )
}
