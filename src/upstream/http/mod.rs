//! A Streamable HTTP upstream: one upstream MCP session per connection.
//!
//! Each message is a POST; the answer is `202`, one JSON body, or an SSE stream whose events are
//! routed as messages related to the request that opened it. After the handshake a GET stream
//! carries the server's unrelated messages (a `405` means the server offers none). An upstream that
//! forgot the session (`404`) is initialized again and the message sent once more.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::Mutex;

mod client;
mod stream;

use client::Response;
pub use client::{ClientError, HttpClient};

use stream::{ERROR_SNIPPET_BYTES, read_capped, read_events, route_response};

use super::UpstreamError;
use super::link::{LinkState, Shared, Wire};

const SESSION_HEADER: &str = "mcp-session-id";

/// Why a POST failed, and whether the upstream had accepted it (then the tool may have run).
struct PostError {
    error: UpstreamError,
    accepted: bool,
}

impl PostError {
    fn accepted(error: UpstreamError) -> Self {
        Self {
            error,
            accepted: true,
        }
    }
}

/// Failures before the upstream answered with a success status: the message never got in.
impl From<UpstreamError> for PostError {
    fn from(error: UpstreamError) -> Self {
        Self {
            error,
            accepted: false,
        }
    }
}
const VERSION_HEADER: &str = "mcp-protocol-version";

pub(super) struct HttpWire {
    client: HttpClient,
    url: url::Url,
    /// `url` as requests name it.
    uri: http::Uri,
    headers: HeaderMap,
    session: std::sync::Mutex<Option<HeaderValue>>,
    /// Serializes handshakes so concurrent first calls initialize once.
    handshake: Mutex<()>,
}

impl HttpWire {
    pub(super) fn new(
        client: HttpClient,
        url: url::Url,
        uri: http::Uri,
        headers: HeaderMap,
    ) -> Self {
        Self {
            client,
            url,
            uri,
            headers,
            session: std::sync::Mutex::new(None),
            handshake: Mutex::new(()),
        }
    }

    fn session(&self) -> Option<HeaderValue> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets the session if it is still `expected` and marks the link as starting, both under the
    /// session lock, so a concurrent call that saw the same 404 finds the link not up and waits
    /// for the new handshake. True if this call did it.
    fn clear_session_if(&self, shared: &Shared, expected: Option<&HeaderValue>) -> bool {
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if session.as_ref() == expected {
            *session = None;
            shared.set_state(LinkState::Starting);
            true
        } else {
            false
        }
    }

    /// "cannot reach http://host/path: connection refused", with no credentials of the URL in it:
    /// this text reaches agents and `/readyz`.
    fn unreachable(&self, shared: &Shared, e: &client::SendError) -> UpstreamError {
        shared.unavailable(format!(
            "cannot reach {}: {}",
            display_url(&self.url),
            error_chain(e)
        ))
    }

    fn set_session(&self, value: Option<HeaderValue>) {
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }

    fn post(&self, shared: &Shared, msg: &Value) -> client::RequestBuilder {
        let request = self
            .client
            .post(&self.uri)
            .headers(&self.headers)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(msg);
        if crate::protocol::is_stateless_message(msg) {
            return stateless_headers(request, msg);
        }
        let mut request = request;
        if let Some(session) = self.session() {
            request = request.header(SESSION_HEADER, session);
        }
        if let Some(version) = negotiated_version(shared) {
            request = request.header(VERSION_HEADER, version);
        }
        request
    }

    /// Sends a message. A request is posted from a task of its own, so that an agent hanging up
    /// does not abort it halfway (for handshake-era agents a closed connection is no cancellation);
    /// its failure reaches the caller through the reply stream.
    async fn send_message(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        msg: &Value,
        related: Option<u64>,
    ) -> Result<(), UpstreamError> {
        let Some(id) = related else {
            return self
                .post_and_route(shared, msg, None)
                .await
                .map_err(|e| e.error);
        };
        let (wire, shared) = (self.clone(), shared.clone());
        let msg = msg.clone();
        tokio::spawn(async move {
            if let Err(e) = wire.post_and_route(&shared, &msg, Some(id)).await {
                shared.fail_one(id, e.error, e.accepted);
            }
        });
        Ok(())
    }

    /// Posts one message and routes whatever comes back (a JSON body or an SSE stream).
    async fn post_and_route(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        msg: &Value,
        related: Option<u64>,
    ) -> Result<(), PostError> {
        let method = msg.get("method").and_then(Value::as_str);
        let is_initialize = method == Some("initialize");
        // A 404 during the handshake itself is a failure, not an expired session: initializing
        // again from inside the handshake would wait on its own lock.
        let in_handshake = is_initialize || method == Some("notifications/initialized");
        let stateless = crate::protocol::is_stateless_message(msg);
        // A 2026-07-28 POST carries no session, so its 404 says nothing about the session's.
        let sent_with = if stateless { None } else { self.session() };
        let mut response = self
            .post(shared, msg)
            .send()
            .await
            .map_err(|e| self.unreachable(shared, &e))?;
        if response.status() == StatusCode::NOT_FOUND && sent_with.is_some() && !in_handshake {
            // Only the first call to see the old session expire resets it; later ones find the
            // new session already there and just send again.
            if self.clear_session_if(shared, sent_with.as_ref()) {
                tracing::info!(upstream = %shared.upstream, "upstream session expired; initializing again");
            }
            self.ensure_up(shared).await?;
            response = self
                .post(shared, msg)
                .send()
                .await
                .map_err(|e| self.unreachable(shared, &e))?;
        }
        let status = response.status();
        // A 2026-07-28 server refuses a request with an HTTP error and a JSON-RPC error in the
        // body: that is its answer, for the client.
        if status.is_client_error() && stateless && is_json(&response) {
            route_response(self, shared, response, related).await?;
            // A body that was no answer to the request (an OAuth error, an `id` of null) must
            // not leave it waiting.
            return match related {
                Some(id) if shared.is_pending(id) => Err(PostError::accepted(
                    shared.unavailable(format!("HTTP {status} without an answer to the request")),
                )),
                _ => Ok(()),
            };
        }
        if !status.is_success() {
            let body = read_capped(response, ERROR_SNIPPET_BYTES, true)
                .await
                .unwrap_or_default();
            let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(shared
                .unavailable(format!("HTTP {status}: {snippet}"))
                .into());
        }
        // A late answer to an initialize the handshake already gave up on must not install its
        // session over a newer one.
        if is_initialize
            && related.is_some_and(|id| shared.is_pending(id))
            && let Some(session) = response.headers().get(SESSION_HEADER)
        {
            self.set_session(Some(session.clone()));
        }
        route_response(self, shared, response, related).await
    }

    /// Reopens a request's cut stream: `GET` with `Last-Event-ID` on the session. `None` when the
    /// server will not (no session, or not a success with an event stream).
    async fn resume(&self, shared: &Shared, last_event_id: &str) -> Option<Response> {
        let session = self.session()?;
        let mut request = self
            .client
            .get(&self.uri)
            .headers(&self.headers)
            .header(header::ACCEPT, "text/event-stream")
            .header(SESSION_HEADER, session)
            .header("last-event-id", last_event_id);
        if let Some(version) = negotiated_version(shared) {
            request = request.header(VERSION_HEADER, version);
        }
        let response = tokio::select! {
            r = request.send() => r.ok()?,
            () = shared.stop.cancelled() => return None,
        };
        let streams = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/event-stream"));
        if response.status().is_success() && streams {
            tracing::debug!(upstream = %shared.upstream, "resumed a cut response stream");
            Some(response)
        } else {
            tracing::debug!(upstream = %shared.upstream, status = %response.status(), "the upstream would not resume a stream");
            None
        }
    }

    /// Listens on the GET stream for the server's own messages, reconnecting while the session lives.
    async fn listen(wire: Arc<Self>, shared: Arc<Shared>) {
        // One listener per upstream session: when the session is replaced, its listener ends and
        // the new handshake starts another.
        let Some(session) = wire.session() else {
            return;
        };
        let mut delay = Duration::from_millis(500);
        while !shared.stop.is_cancelled() && wire.session().as_ref() == Some(&session) {
            let mut request = wire
                .client
                .get(&wire.uri)
                .headers(&wire.headers)
                .header(header::ACCEPT, "text/event-stream")
                .header(SESSION_HEADER, session.clone());
            if let Some(version) = negotiated_version(&shared) {
                request = request.header(VERSION_HEADER, version);
            }
            let opened = tokio::select! {
                r = request.send() => r,
                () = shared.stop.cancelled() => return,
            };
            match opened {
                Ok(r) if r.status().is_success() => {
                    delay = Duration::from_millis(500);
                    tokio::select! {
                        _ = read_events(&shared, r, None) => {}
                        () = shared.stop.cancelled() => return,
                    }
                }
                Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => return,
                Ok(r) if r.status() == StatusCode::NOT_FOUND => return,
                Ok(r) => {
                    tracing::debug!(upstream = %shared.upstream, status = %r.status(), "GET stream refused")
                }
                Err(e) => {
                    tracing::debug!(upstream = %shared.upstream, error = %error_chain(&e), "GET stream failed")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.stop.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// Ends the upstream session, as a polite client does.
    pub(super) async fn close(&self) {
        if let Some(session) = self.session() {
            let _ = self
                .client
                .delete(&self.uri)
                .headers(&self.headers)
                .header(SESSION_HEADER, session)
                .send()
                .await;
        }
    }
}

impl HttpWire {
    /// Initializes the upstream session unless it is up; concurrent callers share one handshake.
    /// Boxed as `Send` because it is reached again from inside a send (an expired session), and a
    /// recursive async call has to name its future's type.
    fn ensure_up<'a>(
        self: &'a Arc<Self>,
        shared: &'a Arc<Shared>,
    ) -> BoxFuture<'a, Result<Arc<Value>, UpstreamError>> {
        let wire = self;
        Box::pin(async move {
            if let Some(result) = up_result(shared) {
                return Ok(result);
            }
            if shared.stop.is_cancelled() {
                return Err(shared.unavailable("stopped".to_owned()));
            }
            let _guard = wire.handshake.lock().await;
            if let Some(result) = up_result(shared) {
                return Ok(result);
            }
            // A new handshake starts without a session; a failed one leaves none behind.
            wire.set_session(None);
            match shared.initialize().await {
                Ok(result) => {
                    // Known before any request is let through, so none is translated that could
                    // pass through. A no leaves translation on.
                    let _ = shared.probe_stateless().await;
                    shared.set_state(LinkState::Up(result.clone()));
                    tokio::spawn(HttpWire::listen(wire.clone(), shared.clone()));
                    Ok(result)
                }
                Err(e) => {
                    wire.set_session(None);
                    shared.set_state(LinkState::Down(e.to_string()));
                    Err(e)
                }
            }
        })
    }
}

/// A transport of HTTP requests, shared by the link (`Arc`: a request's post runs in a task of
/// its own).
impl Wire for Arc<HttpWire> {
    fn send<'a>(
        &'a self,
        link: &'a Arc<Shared>,
        msg: &'a Value,
        related: Option<u64>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(self.send_message(link, msg, related))
    }

    fn connect<'a>(
        &'a self,
        link: &'a Arc<Shared>,
    ) -> Option<BoxFuture<'a, Result<Arc<Value>, UpstreamError>>> {
        Some(self.ensure_up(link))
    }
}

/// A 2026-07-28 request as that revision posts it: no session, its version, and the routing
/// headers a server (or another gateway) may route and check it by.
fn stateless_headers(request: client::RequestBuilder, msg: &Value) -> client::RequestBuilder {
    use crate::protocol::{METHOD_HEADER, NAME_HEADER, STATELESS_VERSION};
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut request = request
        .header(VERSION_HEADER, STATELESS_VERSION)
        .header(METHOD_HEADER, method);
    if let Some(name) = crate::protocol::routing_name(method, msg).and_then(Value::as_str) {
        request = request.header(NAME_HEADER, header_value(name));
    }
    request
}

/// A header value as 2026-07-28 writes one: plain visible ASCII as it is, anything else as
/// `=?base64?...?=`.
fn header_value(text: &str) -> String {
    use base64::Engine;
    let plain = text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.starts_with("=?base64?");
    if plain {
        text.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"))
}

fn up_result(shared: &Shared) -> Option<Arc<Value>> {
    match &*shared.state.borrow() {
        LinkState::Up(result) => Some(result.clone()),
        _ => None,
    }
}

fn negotiated_version(shared: &Shared) -> Option<HeaderValue> {
    match &*shared.state.borrow() {
        LinkState::Up(result) => result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok()),
        _ => None,
    }
}

/// Builds the header map for an HTTP upstream: its configured headers, and credentials in the
/// URL's user info (`https://user:password@host/mcp`) as `Authorization: Basic`, unless a
/// configured header sets `Authorization` itself.
pub(super) fn header_map(
    headers: &std::collections::BTreeMap<String, crate::config::Secret>,
    url: &url::Url,
) -> HeaderMap {
    let mut map: HeaderMap = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value.expose()).ok()?,
            ))
        })
        .collect();
    if !url.username().is_empty() && !map.contains_key(header::AUTHORIZATION) {
        use base64::Engine;
        let decoded = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = format!(
            "{}:{}",
            decoded(url.username()),
            decoded(url.password().unwrap_or_default())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
        if let Ok(mut value) = HeaderValue::from_str(&format!("Basic {basic}")) {
            value.set_sensitive(true);
            map.insert(header::AUTHORIZATION, value);
        }
    }
    map
}

/// `url` without its user info, as requests name it (the credentials go in a header).
pub(super) fn request_uri(url: &url::Url) -> Result<::http::Uri, ::http::uri::InvalidUri> {
    let mut bare = url.clone();
    // Only URLs that cannot have user info refuse these, and they have none to remove.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.as_str().parse()
}

/// A URL as it may be shown to agents and on `/readyz`: scheme, host and port only. Credentials
/// hide in user info, queries and even paths (`/mcp/<key>/...`).
fn display_url(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// An error with its causes, e.g. "the request failed: client error (Connect): tcp connect
/// error: Connection refused (os error 111)".
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_the_url_become_basic_auth_unless_a_header_sets_it() {
        let url = url::Url::parse("https://ann:s%40cret@mcp.example.org/mcp").expect("a URL");
        let map = super::header_map(&Default::default(), &url);
        // "ann:s@cret" in base64.
        assert_eq!(map["authorization"], "Basic YW5uOnNAY3JldA==");
        assert_eq!(
            super::request_uri(&url).expect("a URI").to_string(),
            "https://mcp.example.org/mcp"
        );
        let configured = std::collections::BTreeMap::from([(
            "Authorization".to_owned(),
            crate::config::Secret::new("Bearer upstream-secret"),
        )]);
        let map = super::header_map(&configured, &url);
        assert_eq!(map["authorization"], "Bearer upstream-secret");
        let plain = url::Url::parse("https://mcp.example.org/mcp").expect("a URL");
        assert!(super::header_map(&Default::default(), &plain).is_empty());
    }
}
