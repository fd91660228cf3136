//! The MCP face: the downstream Streamable HTTP endpoint agents connect to, their sessions, the
//! policy gate on `tools/call`, and how a call parked for approval looks to its agent. Messages
//! pass through as JSON values; only `initialize`, `server/discover` and `tools/call` are looked
//! into.
//!
//! A request goes `endpoint` (HTTP checks, [`McpError`]) → `handshake` or `stateless` (which
//! session, which connection) → `forward` (a [`forward::CallContext`] through `tools_call`'s gate)
//! → upstream, or → `parked` (approval's fate, rendered) → back as a `reply::Reply`, made HTTP by
//! `endpoint`.

pub mod auth;
pub mod continuations;
mod endpoint;
mod error;
mod forward;
mod handshake;
pub mod input_rounds;
mod listen;
mod listing;
mod parked;
mod relay;
mod reply;
mod request;
mod resume;
pub mod session;
mod stateless;
pub mod tasks;
mod tools_call;
mod trail;

pub use error::McpError;

use axum::Router;
use axum::routing::post;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/mcp/{upstream}",
        post(endpoint::post)
            .get(endpoint::get)
            .delete(endpoint::delete),
    )
}
