//! The handshake era (2025-03-26 to 2025-11-25): `initialize` opens a session, and every later
//! message names it with `Mcp-Session-Id`. A session's upstream connection is the shared service
//! connection, the agent's own, or one of its own, as the upstream's isolation says.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::auth::AgentIdentity;
use super::error::McpError;
use super::forward::{self, CallContext};
use super::reply::Reply;
use super::request::{NOT_A_NOTIFICATION, is_notification_method};
use super::session::{self, Session};
use crate::app::{AppState, Gateway};
use crate::domain::SessionKey;
use crate::jsonrpc::{self, Kind};
use crate::protocol::{HANDSHAKE_VERSIONS, negotiate_version};

/// A session is found only with the token that created it, on its own upstream (its parked
/// calls and tasks belong to that token).
pub fn find_session(
    app: &AppState,
    id: &str,
    gateway: &Gateway,
    agent: &AgentIdentity,
) -> Option<Arc<Session>> {
    app.sessions.get(id).filter(|s| {
        s.gateway.name == gateway.name
            && s.agent.name == agent.name
            && s.agent.token_sha256 == agent.token_sha256
    })
}

/// Opens a session for `agent` (within `server.max_sessions_per_agent`); its id comes back in the
/// `Mcp-Session-Id` header.
#[tracing::instrument(name = "initialize", skip_all, fields(upstream = %gateway.name, agent = %agent.name))]
pub async fn initialize(
    app: &AppState,
    gateway: Arc<Gateway>,
    agent: AgentIdentity,
    id: Value,
    msg: &Value,
) -> Result<(Reply, Option<SessionKey>), McpError> {
    let limit = app.config.server.max_sessions_per_agent;
    let Some(_opening) = app.sessions.reserve(&agent.name, limit) else {
        return Err(McpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            jsonrpc::INVALID_REQUEST,
            format!(
                "agent {} has {limit} sessions open (server.max_sessions_per_agent); end some with DELETE or let idle ones expire",
                agent.name
            ),
        ));
    };
    let requested = crate::jsonrpc::pointer(msg, "/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let upstream = &gateway.upstream;
    let (conn, owns_conn) = if upstream.shares_service_connection() {
        (upstream.service().clone(), false)
    } else if let Some(conn) = upstream.agent_connection(&agent.name) {
        (conn, false)
    } else {
        let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
        (upstream.open_session_connection(params), true)
    };
    let mut result = match conn.ready().await {
        Ok(result) => (*result).clone(),
        Err(e) => {
            if owns_conn {
                conn.stop();
            }
            let answer = jsonrpc::error_response(
                id,
                jsonrpc::INTERNAL_ERROR,
                format!("{e}; try again later"),
            );
            return Ok((Reply::One(answer), None));
        }
    };
    // A session-owned upstream answered the client's own request; keep its choice when we speak it.
    let version = match result.get("protocolVersion").and_then(Value::as_str) {
        Some(v) if owns_conn => HANDSHAKE_VERSIONS
            .iter()
            .copied()
            .find(|known| *known == v)
            .unwrap_or(negotiate_version(requested)),
        _ => negotiate_version(requested),
    };
    result["protocolVersion"] = json!(version);
    if version == super::tasks::TASKS_VERSION {
        super::tasks::advertise(&mut result);
    }
    let session_id: SessionKey = match crate::secrets::generate_session_id() {
        Ok(id) => Arc::from(session::tagged_id(&id, app.approvals.instance_id())),
        Err(e) => {
            tracing::error!(error = %e, "no randomness for a session id");
            return Err(McpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                jsonrpc::INTERNAL_ERROR,
                "internal error",
            ));
        }
    };
    tracing::info!(session = %session_id, version, "session opened");
    let session = Session::new(session_id.clone(), gateway, conn, owns_conn, agent, version);
    app.sessions.insert(session);
    let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
    Ok((Reply::One(answer), Some(session_id)))
}

/// One message of an open session: a response to a server request, a notification (a cancel of a
/// parked call withdraws it), or a request to forward.
pub async fn session_message(
    app: &AppState,
    session: &Arc<Session>,
    msg: Value,
) -> Result<Reply, McpError> {
    let kind = jsonrpc::classify(&msg).map_err(McpError::invalid)?;
    match kind {
        Kind::Response { .. } => {
            if let Err(e) = session.conn.respond(&session.id, msg).await {
                tracing::warn!(session = %session.id, error = %e, "answer to the upstream lost");
            }
            Ok(Reply::Accepted)
        }
        Kind::Notification { method } if !is_notification_method(method) => {
            Err(McpError::invalid(NOT_A_NOTIFICATION))
        }
        Kind::Notification { method } => {
            if method == "notifications/cancelled"
                && let Some(request) = crate::jsonrpc::pointer(&msg, "/params/requestId")
                && app
                    .approvals
                    .end_request(&session.id, &jsonrpc::id_key(request))
            {
                tracing::debug!(session = %session.id, "the agent stopped waiting for a parked call");
            }
            if let Err(e) = session.conn.notify(&session.id, msg).await {
                tracing::warn!(session = %session.id, error = %e, "notification to the upstream lost");
            }
            Ok(Reply::Accepted)
        }
        Kind::Request {
            method: "initialize",
            ..
        } => Err(McpError::invalid("this session is already initialized")),
        Kind::Request { .. } => {
            Ok(forward::forward(app, CallContext::of_session(session), msg).await)
        }
    }
}

impl CallContext {
    /// The context of a request in `session`.
    pub fn of_session(session: &Session) -> Self {
        let latest = session.protocol_version == super::tasks::TASKS_VERSION;
        Self {
            gateway: session.gateway.clone(),
            conn: session.conn.clone(),
            session: session.id.clone(),
            agent: session.agent.name.clone(),
            token_sha256: session.agent.token_sha256.clone(),
            task_key: session.agent.task_key.clone(),
            tasks: latest.then_some(super::tasks::Flavor::Core),
            rate_key: session.id.to_string(),
            stateless: false,
            overflow: Some(session.sink_tx.clone()),
            in_flight: Some(session.call_started()),
            streams: latest.then(|| session.streams.clone()),
        }
    }
}

/// A JSON-RPC batch, which only 2025-03-26 allows: each element is handled (and policed) on its
/// own; the answer is the array of responses (a refused element answers with its error).
pub async fn session_batch(
    app: &AppState,
    session: &Arc<Session>,
    batch: Vec<Value>,
) -> Result<Reply, McpError> {
    if session.protocol_version != "2025-03-26" {
        return Err(McpError::invalid(
            "JSON-RPC batches are only accepted on 2025-03-26 sessions",
        ));
    }
    if batch.is_empty() {
        return Err(McpError::invalid("an empty batch"));
    }
    let mut answers = Vec::new();
    for msg in batch {
        let answer = match session_message(app, session, msg).await {
            Ok(Reply::Accepted) => None,
            Ok(Reply::One(answer)) => Some(answer),
            Ok(Reply::Stream(messages)) => messages.last().await,
            Ok(Reply::Events(events)) => events.last().await,
            Err(e) => Some(e.body()),
        };
        answers.extend(answer);
    }
    Ok(if answers.is_empty() {
        Reply::Accepted
    } else {
        Reply::One(Value::Array(answers))
    })
}
