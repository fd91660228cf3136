//! The application: shared state, the router of every face, background workers and the serve loop.
//! `Application::build` does all the fallible start-up work (database, policies, listener) so that
//! `serve`, `demo` and the tests start Airlock the same way; tests bind port 0 and ask `port()`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::approval::ApprovalQueue;
use crate::config::Config;
use crate::domain::UpstreamName;
use crate::http_guard::{HostPolicy, OriginPolicy};
use crate::mcp::auth::TokenCache;
use crate::mcp::session::SessionRegistry;
use crate::metrics::Metrics;
use crate::policy::{PolicyError, PolicyHandle, RateLimiter, ReloadOutcome};
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

/// How often policy files are checked for edits.
const POLICY_POLL: Duration = Duration::from_secs(1);
/// How long upstream connections get to close politely once stopped.
const UPSTREAM_CLOSE: Duration = Duration::from_millis(300);
/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the audit writer gets to write what it holds at exit.
const AUDIT_FLUSH: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Recovery(#[from] crate::approval::RecoveryError),
    #[error(transparent)]
    Mail(#[from] crate::notify::worker::MailError),
    #[error("[audit] signing_key_file: {0}")]
    AuditKey(#[from] crate::audit::checkpoint::KeyError),
    #[error("upstream {upstream}: {source}")]
    Policy {
        upstream: String,
        #[source]
        source: PolicyError,
    },
    #[error("upstream {upstream}: invalid url")]
    UpstreamUrl {
        upstream: String,
        #[source]
        source: crate::upstream::UrlError,
    },
    #[error("cannot listen on {addr}: {source} (is another Airlock running? change server.listen)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client for upstreams")]
    HttpClient(#[source] crate::upstream::ClientError),
}

/// One upstream as agents reach it (`/mcp/{name}`): its connections, and the policy its calls are
/// judged by (hot-reloaded from its file).
pub struct Gateway {
    pub name: UpstreamName,
    pub upstream: Arc<Upstream>,
    pub policy: PolicyHandle,
}

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub approvals: Arc<ApprovalQueue>,
    pub gateways: Arc<BTreeMap<UpstreamName, Arc<Gateway>>>,
    /// Wakes the outbox worker when messages are queued.
    pub mail_queued: Arc<tokio::sync::Notify>,
    pub sessions: Arc<SessionRegistry>,
    pub limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub origins: Arc<OriginPolicy>,
    /// The `Host` names this Airlock answers to on `/mcp` and the reviewer face.
    pub hosts: Arc<HostPolicy>,
    pub tokens: Arc<TokenCache>,
    /// The upstreams' tool lists, as the dashboard shows them.
    pub catalogue: Arc<crate::upstream::catalogue::ToolCatalogue>,
    /// The tool definitions accepted per upstream, and the quarantined changes.
    pub pins: Arc<crate::pinning::Pins>,
    /// The dashboard's live feed of queue changes.
    pub feed: Arc<crate::web::live::QueueFeed>,
    /// The history page's chart, its past days counted once.
    pub(crate) chart: Arc<crate::web::dashboard::chart::DecisionChart>,
    /// Failed sign-ins recorded this hour (the audit log takes at most 100 an hour one by one).
    pub failed_sign_ins: Arc<crate::audit::sign_ins::FailedSignIns>,
    /// Turns for argon2 work (sign-ins, new passwords), at most one per CPU.
    pub passwords: Arc<crate::web::passwords::PasswordWork>,
    /// Results of calls run for MCP tasks, until their `tasks/result` takes them.
    pub task_results: Arc<crate::mcp::tasks::TaskResults>,
    /// Which agent token created each of the upstreams' own tasks.
    pub upstream_tasks: Arc<crate::mcp::tasks::UpstreamTasks>,
    /// `requestState`s of calls Airlock let through, whose retries continue them.
    pub continuations: Arc<crate::mcp::continuations::Continuations>,
    /// 2026-07-28 clients' requests held while their clients answer an upstream's server
    /// request asked as an input request.
    pub input_rounds: Arc<crate::mcp::input_rounds::InputRounds>,
    /// The masking rules in force (built in plus `[redaction]`).
    pub redactor: Arc<crate::redact::Redactor>,
    /// Appends the audit events of calls the policy decided alone, in batches.
    pub audit: crate::audit::AuditWriter,
    /// Signs the checkpoint that ends an audit export (`[audit] signing_key_file`).
    pub audit_key: Option<Arc<crate::audit::SigningKey>>,
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Ends a downstream session (and the waits of its requests for parked calls, which stay in
    /// the queue), and forgets what its per-session rate limits counted (per-agent limits keep
    /// counting).
    pub fn close_session(&self, id: &str) {
        self.approvals.end_session(id);
        if self.sessions.remove(id).is_some() {
            self.limiter.forget_session(id);
            tracing::info!(session = id, "session closed");
        }
    }
}

/// A built, bound, not yet serving Airlock.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    upstream_stop: CancellationToken,
    /// Stops the audit writer once nothing is left to record; the task ends after its last write.
    audit_stop: CancellationToken,
    audit_task: tokio::task::JoinHandle<()>,
    /// Sends the outbox; `None` without `[email]` (messages then stay in the outbox).
    mailer: Option<crate::notify::worker::Mailer>,
    /// Composes the emails about calls (and queues their reminders and outcomes).
    announcer: Arc<crate::notify::Announcer>,
}

/// The tool pins, with each upstream's `new_tools`.
async fn pins(
    config: &Config,
    store: &Store,
    audit: &crate::audit::AuditWriter,
) -> Result<Arc<crate::pinning::Pins>, StartupError> {
    let new_tools = config
        .upstreams
        .iter()
        .map(|u| (u.name.clone(), u.new_tools))
        .collect();
    let pins = crate::pinning::Pins::load(store.clone(), audit.clone(), new_tools).await?;
    Ok(Arc::new(pins))
}

/// The listener, or a start-up error naming the address.
async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// The tool lists of every gateway's upstream, as people see them.
fn catalogue(
    gateways: &BTreeMap<UpstreamName, Arc<Gateway>>,
) -> crate::upstream::catalogue::ToolCatalogue {
    crate::upstream::catalogue::ToolCatalogue::new(Arc::new(
        gateways
            .values()
            .map(|g| (g.name.to_string(), g.upstream.clone()))
            .collect(),
    ))
}

/// The policies this run starts with, in the audit log ahead of anything they decide.
async fn record_policies(
    store: &Store,
    gateways: &BTreeMap<UpstreamName, Arc<Gateway>>,
) -> Result<(), StoreError> {
    let loaded: Vec<_> = gateways
        .values()
        .map(|g| policy_event("policy_loaded", &g.name, g.policy.describe()))
        .collect();
    store
        .audit_many(
            &loaded
                .iter()
                .map(crate::audit::Entry::as_new)
                .collect::<Vec<_>>(),
        )
        .await
}

/// Each configured upstream with its policy, loaded strictly.
fn gateways(
    config: &Config,
    stop: &CancellationToken,
    redactor: &Arc<crate::redact::Redactor>,
) -> Result<BTreeMap<UpstreamName, Arc<Gateway>>, StartupError> {
    let http_client = crate::upstream::HttpClient::new().map_err(StartupError::HttpClient)?;
    let mut gateways = BTreeMap::new();
    for upstream in &config.upstreams {
        let policy =
            PolicyHandle::load(upstream.policy.clone()).map_err(|source| StartupError::Policy {
                upstream: upstream.name.clone(),
                source,
            })?;
        let runtime = Upstream::new(
            upstream,
            http_client.clone(),
            stop.clone(),
            redactor.clone(),
        )
        .map_err(|source| StartupError::UpstreamUrl {
            upstream: upstream.name.clone(),
            source,
        })?;
        let name = UpstreamName::new(upstream.name.as_str());
        let gateway = Gateway {
            name: name.clone(),
            upstream: runtime,
            policy,
        };
        gateways.insert(name, Arc::new(gateway));
    }
    Ok(gateways)
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let audit_key = crate::audit::SigningKey::configured(&config.audit)?.map(Arc::new);
        let store = Store::open(&config.database).await?;
        let shutdown = CancellationToken::new();
        // Upstreams outlive the shutdown signal by the grace period, so calls in flight can finish.
        let upstream_stop = CancellationToken::new();
        let redactor = Arc::new(crate::redact::Redactor::new(&config.redaction));
        let gateways = Arc::new(gateways(&config, &upstream_stop, &redactor)?);
        let listener = bind(config.server.listen).await?;
        let metrics = Arc::new(Metrics::default());
        let mailer = match &config.email {
            Some(email) => crate::notify::worker::Mailer::new(email)?,
            None => None,
        };
        let config = Arc::new(config);
        let catalogue = Arc::new(catalogue(&gateways));
        let mail_queued = Arc::new(tokio::sync::Notify::new());
        let announcer = Arc::new(crate::notify::Announcer::new(
            store.clone(),
            config.clone(),
            catalogue.clone(),
            mail_queued.clone(),
        ));
        let approvals = Arc::new(
            ApprovalQueue::new(
                store.clone(),
                config.clone(),
                metrics.clone(),
                shutdown.clone(),
            )
            .announcing(announcer.clone()),
        );
        // Before serving: what an earlier run left waiting can never be delivered now.
        approvals.start().await?;
        record_policies(&store, &gateways).await?;
        let audit_stop = CancellationToken::new();
        let (audit, audit_task) =
            crate::audit::AuditWriter::start(store.for_batches()?, audit_stop.clone());
        let state = AppState {
            pins: pins(&config, &store, &audit).await?,
            approvals,
            mail_queued,
            origins: Arc::new(OriginPolicy::from_config(&config)),
            hosts: Arc::new(HostPolicy::new(
                &config,
                listener.local_addr().unwrap_or(config.server.listen),
            )),
            tokens: Arc::new(TokenCache::default()),
            catalogue,
            feed: Arc::default(),
            chart: Arc::default(),
            passwords: Arc::default(),
            task_results: Arc::default(),
            continuations: Arc::default(),
            input_rounds: Arc::default(),
            upstream_tasks: Arc::default(),
            failed_sign_ins: Arc::default(),
            redactor,
            audit,
            audit_key,
            config,
            store,
            gateways,
            sessions: Arc::new(SessionRegistry::default()),
            limiter: Arc::new(RateLimiter::default()),
            metrics,
            shutdown,
        };
        Ok(Self {
            listener,
            state,
            upstream_stop,
            audit_stop,
            audit_task,
            mailer,
            announcer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.listen)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the application as a signal would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until ctrl-c, SIGTERM or the shutdown token; then stops taking requests, lets the
    /// ones in flight finish for up to `SHUTDOWN_GRACE`, and only then ends sessions and stops the
    /// upstreams (a call cut off by shutdown may have run: better to let it answer).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            listener,
            state,
            upstream_stop,
            audit_stop,
            audit_task,
            mailer,
            announcer,
        } = self;
        let shutdown = state.shutdown.clone();
        spawn_workers(&state);
        if let Some(mailer) = mailer {
            crate::notify::worker::spawn(
                state.store.clone(),
                mailer,
                state.approvals.process_token().to_owned(),
                state.config.server.public_url.clone(),
                state.mail_queued.clone(),
                shutdown.clone(),
            );
        }
        announcer.spawn_followups(shutdown.clone());
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let app = router(state.clone());
        let limits = crate::serve::Limits {
            max_connections: state.config.server.max_connections,
            max_connections_per_client: state.config.server.max_connections_per_client,
            trusted_proxies: state.config.server.trusted_proxies.clone(),
            header_timeout: Duration::from_secs(state.config.server.header_timeout),
        };
        let serve = crate::serve::serve(listener, app, limits, shutdown.clone());
        let grace = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            () = serve => {}
            () = grace => {
                tracing::warn!("requests still open after the grace period; stopping anyway");
            }
        }
        state.sessions.close_all();
        upstream_stop.cancel();
        // Children are killed and HTTP upstream sessions ended by their own tasks; give those a
        // moment to run before the process exits under them.
        tokio::time::sleep(UPSTREAM_CLOSE).await;
        if let Err(e) = state.failed_sign_ins.flush(&state.store, true).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot record the count of failed sign-ins");
        }
        // Last: the outcomes of the calls that just ended are still on their way to the log.
        audit_stop.cancel();
        if tokio::time::timeout(AUDIT_FLUSH, audit_task).await.is_err() {
            tracing::error!("audit events still unwritten at exit");
        }
        tracing::info!("airlock stopped");
        Ok(())
    }
}

/// Every route of every face; request bodies must arrive within `[server] body_timeout`.
pub fn router(state: AppState) -> Router {
    let body_timeout = Duration::from_secs(state.config.server.body_timeout);
    Router::new()
        .merge(crate::mcp::router())
        .merge(
            crate::ops::router().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::web::own_host,
            )),
        )
        .merge(crate::web::router(&state))
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::serve::body_deadline(body_timeout, request, next)
        }))
        .with_state(state)
}

fn spawn_workers(state: &AppState) {
    let (stop_watchers, watching) = tokio::sync::watch::channel(false);
    for gateway in state.gateways.values() {
        let audit = state.audit.clone();
        let name = gateway.name.clone();
        gateway.policy.clone().spawn_watcher(
            POLICY_POLL,
            watching.clone(),
            move |policy, outcome| {
                let (kind, detail) = match outcome {
                    ReloadOutcome::Rejected(error) => (
                        "policy_refused",
                        format!("{error}; still in force: {}", policy.describe()),
                    ),
                    ReloadOutcome::Restored => ("policy_restored", policy.describe()),
                    _ => ("policy_reloaded", policy.describe()),
                };
                audit.record(policy_event(kind, &name, detail));
            },
        );
    }
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = stop_watchers.send(true);
    });
    state
        .approvals
        .clone()
        .spawn_workers(state.shutdown.clone());
    state.feed.clone().spawn_watcher(
        state.store.clone(),
        state.approvals.changed.clone(),
        state.shutdown.clone(),
    );
    crate::audit::retention::spawn(
        state.store.clone(),
        state.config.audit.retain_days,
        state.shutdown.clone(),
    );
    crate::memory::spawn_trimmer(state.shutdown.clone());
    let sign_ins = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = sign_ins.shutdown.cancelled() => return,
            }
            if let Err(e) = sign_ins.failed_sign_ins.flush(&sign_ins.store, false).await {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot record the count of failed sign-ins");
            }
        }
    });
    let reaper = state.clone();
    tokio::spawn(async move {
        let idle = Duration::from_secs(reaper.config.server.session_idle_timeout);
        let mut tick = tokio::time::interval(
            (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30)),
        );
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = reaper.shutdown.cancelled() => return,
            }
            for id in reaper.sessions.reap_idle(idle) {
                reaper.limiter.forget_session(&id);
                tracing::info!(session = %id, "idle session closed");
            }
            // Per-agent and per-token counts have no session end: the ones past their window go.
            reaper.limiter.prune(std::time::Instant::now());
        }
    });
}

/// An audit event about an upstream's policy file, by the system.
fn policy_event(kind: &str, upstream: &UpstreamName, detail: String) -> crate::audit::Entry {
    crate::audit::Entry {
        upstream: Some(upstream.to_string()),
        detail: Some(detail),
        ..crate::audit::Entry::now(
            kind,
            &crate::domain::Actor::system(crate::domain::Via::File),
        )
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
        () = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
