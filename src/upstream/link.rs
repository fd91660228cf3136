//! The routing core of one upstream connection, shared by its transports (`stdio`, `http`) and
//! its handle (`connection`): the link's state, its requests in flight, and what to do with each
//! message the upstream sends. The transports import this; this imports neither of them (it sends
//! through the [`Wire`] it was given).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::UpstreamError;
use super::reply::{Inbound, reply_channel};
use super::routes::{INTERNAL, Pending, Routes};
use crate::jsonrpc::{self, Kind};

/// The state of the link, as `/readyz` and callers see it.
#[derive(Debug, Clone)]
pub enum LinkState {
    Starting,
    /// Initialized; holds the upstream's `InitializeResult`.
    Up(Arc<Value>),
    Down(String),
    Stopped,
}

/// The transport underneath a link: a stdio child or an HTTP session. Each transport owns its
/// own state; the link only asks it to send, and (HTTP, which connects on demand) to connect.
pub(super) trait Wire: Send + Sync {
    /// Sends one message; `related` names the request it is (so its answer can be routed).
    fn send<'a>(
        &'a self,
        link: &'a Arc<Shared>,
        msg: &'a Value,
        related: Option<u64>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>>;

    /// For a transport that connects on demand: brings the link up (or says why not). `None`
    /// when the link comes up by itself (a supervised child) and callers wait for its state.
    fn connect<'a>(
        &'a self,
        link: &'a Arc<Shared>,
    ) -> Option<BoxFuture<'a, Result<Arc<Value>, UpstreamError>>> {
        let _ = link;
        None
    }
}

/// How a link comes up.
pub(super) enum Opening {
    /// The handshake era's `initialize`, with these params.
    Initialize(Value),
    /// `server/discover` only (a stdio child kept for 2026-07-28 clients): the child then speaks
    /// that revision, and the link is up only if the server lists it.
    Discover,
}

/// One upstream link: its transport, its state, and the routes of the messages on it.
pub(super) struct Shared {
    pub(super) upstream: Arc<str>,
    pub(super) opening: Opening,
    pub(super) wire: Box<dyn Wire>,
    pub(super) state: watch::Sender<LinkState>,
    pub(super) stop: CancellationToken,
    pub(super) next_id: AtomicU64,
    /// The upstream answers 2026-07-28 requests itself (an HTTP upstream whose `server/discover`
    /// lists that revision, or a stdio child opened with [`Opening::Discover`]): a 2026-07-28
    /// client's requests then pass through as they came, instead of being translated into the
    /// upstream session's revision.
    pub(super) stateless: AtomicBool,
    /// The upstream answered the `server/discover` probe (see [`Shared::probe_stateless`]).
    probe_answered: AtomicBool,
    routes: Mutex<Routes>,
}

/// How long the upstream may take to answer `initialize`.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a `server/discover` probe may take before the upstream is taken to speak only the
/// handshake era.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Shared {
    pub(super) fn new(
        upstream: Arc<str>,
        opening: Opening,
        wire: Box<dyn Wire>,
        stop: CancellationToken,
    ) -> Self {
        let (state, _) = watch::channel(LinkState::Starting);
        // A link opened with `server/discover` comes up only if the server speaks 2026-07-28:
        // its requests are never translated, even before it is up.
        let stateless = matches!(opening, Opening::Discover);
        Self {
            upstream,
            opening,
            wire,
            state,
            stop,
            next_id: AtomicU64::new(1),
            stateless: AtomicBool::new(stateless),
            probe_answered: AtomicBool::new(false),
            routes: Mutex::new(Routes::default()),
        }
    }

    pub(super) fn routes(&self) -> MutexGuard<'_, Routes> {
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

    pub(super) async fn send(
        self: &Arc<Self>,
        msg: &Value,
        related: Option<u64>,
    ) -> Result<(), UpstreamError> {
        self.wire.send(self, msg, related).await
    }

    /// Whether a request Airlock sent is still waiting for its answer.
    pub(super) fn is_pending(&self, upstream_id: u64) -> bool {
        self.routes().pending.contains_key(&upstream_id)
    }

    /// Drops a pending request; true if it was still pending.
    pub(super) fn forget(&self, upstream_id: u64) -> bool {
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
        self.internal_request_within(method, params, HANDSHAKE_TIMEOUT)
            .await
    }

    /// [`Shared::internal_request`], waiting at most `within` for the answer.
    pub(super) async fn internal_request_within(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        within: Duration,
    ) -> Result<Value, UpstreamError> {
        let answer = self.internal_answer_within(method, params, within).await?;
        match (answer.get("result"), answer.get("error")) {
            (Some(result), _) => Ok(result.clone()),
            (_, error) => Err(self.unavailable(format!(
                "{method} failed: {}",
                error.map(Value::to_string).unwrap_or_default()
            ))),
        }
    }

    /// The upstream's answer (a result or an error) to a request of Airlock's own, within
    /// `within`; an error when none came.
    async fn internal_answer_within(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        within: Duration,
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
                takes_input: false,
                listens: false,
            },
        );
        let msg = jsonrpc::request(json!(upstream_id), method, params);
        if let Err(e) = self.send(&msg, Some(upstream_id)).await {
            self.forget(upstream_id);
            return Err(e);
        }
        let answer = tokio::time::timeout(within, async {
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
        .unwrap_or_else(|_| {
            Err(self.unavailable(format!(
                "no answer to {method} within {} s",
                within.as_secs()
            )))
        });
        self.forget(upstream_id);
        answer
    }

    /// Brings the link up as its [`Opening`] says and marks it up.
    pub(super) async fn handshake(self: &Arc<Self>) -> Result<Arc<Value>, UpstreamError> {
        let result = match self.opening {
            Opening::Initialize(_) => self.initialize().await?,
            Opening::Discover => self.discover().await?,
        };
        self.set_state(LinkState::Up(result.clone()));
        Ok(result)
    }

    /// `initialize` and `notifications/initialized`, without marking the link up.
    pub(super) async fn initialize(self: &Arc<Self>) -> Result<Arc<Value>, UpstreamError> {
        let Opening::Initialize(params) = &self.opening else {
            return Err(self.unavailable("this link speaks 2026-07-28 only".to_owned()));
        };
        let result = self.internal_request("initialize", params.clone()).await?;
        let initialized = jsonrpc::notification("notifications/initialized", json!({}));
        self.send(&initialized, None).await?;
        Ok(Arc::new(result))
    }

    /// Asks the upstream whether it answers 2026-07-28 requests itself (`server/discover`
    /// listing that revision) and notes the answer; any other answer, or none within
    /// [`PROBE_TIMEOUT`], is a no (and [`Shared::probe_answered`] tells the two apart).
    pub(super) async fn probe_stateless(self: &Arc<Self>) -> Result<Value, UpstreamError> {
        let params = json!({"_meta": crate::protocol::stateless_meta()});
        let answer = self
            .internal_answer_within("server/discover", params, PROBE_TIMEOUT)
            .await?;
        self.probe_answered.store(true, Ordering::Relaxed);
        let discovered = answer
            .get("result")
            .filter(|r| crate::protocol::lists_stateless(r));
        let speaks = discovered.is_some();
        tracing::debug!(upstream = %self.upstream, speaks, "probed for 2026-07-28");
        self.stateless.store(speaks, Ordering::Relaxed);
        discovered.cloned().ok_or_else(|| {
            self.unavailable(format!(
                "it does not speak {}",
                crate::protocol::STATELESS_VERSION
            ))
        })
    }

    /// Whether the upstream answered a `server/discover` probe (with a result or an error),
    /// rather than staying silent or going away.
    pub(super) fn probe_answered(&self) -> bool {
        self.probe_answered.load(Ordering::Relaxed)
    }

    /// Whether this link, opened with `server/discover` only, was answered without 2026-07-28:
    /// it can never come up.
    pub(super) fn refused_revision(&self) -> bool {
        matches!(self.opening, Opening::Discover)
            && self.probe_answered()
            && !self.stateless.load(Ordering::Relaxed)
    }

    /// The 2026-07-28 opening: `server/discover` and nothing more. What callers read from an
    /// `InitializeResult` (capabilities, server info, instructions) is taken from its answer.
    async fn discover(self: &Arc<Self>) -> Result<Arc<Value>, UpstreamError> {
        let discovered = self.probe_stateless().await?;
        Ok(Arc::new(crate::protocol::initialize_result_of(&discovered)))
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
    pub(super) fn on_inbound(self: &Arc<Self>, msg: Value, related: Option<u64>) {
        match jsonrpc::classify(&msg) {
            Ok(Kind::Response { .. }) => self.on_response(msg),
            Ok(Kind::Notification {
                method: "notifications/progress",
            }) => self.on_progress(msg),
            Ok(Kind::Notification { .. }) => self.on_notification(msg, related),
            Ok(Kind::Request { method: "ping", .. }) => self.on_ping(&msg),
            Ok(Kind::Request { .. }) => self.on_server_request(msg, related),
            Err(why) => {
                tracing::warn!(upstream = %self.upstream, why, "dropping an invalid message from upstream");
            }
        }
    }

    /// The answer to a request: to its caller, with the caller's id restored.
    fn on_response(&self, mut msg: Value) {
        let mut routes = self.routes();
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

    /// Progress: to the call whose token it carries, with the caller's token restored.
    fn on_progress(&self, mut msg: Value) {
        let routes = self.routes();
        let pending = crate::jsonrpc::pointer(&msg, "/params/progressToken")
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

    /// Any other notification: one of a subscription goes to its `subscriptions/listen`
    /// request; the cancel of a server request goes where the request went; one that came on a
    /// call's stream goes with the call; the rest go to every session.
    fn on_notification(&self, mut msg: Value, related: Option<u64>) {
        let mut routes = self.routes();
        // Tagged with the listen request's id (over stdio the only way to tell whose it is),
        // which is Airlock's upstream id: the client gets its own back.
        let subscription = crate::jsonrpc::pointer_mut(&mut msg, "/params/_meta")
            .and_then(|meta| meta.get_mut(crate::protocol::META_SUBSCRIPTION_ID));
        if let Some(tag) = subscription
            && let Some(id) = tag.as_u64()
            && related.is_none_or(|related| related == id)
            && let Some(pending) = routes.pending.get(&id).filter(|p| p.listens)
        {
            *tag = pending.original_id.clone();
            pending.reply.send(Inbound::Message(msg));
            return;
        }
        let cancelled_key = (msg.get("method").and_then(Value::as_str)
            == Some("notifications/cancelled"))
        .then(|| crate::jsonrpc::pointer(&msg, "/params/requestId").map(jsonrpc::id_key))
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

    /// A liveness check of Airlock's own link: Airlock answers, no agent needed.
    fn on_ping(self: &Arc<Self>, msg: &Value) {
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

    /// A server-to-client request (sampling, elicitation, roots): to the session that can answer
    /// it (see `Routes::server_request_targets`), or refused when none can.
    fn on_server_request(self: &Arc<Self>, msg: Value, related: Option<u64>) {
        let mut routes = self.routes();
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

    /// Answers a server-to-client request that no client will take.
    pub(super) async fn refuse(self: &Arc<Self>, id: Value, why: &str) {
        let answer = jsonrpc::error_response(id, jsonrpc::INTERNAL_ERROR, why);
        if let Err(e) = self.send(&answer, None).await {
            tracing::debug!(upstream = %self.upstream, error = %e, "refusal not delivered");
        }
    }
}
