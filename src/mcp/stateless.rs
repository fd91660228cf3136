//! 2026-07-28 requests: no sessions, each POST carries one request or notification and its
//! routing headers; passed through to an upstream that speaks 2026-07-28, else served over the
//! upstream's service connection (or the agent's own, with `isolation = "agent"`), Airlock
//! holding the handshake-era upstream session on their behalf (see `upstream`'s docs).

use std::sync::Arc;

use serde_json::{Value, json};

use super::auth::AgentIdentity;
use super::error::McpError;
use super::forward::{self, CallContext};
use super::reply::Reply;
use super::request::{NOT_A_NOTIFICATION, is_notification_method};
use crate::app::{AppState, Gateway};
use crate::domain::SessionKey;
use crate::jsonrpc::{self, Kind};

/// The 2026-07-28 rules a request must meet before anything else looks at it: a method that
/// revision has (HTTP 404, -32601 otherwise: the handshake-era `initialize`, `ping`,
/// `logging/setLevel` and `resources/(un)subscribe` are gone), and a `params._meta` naming the
/// protocol version and the client's capabilities (HTTP 400, -32602), whose version is the
/// `MCP-Protocol-Version` header's (HTTP 400, -32020).
pub fn check(headers: &axum::http::HeaderMap, msg: &Value) -> Result<(), McpError> {
    use crate::protocol::{
        HEADER_MISMATCH, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, REMOVED_IN_STATELESS,
        STATELESS_METHODS, VERSION_HEADER,
    };
    use axum::http::StatusCode;
    let Ok(Kind::Request { method, .. }) = jsonrpc::classify(msg) else {
        return Ok(());
    };
    if REMOVED_IN_STATELESS.contains(&method) || !STATELESS_METHODS.contains(&method) {
        let why = if REMOVED_IN_STATELESS.contains(&method) {
            "it was removed in 2026-07-28"
        } else {
            "no such 2026-07-28 method"
        };
        return Err(McpError::new(
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            format!("Method not found: {method} ({why})"),
        ));
    }
    let meta = crate::jsonrpc::pointer(msg, "/params/_meta");
    let version = meta
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let capabilities = meta.and_then(|m| m.get(META_CLIENT_CAPABILITIES));
    let (Some(version), Some(Value::Object(_))) = (version, capabilities) else {
        return Err(McpError::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_PARAMS,
            format!(
                "Invalid params: a 2026-07-28 request carries params._meta with \
                 {META_PROTOCOL_VERSION} (a string) and {META_CLIENT_CAPABILITIES} (an object)"
            ),
        ));
    };
    match super::request::header_str(headers, VERSION_HEADER) {
        Some(header) if header != version => Err(McpError::new(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            format!(
                "Header mismatch: MCP-Protocol-Version {header:?} is not the request's \
                 {META_PROTOCOL_VERSION} {version:?}"
            ),
        )),
        _ => Ok(()),
    }
}

pub async fn handle(
    app: &AppState,
    gateway: Arc<Gateway>,
    agent: AgentIdentity,
    msg: Value,
) -> Result<Reply, McpError> {
    let conn = gateway.upstream.stateless_connection(&agent.name).await;
    match jsonrpc::classify(&msg) {
        Ok(Kind::Request {
            id,
            method: "server/discover",
        }) => {
            let id = id.clone();
            let answer = match conn.ready().await {
                Ok(init) => {
                    let mut result = crate::protocol::discover_result(&init);
                    super::tasks::advertise_extension(&mut result);
                    json!({"jsonrpc": "2.0", "id": id, "result": result})
                }
                Err(e) => jsonrpc::error_response(
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    format!("{e}; try again later"),
                ),
            };
            Ok(Reply::One(answer))
        }
        Ok(Kind::Request {
            method: "subscriptions/listen",
            ..
        }) if !conn.speaks_stateless() => Ok(super::listen::listen(&conn, &agent.name, &msg).await),
        Ok(Kind::Request { .. }) => {
            let session: SessionKey = Arc::from(format!("stateless:{}", uuid::Uuid::new_v4()));
            let ctx = CallContext {
                gateway,
                conn,
                session,
                agent: agent.name,
                token_sha256: agent.token_sha256.clone(),
                task_key: agent.task_key.clone(),
                tasks: Some(super::tasks::Flavor::Extension),
                rate_key: agent.token_sha256,
                stateless: true,
                overflow: None,
                in_flight: None,
                streams: None,
            };
            Ok(forward::forward(app, ctx, msg).await)
        }
        Ok(Kind::Notification { method }) if !is_notification_method(method) => {
            Err(McpError::invalid(NOT_A_NOTIFICATION))
        }
        Ok(Kind::Notification { .. }) => {
            let key: SessionKey = Arc::from("stateless");
            if let Err(e) = conn.notify(&key, msg).await {
                tracing::warn!(upstream = %gateway.name, error = %e, "notification to the upstream lost");
            }
            Ok(Reply::Accepted)
        }
        Ok(Kind::Response { .. }) | Err(_) => Err(McpError::invalid(
            "a 2026-07-28 POST carries one request or notification",
        )),
    }
}
