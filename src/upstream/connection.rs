//! One live MCP connection to an upstream server (a stdio child or an HTTP session) and the routing
//! of messages between it and the downstream sessions that use it.
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::UpstreamError;
use super::http::HttpWire;
use super::stdio::StdioWire;
use crate::jsonrpc::{self, Kind};

/// Names a downstream session inside one connection.
pub type SessionKey = Arc<str>;

/// What a request's reply stream carries.
#[derive(Debug)]
pub enum Inbound {
    /// A message for the downstream client: a related notification or server request, or (last)
    /// the response itself, with the downstream's ids restored.
    Message(Value),
    /// The connection failed before the response arrived. `may_have_run` is false when the request
    /// surely never reached the upstream (it was refused or unreachable), so it can be retried and
    /// gives its rate-limit slot back.
    Failed {
        error: UpstreamError,
        may_have_run: bool,
    },
}

/// Notifications one call may have waiting for a slow client; past this, more are dropped (with a
/// warning) rather than held in memory. Responses and server requests are never dropped.
const MAX_QUEUED_NOTIFICATIONS: usize = 1024;

/// The sending end of a request's reply stream.
#[derive(Clone)]
struct ReplyTx {
    tx: mpsc::UnboundedSender<Inbound>,
    queued: Arc<AtomicUsize>,
}

/// The receiving end of a request's reply stream.
pub struct ReplyRx {
    rx: mpsc::UnboundedReceiver<Inbound>,
    queued: Arc<AtomicUsize>,
}

fn reply_channel() -> (ReplyTx, ReplyRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        ReplyTx {
            tx,
            queued: queued.clone(),
        },
        ReplyRx { rx, queued },
    )
}

fn is_notification(item: &Inbound) -> bool {
    matches!(item, Inbound::Message(m) if m.get("id").is_none())
}

impl ReplyTx {
    /// Sends a message; a notification is dropped when too many wait unread. False if the
    /// receiver is gone.
    fn send(&self, item: Inbound) -> bool {
        if is_notification(&item) {
            if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED_NOTIFICATIONS {
                tracing::warn!("a client reads too slowly; dropping a notification for its call");
                return !self.tx.is_closed();
            }
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        self.tx.send(item).is_ok()
    }
}

impl ReplyRx {
    pub async fn recv(&mut self) -> Option<Inbound> {
        let item = self.rx.recv().await?;
        if is_notification(&item) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        Some(item)
    }
}

/// The state of the link, as `/readyz` and callers see it.
#[derive(Debug, Clone)]
pub enum LinkState {
    Starting,
    /// Initialized; holds the upstream's `InitializeResult`.
    Up(Arc<Value>),
    Down(String),
    Stopped,
}

/// The transport underneath a connection.
pub(super) enum Wire {
    Stdio(StdioWire),
    Http(Box<HttpWire>),
}

/// A cheap handle on a connection; the connection stops when `stop` is called or Airlock shuts down.
#[derive(Clone)]
pub struct Connection(pub(super) Arc<Shared>);

pub(super) struct Shared {
    pub(super) upstream: Arc<str>,
    pub(super) init_params: Value,
    pub(super) wire: Wire,
    pub(super) state: watch::Sender<LinkState>,
    pub(super) stop: CancellationToken,
    next_id: AtomicU64,
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// Sessions using this connection.
    sessions: HashMap<SessionKey, SessionRoute>,
    /// Requests sent upstream and not yet answered, by upstream id.
    pending: HashMap<u64, Pending>,
    /// (session, downstream id key) → upstream id, to translate cancellations.
    by_downstream: HashMap<(SessionKey, String), u64>,
    /// Server-to-client requests awaiting an answer: id key → sessions it was sent to.
    server_requests: HashMap<String, Vec<SessionKey>>,
}

struct SessionRoute {
    /// Where messages not tied to one of the session's calls go (its GET stream).
    sink: mpsc::Sender<Value>,
    /// The agent the session belongs to: a server request is never shown to two agents.
    agent: Arc<str>,
}

struct Pending {
    session: SessionKey,
    original_id: Value,
    original_token: Option<Value>,
    reply: ReplyTx,
}

/// The session key of requests Airlock makes itself (initialize, ...).
const INTERNAL: &str = "\0airlock";
/// How long a caller waits for a starting connection before giving up.
const READY_WAIT: Duration = Duration::from_secs(15);
/// How long the upstream may take to answer `initialize`.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

impl Connection {
    pub(super) fn new(
        upstream: Arc<str>,
        init_params: Value,
        wire: Wire,
        stop: CancellationToken,
    ) -> Self {
        let (state, _) = watch::channel(LinkState::Starting);
        Self(Arc::new(Shared {
            upstream,
            init_params,
            wire,
            state,
            stop,
            next_id: AtomicU64::new(1),
            routes: Mutex::new(Routes::default()),
        }))
    }

    pub fn state(&self) -> LinkState {
        self.0.state.borrow().clone()
    }

    /// Waits until the connection is initialized and returns the upstream's `InitializeResult`.
    /// A connection that is down fails at once: the agent is told rather than kept waiting.
    pub async fn ready(&self) -> Result<Arc<Value>, UpstreamError> {
        if let Wire::Http(_) = self.0.wire {
            // The handshake bounds itself (HANDSHAKE_TIMEOUT); this only guards against a hang.
            return tokio::time::timeout(HANDSHAKE_TIMEOUT * 2, super::http::ensure_up(&self.0))
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
        self.0
            .routes()
            .sessions
            .insert(session, SessionRoute { sink, agent });
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

    /// Sends a downstream request upstream; returns the upstream id and the reply stream.
    pub async fn request(
        &self,
        session: &SessionKey,
        mut msg: Value,
    ) -> Result<(u64, ReplyRx), UpstreamError> {
        self.ready().await?;
        let upstream_id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let original_id = msg.get("id").cloned().unwrap_or(Value::Null);
        msg["id"] = json!(upstream_id);
        let original_token = match msg.pointer_mut("/params/_meta/progressToken") {
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
        match msg.get("method").and_then(Value::as_str) {
            Some("notifications/initialized") => return Ok(()),
            Some("notifications/cancelled") => {
                let Some(request_id) = msg.pointer("/params/requestId") else {
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

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while routing cannot leave the maps half-updated in a way that matters more than
        // stopping the proxy would; keep serving with whatever is there.
        self.routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn unavailable(&self, cause: String) -> UpstreamError {
        UpstreamError::Unavailable {
            upstream: self.upstream.to_string(),
            cause,
        }
    }

    pub(super) fn set_state(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    async fn send(
        self: &Arc<Self>,
        msg: &Value,
        related: Option<u64>,
    ) -> Result<(), UpstreamError> {
        match &self.wire {
            Wire::Stdio(wire) => wire.send(self, msg).await,
            Wire::Http(wire) => wire.send(self, msg, related).await,
        }
    }

    /// Whether a request Airlock sent is still waiting for its answer.
    pub(super) fn is_pending(&self, upstream_id: u64) -> bool {
        self.routes().pending.contains_key(&upstream_id)
    }

    /// Drops a pending request; true if it was still pending.
    fn forget(&self, upstream_id: u64) -> bool {
        let mut routes = self.routes();
        let Some(pending) = routes.pending.remove(&upstream_id) else {
            return false;
        };
        routes
            .by_downstream
            .remove(&(pending.session, jsonrpc::id_key(&pending.original_id)));
        true
    }

    /// Runs a request of Airlock's own (the handshake) and returns its result.
    pub(super) async fn internal_request(
        self: &Arc<Self>,
        method: &str,
        params: Value,
    ) -> Result<Value, UpstreamError> {
        let upstream_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = reply_channel();
        self.routes().pending.insert(
            upstream_id,
            Pending {
                session: Arc::from(INTERNAL),
                original_id: json!(upstream_id),
                original_token: None,
                reply: tx,
            },
        );
        let msg = jsonrpc::request(json!(upstream_id), method, params);
        if let Err(e) = self.send(&msg, Some(upstream_id)).await {
            self.forget(upstream_id);
            return Err(e);
        }
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            while let Some(item) = rx.recv().await {
                match item {
                    Inbound::Failed { error, .. } => return Err(error),
                    Inbound::Message(m) if m.get("method").is_none() => return Ok(m),
                    Inbound::Message(_) => {}
                }
            }
            Err(self.unavailable("connection closed during the handshake".to_owned()))
        })
        .await
        .unwrap_or_else(|_| Err(self.unavailable(format!("no answer to {method} within 30 s"))));
        self.forget(upstream_id);
        let answer = answer?;
        match (answer.get("result"), answer.get("error")) {
            (Some(result), _) => Ok(result.clone()),
            (_, error) => Err(self.unavailable(format!(
                "{method} failed: {}",
                error.map(Value::to_string).unwrap_or_default()
            ))),
        }
    }

    /// Runs the MCP handshake with the stored `initialize` params and marks the link up.
    pub(super) async fn handshake(self: &Arc<Self>) -> Result<Arc<Value>, UpstreamError> {
        let result = self
            .internal_request("initialize", self.init_params.clone())
            .await?;
        let initialized = jsonrpc::notification("notifications/initialized", json!({}));
        self.send(&initialized, None).await?;
        let result = Arc::new(result);
        self.set_state(LinkState::Up(result.clone()));
        Ok(result)
    }

    /// Fails every pending request: the connection is gone and their answers will never come.
    pub(super) fn fail_all(&self, cause: &str) {
        let mut routes = self.routes();
        routes.by_downstream.clear();
        routes.server_requests.clear();
        let cause = format!("{cause}; the call was in flight and may have run");
        for (_, pending) in routes.pending.drain() {
            pending.reply.send(Inbound::Failed {
                error: self.unavailable(cause.clone()),
                may_have_run: true,
            });
        }
    }

    /// Fails one pending request (e.g. its HTTP stream broke).
    pub(super) fn fail_one(&self, upstream_id: u64, error: UpstreamError, may_have_run: bool) {
        let pending = {
            let mut routes = self.routes();
            let pending = routes.pending.remove(&upstream_id);
            if let Some(p) = &pending {
                routes
                    .by_downstream
                    .remove(&(p.session.clone(), jsonrpc::id_key(&p.original_id)));
            }
            pending
        };
        if let Some(p) = pending {
            p.reply.send(Inbound::Failed {
                error,
                may_have_run,
            });
        }
    }

    /// Routes one message from the upstream. `related` names the request whose HTTP response
    /// stream carried it, when it came on one.
    pub(super) fn on_inbound(self: &Arc<Self>, mut msg: Value, related: Option<u64>) {
        let kind = match jsonrpc::classify(&msg) {
            Ok(Kind::Response { .. }) => 0,
            Ok(Kind::Notification { .. }) => 1,
            Ok(Kind::Request { .. }) => 2,
            Err(why) => {
                tracing::warn!(upstream = %self.upstream, why, "dropping an invalid message from upstream");
                return;
            }
        };
        let mut routes = self.routes();
        match kind {
            0 => {
                let Some(pending) = msg
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|id| routes.pending.remove(&id))
                else {
                    tracing::debug!(upstream = %self.upstream, "dropping a response nobody awaits");
                    return;
                };
                routes.by_downstream.remove(&(
                    pending.session.clone(),
                    jsonrpc::id_key(&pending.original_id),
                ));
                msg["id"] = pending.original_id;
                pending.reply.send(Inbound::Message(msg));
            }
            1 if msg.get("method").and_then(Value::as_str) == Some("notifications/progress") => {
                let pending = msg
                    .pointer("/params/progressToken")
                    .and_then(Value::as_u64)
                    .and_then(|token| routes.pending.get(&token));
                let Some(pending) = pending else {
                    tracing::debug!(upstream = %self.upstream, "dropping progress for no pending call");
                    return;
                };
                if let Some(token) = &pending.original_token {
                    msg["params"]["progressToken"] = token.clone();
                }
                pending.reply.send(Inbound::Message(msg));
            }
            1 => {
                let cancelled_key = (msg.get("method").and_then(Value::as_str)
                    == Some("notifications/cancelled"))
                .then(|| msg.pointer("/params/requestId").map(jsonrpc::id_key))
                .flatten();
                let targets = match cancelled_key {
                    Some(key) => routes.server_requests.remove(&key).unwrap_or_default(),
                    None => match related.and_then(|id| routes.pending.get(&id)) {
                        Some(pending) => {
                            pending.reply.send(Inbound::Message(msg));
                            return;
                        }
                        None => routes.sessions.keys().cloned().collect::<Vec<_>>(),
                    },
                };
                routes.deliver(&targets, &msg);
            }
            _ if msg.get("method").and_then(Value::as_str) == Some("ping") => {
                // A liveness check of Airlock's own link: Airlock answers, no agent needed.
                drop(routes);
                if let Some(id) = msg.get("id").cloned() {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let pong = json!({"jsonrpc": "2.0", "id": id, "result": {}});
                        if let Err(e) = this.send(&pong, None).await {
                            tracing::debug!(upstream = %this.upstream, error = %e, "pong not delivered");
                        }
                    });
                }
            }
            _ => {
                let targets = match routes.server_request_targets(related) {
                    Ok(targets) => targets,
                    Err(why) => {
                        drop(routes);
                        tracing::warn!(upstream = %self.upstream, why, "refusing a server request");
                        if let Some(id) = msg.get("id").cloned() {
                            let this = self.clone();
                            tokio::spawn(async move { this.refuse(id, why).await });
                        }
                        return;
                    }
                };
                if let Some(id) = msg.get("id") {
                    routes
                        .server_requests
                        .insert(jsonrpc::id_key(id), targets.clone());
                }
                match related.and_then(|id| routes.pending.get(&id)) {
                    Some(pending) => {
                        pending.reply.send(Inbound::Message(msg));
                    }
                    None => routes.deliver(&targets, &msg),
                }
            }
        }
    }

    /// Answers a server-to-client request that no client will take.
    async fn refuse(self: &Arc<Self>, id: Value, why: &str) {
        let answer = jsonrpc::error_response(id, jsonrpc::INTERNAL_ERROR, why);
        if let Err(e) = self.send(&answer, None).await {
            tracing::debug!(upstream = %self.upstream, error = %e, "refusal not delivered");
        }
    }
}

impl Routes {
    /// Which sessions a server-to-client request goes to: the session of the call it arrived with;
    /// else the sessions with calls in flight; else every session. Over stdio nothing in the
    /// request names its call, so when the candidates belong to different agents Airlock refuses
    /// rather than show one agent's sampling or elicitation to another (`isolation = "session"`
    /// avoids the question).
    fn server_request_targets(
        &self,
        related: Option<u64>,
    ) -> Result<Vec<SessionKey>, &'static str> {
        if let Some(pending) = related.and_then(|id| self.pending.get(&id)) {
            return if self.sessions.contains_key(&pending.session) {
                Ok(vec![pending.session.clone()])
            } else {
                Err("a 2026-07-28 client cannot answer server requests")
            };
        }
        let busy = self
            .pending
            .values()
            .map(|p| &p.session)
            .filter(|s| s.as_ref() != INTERNAL);
        // A 2026-07-28 call has no session to route to, and its agent may be anyone's.
        if busy.clone().any(|s| !self.sessions.contains_key(s)) {
            return Err("a 2026-07-28 call is in flight and cannot take server requests");
        }
        let mut candidates: Vec<SessionKey> = busy.cloned().collect();
        if candidates.is_empty() {
            candidates = self.sessions.keys().cloned().collect();
        }
        candidates.sort();
        candidates.dedup();
        let mut agents = candidates
            .iter()
            .filter_map(|s| self.sessions.get(s))
            .map(|route| &route.agent);
        let Some(first) = agents.next() else {
            return Err("no client is connected to answer this request");
        };
        if agents.any(|agent| agent != first) {
            return Err(
                "sessions of several agents could be meant; set isolation = \"session\" on this upstream",
            );
        }
        Ok(candidates)
    }

    /// Hands a message to sessions. Within a session with exactly one call in flight, the message
    /// rides on that call's stream (as a server would send it); otherwise it goes to the session's
    /// sink (its GET stream).
    fn deliver(&self, targets: &[SessionKey], msg: &Value) {
        for session in targets {
            let mut calls = self.pending.values().filter(|p| &p.session == session);
            if let (Some(only), None) = (calls.next(), calls.next())
                && only.reply.send(Inbound::Message(msg.clone()))
            {
                continue;
            }
            if let Some(route) = self.sessions.get(session)
                && route.sink.try_send(msg.clone()).is_err()
            {
                tracing::warn!(%session, "session queue full or closed; dropping a server message");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(sessions: &[(&str, &str)], busy: &[&str]) -> Routes {
        let mut routes = Routes::default();
        for (session, agent) in sessions {
            let (sink, _) = mpsc::channel(1);
            routes.sessions.insert(
                Arc::from(*session),
                SessionRoute {
                    sink,
                    agent: Arc::from(*agent),
                },
            );
        }
        for (i, session) in busy.iter().enumerate() {
            let (reply, _) = reply_channel();
            routes.pending.insert(
                i as u64 + 1,
                Pending {
                    session: Arc::from(*session),
                    original_id: json!(i),
                    original_token: None,
                    reply,
                },
            );
        }
        routes
    }

    fn names(targets: Result<Vec<SessionKey>, &'static str>) -> Result<Vec<String>, &'static str> {
        targets.map(|t| t.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn a_slow_client_loses_surplus_notifications_but_never_its_answer() {
        let (tx, mut rx) = reply_channel();
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}});
        for _ in 0..MAX_QUEUED_NOTIFICATIONS + 10 {
            assert!(tx.send(Inbound::Message(progress.clone())));
        }
        assert!(tx.send(Inbound::Message(
            json!({"jsonrpc": "2.0", "id": 1, "result": {}})
        )));
        drop(tx);
        let mut notifications = 0;
        let mut answers = 0;
        while let Some(item) = rx.recv().await {
            match item {
                Inbound::Message(m) if m.get("id").is_some() => answers += 1,
                _ => notifications += 1,
            }
        }
        assert_eq!(notifications, MAX_QUEUED_NOTIFICATIONS);
        assert_eq!(answers, 1);
    }

    #[test]
    fn a_server_request_goes_to_the_busy_session_of_one_agent() {
        let r = routes(&[("a1", "alice"), ("b1", "bob")], &["a1"]);
        assert_eq!(
            names(r.server_request_targets(None)),
            Ok(vec!["a1".to_owned()])
        );
        let r = routes(
            &[("a1", "alice"), ("a2", "alice"), ("b1", "bob")],
            &["a1", "a2"],
        );
        assert_eq!(
            names(r.server_request_targets(None)),
            Ok(vec!["a1".to_owned(), "a2".to_owned()])
        );
    }

    #[test]
    fn a_server_request_is_never_shown_to_two_agents() {
        let r = routes(&[("a1", "alice"), ("b1", "bob")], &["a1", "b1"]);
        assert!(r.server_request_targets(None).is_err());
        let idle = routes(&[("a1", "alice"), ("b1", "bob")], &[]);
        assert!(idle.server_request_targets(None).is_err());
        let nobody = routes(&[], &[]);
        assert!(nobody.server_request_targets(None).is_err());
    }

    #[test]
    fn no_server_request_is_routed_while_a_stateless_call_is_in_flight() {
        let r = routes(&[("a1", "alice")], &["stateless:x"]);
        assert!(r.server_request_targets(None).is_err());
        let r = routes(&[("a1", "alice")], &["a1", "stateless:x"]);
        assert!(r.server_request_targets(None).is_err());
    }

    #[test]
    fn a_server_request_on_a_stateless_calls_stream_is_refused() {
        let r = routes(&[("a1", "alice")], &["stateless:x"]);
        assert!(r.server_request_targets(Some(1)).is_err());
        let r = routes(&[("a1", "alice")], &["a1"]);
        assert_eq!(
            names(r.server_request_targets(Some(1))),
            Ok(vec!["a1".to_owned()])
        );
    }
}
