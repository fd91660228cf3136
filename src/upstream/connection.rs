//! One live MCP connection to an upstream server (a stdio child or an HTTP session), as the rest
//! of Airlock holds it: the handle that sends requests and notifications and registers sessions.
//! The routing itself is `link`'s.
//!
//! Invariants:
//! - Every request sent upstream gets a fresh numeric id; the downstream id (and progress token) is
//!   restored on everything that flows back, so each side sees only its own ids. This is the one
//!   change the proxy makes to a message.
//! - A request's reply stream ends with exactly one final item: its response, or `Failed` when the
//!   connection died first. After a cancellation it ends with nothing.
//! - Server-to-client requests go to the session that caused them when that can be told (the HTTP
//!   stream they arrived on, or the only session with calls in flight); otherwise to every candidate
//!   session, and the first answer wins. Only a session a request was sent to may answer it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::UpstreamError;
use super::link::{HANDSHAKE_TIMEOUT, LinkState, Opening, Shared, Wire};
use super::reply::{ReplyRx, reply_channel};
use super::routes::{Pending, SessionRoute};
use crate::domain::SessionKey;
use crate::jsonrpc;

/// A cheap handle on a connection; the connection stops when `stop` is called or Airlock shuts down.
#[derive(Clone)]
pub struct Connection(pub(super) Arc<Shared>);

/// How long a caller waits for a starting connection before giving up.
const READY_WAIT: Duration = Duration::from_secs(15);

impl Connection {
    pub(super) fn new(
        upstream: Arc<str>,
        opening: Opening,
        wire: Box<dyn Wire>,
        stop: CancellationToken,
    ) -> Self {
        Self(Arc::new(Shared::new(upstream, opening, wire, stop)))
    }

    pub fn state(&self) -> LinkState {
        self.0.state.borrow().clone()
    }

    /// Waits until the connection is initialized and returns the upstream's `InitializeResult`.
    /// A connection that is down fails at once: the agent is told rather than kept waiting.
    pub async fn ready(&self) -> Result<Arc<Value>, UpstreamError> {
        if let Some(connect) = self.0.wire.connect(&self.0) {
            // The handshake bounds itself (HANDSHAKE_TIMEOUT); this only guards against a hang.
            return tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, connect)
                .await
                .unwrap_or_else(|_| Err(self.0.unavailable("the handshake hung".to_owned())));
        }
        let mut rx = self.0.state.subscribe();
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    LinkState::Up(result) => return Ok(result),
                    LinkState::Down(cause) => return Err(self.0.unavailable(cause)),
                    LinkState::Stopped => return Err(self.0.unavailable("stopped".to_owned())),
                    LinkState::Starting => {}
                }
                if rx.changed().await.is_err() {
                    return Err(self.0.unavailable("stopped".to_owned()));
                }
            }
        };
        tokio::time::timeout(READY_WAIT, wait)
            .await
            .unwrap_or_else(|_| Err(self.0.unavailable("still starting".to_owned())))
    }

    /// A request of Airlock's own (not an agent's), e.g. `tools/list` for `airlock check`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, UpstreamError> {
        self.ready().await?;
        self.0.internal_request(method, params).await
    }

    pub fn register_session(
        &self,
        session: SessionKey,
        agent: Arc<str>,
        sink: mpsc::Sender<Value>,
    ) {
        self.0.routes().sessions.insert(
            session,
            SessionRoute {
                sink,
                agent,
                listens_only: false,
            },
        );
    }

    /// Like [`Connection::register_session`], for a route that only receives the server's
    /// notifications (never its requests); [`Connection::unregister_session`] ends it.
    pub fn register_listener(&self, key: SessionKey, agent: Arc<str>, sink: mpsc::Sender<Value>) {
        self.0.routes().sessions.insert(
            key,
            SessionRoute {
                sink,
                agent,
                listens_only: true,
            },
        );
    }

    /// Ends a session's use of the connection: its calls still in flight are cancelled upstream
    /// (nobody is left to receive their answers), and server requests only it could answer are
    /// refused, so the upstream does not wait for them forever.
    pub fn unregister_session(&self, session: &SessionKey) {
        let (cancelled, orphaned) = {
            let mut routes = self.0.routes();
            routes.sessions.remove(session);
            routes.by_downstream.retain(|(s, _), _| s != session);
            let cancelled: Vec<u64> = routes
                .pending
                .iter()
                .filter(|(_, p)| &p.session == session)
                .map(|(id, _)| *id)
                .collect();
            for id in &cancelled {
                routes.pending.remove(id);
            }
            let mut orphaned = Vec::new();
            routes.server_requests.retain(|id, targets| {
                targets.retain(|t| t != session);
                if targets.is_empty() {
                    orphaned.push(id.clone());
                }
                !targets.is_empty()
            });
            (cancelled, orphaned)
        };
        if cancelled.is_empty() && orphaned.is_empty() {
            return;
        }
        let shared = self.0.clone();
        tokio::spawn(async move {
            for id in cancelled {
                let note = jsonrpc::notification(
                    "notifications/cancelled",
                    json!({"requestId": id, "reason": "the agent's session ended"}),
                );
                let _ = shared.send(&note, None).await;
            }
            for key in orphaned {
                if let Ok(id) = serde_json::from_str::<Value>(&key) {
                    shared
                        .refuse(id, "the client this request was for has gone")
                        .await;
                }
            }
        });
    }

    /// A 2026-07-28 client's message passes through as it came to an upstream that speaks that
    /// revision; to any other, it goes in the upstream session's revision, without the keys that
    /// describe the client's own hop.
    fn translate(&self, msg: &mut Value) {
        if !self.0.stateless.load(Ordering::Relaxed) {
            crate::protocol::strip_stateless_meta(msg);
        }
    }

    /// Whether the upstream answers 2026-07-28 requests itself (its `server/discover` says so).
    pub fn speaks_stateless(&self) -> bool {
        self.0.stateless.load(Ordering::Relaxed)
    }

    /// Whether the upstream answered a `server/discover` probe at all.
    pub(super) fn probe_answered(&self) -> bool {
        self.0.probe_answered()
    }

    /// Marks the connection as one agent's alone (`isolation = "agent"`): a server request on
    /// it that names no call may go to that agent's one 2026-07-28 call in flight.
    pub(super) fn serve_one_agent(&self) {
        self.0.routes().one_agent = true;
    }

    /// Sends a downstream request upstream; returns the upstream id and the reply stream.
    pub async fn request(
        &self,
        session: &SessionKey,
        msg: Value,
    ) -> Result<(u64, ReplyRx), UpstreamError> {
        self.send_request(session, msg, false).await
    }

    /// [`Connection::request`] for a 2026-07-28 client's request whose caller turns the
    /// upstream's server requests into input requests: they come on its reply stream.
    pub async fn request_taking_input(
        &self,
        session: &SessionKey,
        msg: Value,
    ) -> Result<(u64, ReplyRx), UpstreamError> {
        self.send_request(session, msg, true).await
    }

    async fn send_request(
        &self,
        session: &SessionKey,
        mut msg: Value,
        takes_input: bool,
    ) -> Result<(u64, ReplyRx), UpstreamError> {
        self.ready().await?;
        self.translate(&mut msg);
        let upstream_id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let original_id = msg.get("id").cloned().unwrap_or(Value::Null);
        msg["id"] = json!(upstream_id);
        let original_token =
            match crate::jsonrpc::pointer_mut(&mut msg, "/params/_meta/progressToken") {
                Some(token) => Some(std::mem::replace(token, json!(upstream_id))),
                None => None,
            };
        let (tx, rx) = reply_channel();
        {
            let mut routes = self.0.routes();
            let key = (session.clone(), jsonrpc::id_key(&original_id));
            if routes.by_downstream.contains_key(&key) {
                return Err(UpstreamError::DuplicateRequestId { id: key.1 });
            }
            routes.by_downstream.insert(key, upstream_id);
            routes.pending.insert(
                upstream_id,
                Pending {
                    session: session.clone(),
                    original_id,
                    original_token,
                    reply: tx,
                    takes_input,
                    listens: msg.get("method").and_then(Value::as_str)
                        == Some("subscriptions/listen"),
                },
            );
        }
        if let Err(e) = self.0.send(&msg, Some(upstream_id)).await {
            self.0.forget(upstream_id);
            return Err(e);
        }
        Ok((upstream_id, rx))
    }

    /// Forwards a downstream notification. `notifications/initialized` is Airlock's to send (it ran
    /// the upstream handshake), and cancellations are translated to the upstream id.
    pub async fn notify(&self, session: &SessionKey, mut msg: Value) -> Result<(), UpstreamError> {
        self.translate(&mut msg);
        match msg.get("method").and_then(Value::as_str) {
            Some("notifications/initialized") => return Ok(()),
            Some("notifications/cancelled") => {
                let Some(request_id) = crate::jsonrpc::pointer(&msg, "/params/requestId") else {
                    return Ok(());
                };
                let key = (session.clone(), jsonrpc::id_key(request_id));
                let Some(upstream_id) = self.0.routes().by_downstream.get(&key).copied() else {
                    return Ok(());
                };
                self.0.forget(upstream_id);
                msg["params"]["requestId"] = json!(upstream_id);
            }
            _ => {}
        }
        self.ready().await?;
        self.0.send(&msg, None).await
    }

    /// Cancels a request Airlock sent (e.g. a 2026-07-28 client closed its stream).
    pub async fn cancel(&self, upstream_id: u64, reason: &str) {
        if self.0.forget(upstream_id) {
            let note = jsonrpc::notification(
                "notifications/cancelled",
                json!({"requestId": upstream_id, "reason": reason}),
            );
            if let Err(e) = self.0.send(&note, None).await {
                tracing::debug!(upstream = %self.0.upstream, error = %e, "cancel not delivered");
            }
        }
    }

    /// Forwards a downstream client's answer to a server-to-client request. When the request went
    /// to several sessions, the first answer wins and later ones are dropped.
    pub async fn respond(&self, session: &SessionKey, msg: Value) -> Result<(), UpstreamError> {
        let key = msg.get("id").map(jsonrpc::id_key).unwrap_or_default();
        {
            let mut routes = self.0.routes();
            // Only a session the request was sent to may answer it. Upstream ids are small
            // counters, so on a shared child any other agent could otherwise guess one and answer
            // for the user of another session: consent to its elicitation, write its sampling.
            let asked = routes
                .server_requests
                .get(&key)
                .is_some_and(|targets| targets.contains(session));
            if !asked {
                tracing::debug!(upstream = %self.0.upstream, id = %key, %session, "dropping an answer to a request this session was not sent");
                return Ok(());
            }
            routes.server_requests.remove(&key);
        }
        self.0.send(&msg, None).await
    }

    pub fn stop(&self) {
        self.0.stop.cancel();
    }
}
