//! `POST/GET/DELETE /mcp/{upstream}`: the Streamable HTTP endpoint agents talk to.
//!
//! Checks run in the order of the contract (DESIGN.md): Host (403), Origin (403), bearer token (401), upstream
//! (404), body size (413), JSON (400, -32700), JSON-RPC shape and `Mcp-Method`/`Mcp-Name` headers
//! (400, -32600). Then a message goes one of three ways: `initialize` opens a session; a message with
//! `Mcp-Session-Id` belongs to that session; a 2026-07-28 message (no session, protocol version
//! header or `Mcp-Method`) is served statelessly over the upstream's service connection.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{self, AuthError};
use super::parked::{self, ParkedCall};
use super::reply::{self, Forwarded};
use super::session::{self, Session};
use super::tools_call::{self, Gate};
use super::{
    HANDSHAKE_VERSIONS, METHOD_HEADER, NAME_HEADER, SESSION_HEADER, STATELESS_VERSION,
    VERSION_HEADER, negotiate_version,
};
use crate::app::AppState;
use crate::jsonrpc::{self, Kind};
use crate::upstream::{SessionKey, Upstream, UpstreamError};

/// The 2026-07-28 error code for a protocol version the server does not speak.
const UNSUPPORTED_VERSION: i64 = -32022;

/// An early refusal: HTTP status plus a JSON-RPC error body (id null) the client can show.
fn refuse(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(jsonrpc::error_response(Value::Null, code, message)),
    )
        .into_response()
}

/// The checks every method shares: Host, Origin, token, upstream. Returns the agent and the
/// upstream.
async fn admit(
    app: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    upstream: &str,
) -> Result<(auth::AgentIdentity, Arc<Upstream>), Response> {
    if !app.hosts.permits(auth::HostPolicy::host_of(uri, headers)) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            "Forbidden: Host not allowed (add it to server.allowed_hosts)",
        ));
    }
    if !app.origins.permits(headers) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            "Forbidden: Origin not allowed (add it to server.allowed_origins)",
        ));
    }
    let agent = match auth::authenticate(&app.config, &app.store, &app.tokens, headers).await {
        Ok(agent) => agent,
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "token check failed");
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                jsonrpc::INTERNAL_ERROR,
                "cannot check the token right now; try again later",
            ));
        }
        Err(e) => {
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                jsonrpc::INVALID_REQUEST,
                e.to_string(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"airlock\""),
            );
            return Err(response);
        }
    };
    let Some(upstream) = app.upstreams.get(upstream).cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            jsonrpc::INVALID_REQUEST,
            format!("no upstream named {upstream:?} on this Airlock"),
        ));
    };
    Ok((agent, upstream))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the client takes SSE (else it gets one JSON body); `None` if it takes neither.
fn accepts_sse(headers: &HeaderMap) -> Option<bool> {
    let Some(accept) = header_str(headers, header::ACCEPT.as_str()) else {
        return Some(true);
    };
    let accept = accept.to_ascii_lowercase();
    if accept.contains("text/event-stream") || accept.contains("*/*") {
        Some(true)
    } else if accept.contains("application/json") {
        Some(false)
    } else {
        None
    }
}

pub async fn post(
    State(app): State<AppState>,
    Path(upstream): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (agent, upstream) = match admit(&app, &uri, &headers, &upstream).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let Ok(bytes) = axum::body::to_bytes(body, app.config.server.max_body_bytes).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!(
                "request body over {} bytes (server.max_body_bytes)",
                app.config.server.max_body_bytes
            ),
        );
    };
    let msg: Value = match serde_json::from_slice(&bytes) {
        Ok(msg) => msg,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                jsonrpc::PARSE_ERROR,
                format!("Parse error: {e}"),
            );
        }
    };
    let Some(as_sse) = accepts_sse(&headers) else {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "Not Acceptable: the client must accept application/json and text/event-stream",
        );
    };
    let version = header_str(&headers, VERSION_HEADER);
    if let Some(v) = version
        && v != STATELESS_VERSION
        && !HANDSHAKE_VERSIONS.contains(&v)
    {
        // 2026-07-28's UnsupportedProtocolVersion, with the list a client can pick from.
        let mut supported = vec![STATELESS_VERSION];
        supported.extend(HANDSHAKE_VERSIONS.iter().rev());
        let mut answer = jsonrpc::error_response(
            Value::Null,
            UNSUPPORTED_VERSION,
            format!(
                "Unsupported MCP-Protocol-Version {v:?}; supported: {}",
                supported.join(", ")
            ),
        );
        answer["error"]["data"] = json!({"supported": supported, "requested": v});
        return (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response();
    }

    // 2026-07-28 has no sessions: such a request is stateless even if it carries a session id.
    if let Some(session_id) = header_str(&headers, SESSION_HEADER)
        && version != Some(STATELESS_VERSION)
    {
        let Some(session) = find_session(&app, session_id, &upstream, &agent) else {
            let why = if session::is_elsewhere(session_id, app.approvals.instance_id()) {
                "Session not found on this Airlock instance: it was opened on another one; \
                 the load balancer must route by Mcp-Session-Id (see README, \"Several instances\"), \
                 or initialize again"
            } else {
                "Session not found: it ended or never existed; initialize again"
            };
            return refuse(StatusCode::NOT_FOUND, jsonrpc::INVALID_REQUEST, why);
        };
        session.touch();
        return match msg {
            Value::Array(batch) => session_batch(&app, &session, batch).await,
            msg => session_message(&app, &session, msg, as_sse).await,
        };
    }
    let kind = match jsonrpc::classify(&msg) {
        Ok(kind) => kind,
        Err(why) => return invalid(why),
    };
    if let Kind::Request {
        method: "initialize",
        id,
    } = kind
    {
        let id = id.clone();
        return initialize(&app, upstream, agent, id, &msg, as_sse).await;
    }
    if version == Some(STATELESS_VERSION) || headers.contains_key(METHOD_HEADER) {
        if let Err(why) = check_routing_headers(&headers, &msg) {
            return invalid(&why);
        }
        return stateless(&app, upstream, agent, msg, as_sse).await;
    }
    refuse(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        "Bad Request: Mcp-Session-Id header is required (send initialize first)",
    )
}

/// A message without an id gets no answer, so a `tools/call` sent that way would run unseen by the
/// policy gate (a generic JSON-RPC server executes such "notifications"). Only MCP's own
/// notification methods may travel without an id.
fn is_notification_method(method: &str) -> bool {
    method.starts_with("notifications/")
}

const NOT_A_NOTIFICATION: &str =
    "only notifications/* may be sent without an id; a request needs an id";

fn invalid(why: &str) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        format!("Invalid Request: {why}"),
    )
}

/// A session is found only by the agent that created it, on its own upstream.
fn find_session(
    app: &AppState,
    id: &str,
    upstream: &Upstream,
    agent: &auth::AgentIdentity,
) -> Option<Arc<Session>> {
    app.sessions
        .get(id)
        .filter(|s| s.upstream.name == upstream.name && s.agent.name == agent.name)
}

async fn initialize(
    app: &AppState,
    upstream: Arc<Upstream>,
    agent: auth::AgentIdentity,
    id: Value,
    msg: &Value,
    as_sse: bool,
) -> Response {
    let limit = app.config.server.max_sessions_per_agent;
    let Some(_opening) = app.sessions.reserve(&agent.name, limit) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            jsonrpc::INVALID_REQUEST,
            format!(
                "agent {} has {limit} sessions open (server.max_sessions_per_agent); end some with DELETE or let idle ones expire",
                agent.name
            ),
        );
    };
    let requested = msg
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = negotiate_version(requested);
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
            return reply::single(
                jsonrpc::error_response(
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    format!("{e}; try again later"),
                ),
                as_sse,
            );
        }
    };
    // A session-owned upstream answered the client's own request; keep its choice when we speak it.
    let version = match result.get("protocolVersion").and_then(Value::as_str) {
        Some(v) if owns_conn => HANDSHAKE_VERSIONS
            .iter()
            .copied()
            .find(|known| *known == v)
            .unwrap_or(version),
        _ => version,
    };
    result["protocolVersion"] = json!(version);
    let session_id: SessionKey = match crate::secrets::generate_session_id() {
        Ok(id) => Arc::from(session::tagged_id(&id, app.approvals.instance_id())),
        Err(e) => {
            tracing::error!(error = %e, "no randomness for a session id");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                jsonrpc::INTERNAL_ERROR,
                "internal error",
            );
        }
    };
    tracing::info!(upstream = %upstream.name, agent = %agent.name, session = %session_id, version, "session opened");
    let session = Session::new(
        session_id.clone(),
        upstream,
        conn,
        owns_conn,
        agent,
        version,
    );
    app.sessions.insert(session);
    let mut response = reply::single(
        json!({"jsonrpc": "2.0", "id": id, "result": result}),
        as_sse,
    );
    if let Ok(value) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

async fn session_message(
    app: &AppState,
    session: &Arc<Session>,
    msg: Value,
    as_sse: bool,
) -> Response {
    let kind = match jsonrpc::classify(&msg) {
        Ok(kind) => kind,
        Err(why) => return invalid(why),
    };
    match kind {
        Kind::Response { .. } => {
            if let Err(e) = session.conn.respond(&session.id, msg).await {
                tracing::warn!(session = %session.id, error = %e, "answer to the upstream lost");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Notification { method } if !is_notification_method(method) => {
            invalid(NOT_A_NOTIFICATION)
        }
        Kind::Notification { method } => {
            if method == "notifications/cancelled"
                && let Some(request) = msg.pointer("/params/requestId")
                && app
                    .approvals
                    .withdraw_request(&session.id, &jsonrpc::id_key(request))
            {
                tracing::debug!(session = %session.id, "the agent cancelled a parked call");
            }
            if let Err(e) = session.conn.notify(&session.id, msg).await {
                tracing::warn!(session = %session.id, error = %e, "notification to the upstream lost");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Request {
            method: "initialize",
            ..
        } => invalid("this session is already initialized"),
        Kind::Request { .. } => {
            let call = Call {
                app,
                upstream: &session.upstream,
                conn: &session.conn,
                session: &session.id,
                agent: &session.agent.name,
                session_key: &session.id,
                overflow: Some(session.sink_tx.clone()),
                stateless: false,
                in_flight: Some(session.call_started()),
            };
            call.forward(msg, as_sse).await
        }
    }
}

/// A JSON-RPC batch, which only 2025-03-26 allows: each element is handled (and policed) on its
/// own; the answer is the array of responses.
async fn session_batch(app: &AppState, session: &Arc<Session>, batch: Vec<Value>) -> Response {
    if session.protocol_version != "2025-03-26" {
        return invalid("JSON-RPC batches are only accepted on 2025-03-26 sessions");
    }
    if batch.is_empty() {
        return invalid("an empty batch");
    }
    let mut answers = Vec::new();
    for msg in batch {
        let response = session_message(app, session, msg, false).await;
        if response.status() == StatusCode::ACCEPTED || response.status() == StatusCode::NO_CONTENT
        {
            continue;
        }
        let Ok(bytes) = axum::body::to_bytes(response.into_body(), usize::MAX).await else {
            continue;
        };
        if let Ok(answer) = serde_json::from_slice::<Value>(&bytes) {
            answers.push(answer);
        }
    }
    if answers.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        axum::Json(Value::Array(answers)).into_response()
    }
}

/// `Mcp-Method` must name the body's method, and `Mcp-Name` the tool, resource or prompt.
fn check_routing_headers(headers: &HeaderMap, msg: &Value) -> Result<(), String> {
    let method = msg.get("method").and_then(Value::as_str);
    let Some(method) = method else {
        return Err(
            "a 2026-07-28 request carries a method (responses have no place here)".to_owned(),
        );
    };
    match header_str(headers, METHOD_HEADER) {
        Some(h) if decode_header(h) == method => {}
        Some(h) => {
            return Err(format!(
                "Mcp-Method {h:?} does not match the body's method {method:?}"
            ));
        }
        None => return Err("the Mcp-Method header is required".to_owned()),
    }
    let name = match method {
        "tools/call" | "prompts/get" => msg.pointer("/params/name"),
        "resources/read" => msg.pointer("/params/uri"),
        _ => return Ok(()),
    }
    .and_then(Value::as_str);
    match (header_str(headers, NAME_HEADER), name) {
        (Some(h), Some(name)) if decode_header(h) == name => Ok(()),
        (Some(h), _) => Err(format!("Mcp-Name {h:?} does not match the body")),
        (None, _) => Err(format!("the Mcp-Name header is required for {method}")),
    }
}

/// Header values that are not plain ASCII travel as `=?base64?...?=`.
fn decode_header(value: &str) -> String {
    use base64::Engine;
    value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| value.to_owned())
}

async fn stateless(
    app: &AppState,
    upstream: Arc<Upstream>,
    agent: auth::AgentIdentity,
    msg: Value,
    as_sse: bool,
) -> Response {
    let conn = upstream.stateless_connection(&agent.name);
    match jsonrpc::classify(&msg) {
        Ok(Kind::Request {
            id,
            method: "server/discover",
        }) => {
            let id = id.clone();
            let answer = match conn.ready().await {
                Ok(init) => {
                    json!({"jsonrpc": "2.0", "id": id, "result": super::discover_result(&init)})
                }
                Err(e) => jsonrpc::error_response(
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    format!("{e}; try again later"),
                ),
            };
            reply::single(answer, as_sse)
        }
        Ok(Kind::Request { .. }) => {
            let key: SessionKey = Arc::from(format!("stateless:{}", uuid::Uuid::new_v4()));
            let call = Call {
                app,
                upstream: &upstream,
                conn: &conn,
                session: &key,
                agent: &agent.name,
                session_key: &agent.token_sha256,
                overflow: None,
                stateless: true,
                in_flight: None,
            };
            call.forward(msg, as_sse).await
        }
        Ok(Kind::Notification { method }) if !is_notification_method(method) => {
            invalid(NOT_A_NOTIFICATION)
        }
        Ok(Kind::Notification { .. }) => {
            let key: SessionKey = Arc::from("stateless");
            if let Err(e) = conn.notify(&key, msg).await {
                tracing::warn!(upstream = %upstream.name, error = %e, "notification to the upstream lost");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Kind::Response { .. }) | Err(_) => {
            invalid("a 2026-07-28 POST carries one request or notification")
        }
    }
}

/// One request on its way upstream.
struct Call<'a> {
    app: &'a AppState,
    upstream: &'a Arc<Upstream>,
    conn: &'a crate::upstream::Connection,
    session: &'a SessionKey,
    agent: &'a str,
    session_key: &'a str,
    overflow: Option<tokio::sync::mpsc::Sender<Value>>,
    stateless: bool,
    in_flight: Option<super::session::InFlight>,
}

impl Call<'_> {
    /// An answer Airlock gives itself, in the revision the client speaks.
    fn answer(&self, mut answer: Value, as_sse: bool) -> Response {
        if self.stateless {
            super::mark_complete(&mut answer);
        }
        reply::single(answer, as_sse)
    }

    async fn forward(self, msg: Value, as_sse: bool) -> Response {
        let started = Instant::now();
        let original_id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut tool = None;
        let mut slot = None;
        let mut trail = None;
        if method != "tools/call" {
            let subject = match crate::policy::Subject::of(&method, msg.get("params")) {
                Ok(subject) => subject,
                Err(why) => {
                    let answer = jsonrpc::error_response(original_id, jsonrpc::INVALID_PARAMS, why);
                    return self.answer(answer, as_sse);
                }
            };
            if let Some(text) = self
                .upstream
                .policy
                .current()
                .refusal(&self.upstream.name, &subject)
            {
                let audited = format!("{method} {}", subject.name());
                super::trail::Trail::new(self.app, &self.upstream.name, &audited, self.agent, &msg)
                    .refused("denied", &text);
                tracing::info!(upstream = %self.upstream.name, %method, subject = subject.name(), "request refused by the policy");
                let answer =
                    jsonrpc::error_response(original_id, crate::policy::POLICY_REFUSAL, text);
                return self.answer(answer, as_sse);
            }
        }
        if method == "tools/call" {
            let caller = tools_call::Caller {
                agent: self.agent,
                session_key: self.session_key,
                stateless: self.stateless,
            };
            match tools_call::gate(self.app, self.upstream, &caller, &msg).await {
                Gate::Forward {
                    tool: name,
                    slot: s,
                    trail: t,
                } => {
                    tool = Some(name);
                    slot = s;
                    trail = Some(t);
                }
                Gate::Park { tool, rule } => {
                    let call = ParkedCall {
                        app: self.app.clone(),
                        upstream: self.upstream.clone(),
                        conn: self.conn.clone(),
                        session: self.session.clone(),
                        agent: self.agent.to_owned(),
                        stateless: self.stateless,
                        overflow: self.overflow,
                        in_flight: self.in_flight,
                        msg,
                        tool,
                        rule,
                    };
                    return parked::respond(call, as_sse).await;
                }
                Gate::Refuse(answer) => return self.answer(answer, as_sse),
            }
        }
        let (upstream_id, replies) = match self.conn.request(self.session, msg).await {
            Ok(sent) => sent,
            Err(e) => {
                if let Some(slot) = slot {
                    slot.release();
                }
                if let Some(mut trail) = trail {
                    trail.failed(&e.to_string(), false);
                }
                if let Some(tool) = &tool {
                    self.app.metrics.tool_call(
                        &self.upstream.name,
                        tool,
                        crate::metrics::Outcome::Unavailable,
                    );
                }
                let answer = if let UpstreamError::DuplicateRequestId { .. } = e {
                    jsonrpc::error_response(original_id, jsonrpc::INVALID_REQUEST, e.to_string())
                } else if tool.is_some() {
                    jsonrpc::tool_error_result(original_id, format!("{e}; try again later"))
                } else {
                    jsonrpc::error_response(
                        original_id,
                        jsonrpc::INTERNAL_ERROR,
                        format!("{e}; try again later"),
                    )
                };
                return self.answer(answer, as_sse);
            }
        };
        let forwarded = Forwarded {
            upstream: self.upstream.name.clone(),
            method,
            tool,
            original_id,
            metrics: self.app.metrics.clone(),
            slot,
            trail,
            started,
            cancel_on_close: self.stateless.then(|| (self.conn.clone(), upstream_id)),
            overflow: self.overflow,
            stateless: self.stateless,
            _in_flight: self.in_flight,
        };
        if as_sse {
            reply::sse(forwarded, replies)
        } else {
            reply::json(forwarded, replies).await
        }
    }
}

/// The session a GET or DELETE names, after the shared checks; `missing` is the answer when the
/// request names none.
async fn named_session(
    app: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    upstream: &str,
    missing: (StatusCode, &str),
) -> Result<Arc<Session>, Response> {
    let (agent, upstream) = admit(app, uri, headers, upstream).await?;
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
        return Err(refuse(missing.0, jsonrpc::INVALID_REQUEST, missing.1));
    };
    find_session(app, session_id, &upstream, &agent).ok_or_else(|| {
        refuse(
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
) -> Response {
    let missing = (
        StatusCode::METHOD_NOT_ALLOWED,
        "GET needs an Mcp-Session-Id (2026-07-28 has no GET stream)",
    );
    let session = match named_session(&app, &uri, &headers, &upstream, missing).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if accepts_sse(&headers) != Some(true) {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "Not Acceptable: GET streams are text/event-stream",
        );
    }
    let Ok(sink) = session.sink.clone().try_lock_owned() else {
        return refuse(
            StatusCode::CONFLICT,
            jsonrpc::INVALID_REQUEST,
            "Conflict: this session already has a GET stream open",
        );
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
    reply::unbuffered(
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
            .into_response(),
    )
}

pub async fn delete(
    State(app): State<AppState>,
    Path(upstream): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let missing = (
        StatusCode::BAD_REQUEST,
        "Bad Request: Mcp-Session-Id header is required",
    );
    match named_session(&app, &uri, &headers, &upstream, missing).await {
        Ok(session) => {
            app.close_session(&session.id);
            StatusCode::OK.into_response()
        }
        Err(response) => response,
    }
}
