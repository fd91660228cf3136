//! `POST/GET/DELETE /mcp/{upstream}`: the Streamable HTTP endpoint agents talk to, and the one
//! place the MCP core's `Reply` and [`McpError`] become HTTP.
//!
//! Checks run in the order of the contract (DESIGN.md): Host (403), Origin (403), bearer token (401), upstream
//! (404), body size (413), JSON (400, -32700), JSON-RPC shape and `Mcp-Method`/`Mcp-Name` headers
//! (400, -32600). Then a message goes one of three ways: `initialize` opens a session; a message with
//! `Mcp-Session-Id` belongs to that session; a 2026-07-28 message (no session, protocol version
//! header or `Mcp-Method`) is served statelessly over the upstream's service connection.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::{self, AgentIdentity, AuthError};
use super::error::McpError;
use super::handshake::{self, find_session};
use super::reply;
use super::request::{self, accepts_sse, header_str};
use super::session::{self, Session};
use crate::app::{AppState, Gateway};
use crate::jsonrpc::{self, Kind};
use crate::protocol::{METHOD_HEADER, SESSION_HEADER, STATELESS_VERSION};

/// The checks every method shares: Host, Origin, token, upstream. Returns the agent and the
/// upstream's gateway.
async fn admit(
    app: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    upstream: &str,
) -> Result<(AgentIdentity, Arc<Gateway>), McpError> {
    if !app
        .hosts
        .permits(crate::http_guard::HostPolicy::host_of(uri, headers))
    {
        return Err(McpError::new(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            "Forbidden: Host not allowed (add it to server.allowed_hosts)",
        ));
    }
    if !app.origins.permits(headers) {
        return Err(McpError::new(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            "Forbidden: Origin not allowed (add it to server.allowed_origins)",
        ));
    }
    let agent = match auth::authenticate(&app.config, &app.store, &app.tokens, headers).await {
        Ok(agent) => agent,
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "token check failed");
            return Err(McpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                jsonrpc::INTERNAL_ERROR,
                "cannot check the token right now; try again later",
            ));
        }
        Err(e) => return Err(McpError::unauthorized(e.to_string())),
    };
    let Some(gateway) = app.gateways.get(upstream).cloned() else {
        return Err(McpError::new(
            StatusCode::NOT_FOUND,
            jsonrpc::INVALID_REQUEST,
            format!("no upstream named {upstream:?} on this Airlock"),
        ));
    };
    Ok((agent, gateway))
}

pub async fn post(
    State(app): State<AppState>,
    Path(upstream): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match post_message(&app, &upstream, &uri, &headers, body).await {
        Ok(answer) => answer,
        Err(e) => e.into_response(),
    }
}

async fn post_message(
    app: &AppState,
    upstream: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, McpError> {
    let (agent, gateway) = admit(app, uri, headers, upstream).await?;
    let msg = request::read_body(body, app.config.server.max_body_bytes).await?;
    // From here on a refusal answers the request by its id (2026-07-28 asks it of every error).
    let id = match &msg {
        Value::Object(fields) if fields.contains_key("method") => {
            fields.get("id").cloned().unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    route(app, headers, agent, gateway, msg)
        .await
        .map_err(|e| e.answering(id))
}

/// Where a read message goes: its session, a new session (`initialize`), or the stateless path.
async fn route(
    app: &AppState,
    headers: &HeaderMap,
    agent: AgentIdentity,
    gateway: Arc<Gateway>,
    msg: Value,
) -> Result<Response, McpError> {
    let as_sse = accepts_sse(headers).ok_or_else(|| {
        McpError::new(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "Not Acceptable: the client must accept application/json and text/event-stream",
        )
    })?;
    let version = request::protocol_version(headers)?;
    // 2026-07-28 has no sessions: such a request is stateless even if it carries a session id.
    if let Some(session_id) = header_str(headers, SESSION_HEADER)
        && version != Some(STATELESS_VERSION)
    {
        let session = session_named(app, session_id, &gateway, &agent)?;
        session.touch();
        return Ok(match msg {
            // A batch's answer is one JSON array, whatever the client accepts.
            Value::Array(batch) => {
                handshake::session_batch(app, &session, batch)
                    .await?
                    .respond(false)
                    .await
            }
            msg => {
                let reply = handshake::session_message(app, &session, msg).await?;
                let grace = std::time::Duration::from_secs(app.config.server.session_idle_timeout);
                super::relay::for_session(reply, &session, as_sse, grace)
                    .respond(as_sse)
                    .await
            }
        });
    }
    let kind = jsonrpc::classify(&msg).map_err(McpError::invalid)?;
    let stateless = version == Some(STATELESS_VERSION) || headers.contains_key(METHOD_HEADER);
    if let Kind::Request {
        method: "initialize",
        id,
    } = kind
        && version != Some(STATELESS_VERSION)
    {
        let id = id.clone();
        let (reply, session) = handshake::initialize(app, gateway, agent, id, &msg).await?;
        let mut response = reply.respond(as_sse).await;
        if let Some(value) = session.and_then(|id| HeaderValue::from_str(&id).ok()) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
        return Ok(response);
    }
    if stateless {
        request::check_routing_headers(headers, &msg)?;
        super::stateless::check(headers, &msg)?;
        if !as_sse && msg.get("method").and_then(Value::as_str) == Some("subscriptions/listen") {
            // Its answer is a stream that lasts; one JSON body would never come.
            return Err(McpError::new(
                StatusCode::NOT_ACCEPTABLE,
                jsonrpc::INVALID_REQUEST,
                "Not Acceptable: subscriptions/listen answers with text/event-stream",
            ));
        }
        let reply = super::stateless::handle(app, gateway, agent, msg).await?;
        return Ok(reply.respond_stateless(as_sse).await);
    }
    Err(McpError::new(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        "Bad Request: Mcp-Session-Id header is required (send initialize first)",
    ))
}

/// The session `id` names for this agent on this upstream; a 404 that says whether it lives on
/// another instance.
fn session_named(
    app: &AppState,
    id: &str,
    gateway: &Gateway,
    agent: &AgentIdentity,
) -> Result<Arc<Session>, McpError> {
    find_session(app, id, gateway, agent).ok_or_else(|| {
        let why = if session::is_elsewhere(id, app.approvals.instance_id()) {
            "Session not found on this Airlock instance: it was opened on another one; \
             the load balancer must route by Mcp-Session-Id (see README, \"Several instances\"), \
             or initialize again"
        } else {
            "Session not found: it ended or never existed; initialize again"
        };
        McpError::new(StatusCode::NOT_FOUND, jsonrpc::INVALID_REQUEST, why)
    })
}

/// The session a GET or DELETE names, after the shared checks; `missing` is the answer when the
/// request names none.
async fn named_session(
    app: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    upstream: &str,
    missing: (StatusCode, &str),
) -> Result<Arc<Session>, McpError> {
    let (agent, gateway) = admit(app, uri, headers, upstream).await?;
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
        return Err(McpError::new(
            missing.0,
            jsonrpc::INVALID_REQUEST,
            missing.1,
        ));
    };
    find_session(app, session_id, &gateway, &agent).ok_or_else(|| {
        McpError::new(
            StatusCode::NOT_FOUND,
            jsonrpc::INVALID_REQUEST,
            "Session not found",
        )
    })
}

pub async fn get(
    State(app): State<AppState>,
    Path(upstream): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, McpError> {
    let missing = (
        StatusCode::METHOD_NOT_ALLOWED,
        "GET needs an Mcp-Session-Id (2026-07-28 has no GET stream)",
    );
    let session = named_session(&app, &uri, &headers, &upstream, missing).await?;
    if accepts_sse(&headers) != Some(true) {
        return Err(McpError::new(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "Not Acceptable: GET streams are text/event-stream",
        ));
    }
    if let Some(last) = header_str(&headers, "last-event-id")
        && let Some(resumed) = super::resume::resume(&app, &session, last).await
    {
        session.touch();
        return Ok(resumed.respond(true).await);
    }
    let Ok(sink) = session.sink.clone().try_lock_owned() else {
        return Err(McpError::new(
            StatusCode::CONFLICT,
            jsonrpc::INVALID_REQUEST,
            "Conflict: this session already has a GET stream open",
        ));
    };
    session.touch();
    let stream = futures_util::stream::unfold(sink, |mut sink| async move {
        let msg = sink.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(reply::message_event(&msg)),
            sink,
        ))
    });
    // The stream ends with the session's sink, or when Airlock shuts down.
    let stream =
        futures_util::StreamExt::take_until(stream, app.shutdown.clone().cancelled_owned());
    Ok(reply::unbuffered(
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
            .into_response(),
    ))
}

pub async fn delete(
    State(app): State<AppState>,
    Path(upstream): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<StatusCode, McpError> {
    let missing = (
        StatusCode::BAD_REQUEST,
        "Bad Request: Mcp-Session-Id header is required",
    );
    let session = named_session(&app, &uri, &headers, &upstream, missing).await?;
    app.close_session(&session.id);
    Ok(StatusCode::OK)
}
