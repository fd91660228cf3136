//! Upstream MCP servers: how Airlock reaches them (stdio children, Streamable HTTP) and how their
//! connections are shared between downstream sessions.
//!
//! Each upstream has one *service connection* that Airlock initializes itself: for a stdio upstream
//! with `isolation = "shared"` (the default) it is the one child every handshake-era session uses;
//! otherwise it serves only 2026-07-28 (stateless) clients and is opened on first use. With
//! `isolation = "agent"` each agent gets a child of its own, initialized by Airlock, which all its
//! sessions and its 2026-07-28 requests share. With `isolation = "session"`, and for every HTTP
//! upstream, each downstream session gets its own connection, initialized with that client's own
//! `initialize` params.
//!
//! A stdio server that speaks 2026-07-28 itself serves that revision's clients from children of
//! its own, opened with `server/discover` instead of `initialize` (a child takes one lifecycle
//! for its whole life, so the handshake-era one cannot): one for all of them, or one per agent
//! with `isolation = "agent"`. Their requests then pass through as they came, multi-round-trip
//! results and all. Whether it does is probed when the first 2026-07-28 request comes (see
//! `native`); a server that does not keeps them translated as above.
//!
//! Which keeps agents apart: `shared` does not (one process for all: a notification not tied to a
//! request, such as a log line or a resource update, goes to every agent's sessions, and whatever
//! state the server keeps is common); `agent` does; `session` does for handshake-era sessions,
//! while 2026-07-28 clients share one child under it (a stateless server keeps no state between
//! their requests).

pub mod catalogue;
mod connection;
mod http;
mod link;
mod native;
mod reply;
mod routes;
mod stdio;

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use crate::domain::SessionKey;
pub use connection::Connection;
pub use link::LinkState;
use link::Opening;
pub use reply::{Inbound, ReplyRx};

use crate::config::{Isolation, UpstreamConfig};

pub use http::{ClientError, HttpClient};

/// Why an upstream's URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL")]
    Parse(#[from] url::ParseError),
    #[error("not a URL an HTTP request can name")]
    Uri(#[from] ::http::uri::InvalidUri),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("Upstream {upstream} unavailable: {cause}")]
    Unavailable { upstream: String, cause: String },
    /// The agent reused the id of one of its calls still in flight.
    #[error("request id {id} is already used by a call in flight")]
    DuplicateRequestId { id: String },
}

/// How to reach an upstream.
#[derive(Debug, Clone)]
enum Transport {
    Stdio {
        argv: Vec<String>,
        env: std::collections::BTreeMap<String, String>,
        /// Masks secrets in the lines the child writes to stderr before they are logged.
        redactor: Arc<crate::redact::Redactor>,
    },
    Http(Box<HttpTarget>),
}

/// Where an HTTP upstream is.
#[derive(Debug, Clone)]
struct HttpTarget {
    url: url::Url,
    /// `url` as requests name it.
    uri: ::http::Uri,
    headers: axum::http::HeaderMap,
}

/// One configured upstream at run time: its transport and service connection.
pub struct Upstream {
    pub name: Arc<str>,
    transport: Transport,
    isolation: Isolation,
    http_client: HttpClient,
    service: OnceLock<Connection>,
    /// With `isolation = "agent"`: each agent's own child, by agent name.
    per_agent: AgentConnections,
    /// The children that speak 2026-07-28 to that revision's clients (stdio only).
    native: NativeStateless,
    shutdown: CancellationToken,
}

/// Connections by agent name.
type AgentConnections = std::sync::Mutex<std::collections::HashMap<String, Connection>>;

/// A stdio upstream's children for 2026-07-28 clients, when it speaks that revision itself.
#[derive(Default)]
struct NativeStateless {
    /// Whether it does, and (isolation `shared` or `session`) the child all of them share.
    probe: native::NativeProbe,
    /// Each agent's own (isolation `agent`).
    per_agent: AgentConnections,
}

impl Upstream {
    /// Prepares an upstream; a shared stdio child is started at once, so `/readyz` can tell.
    pub fn new(
        config: &UpstreamConfig,
        http_client: HttpClient,
        shutdown: CancellationToken,
        redactor: Arc<crate::redact::Redactor>,
    ) -> Result<Arc<Self>, UrlError> {
        let transport = match (&config.command, &config.url) {
            (Some(argv), _) => Transport::Stdio {
                argv: argv.clone(),
                env: config.env.clone(),
                redactor,
            },
            (None, url) => {
                let url = url::Url::parse(url.as_deref().unwrap_or_default())?;
                Transport::Http(Box::new(HttpTarget {
                    uri: http::request_uri(&url)?,
                    headers: http::header_map(&config.headers, &url),
                    url,
                }))
            }
        };
        let isolation = match transport {
            Transport::Http(_) => Isolation::Session,
            Transport::Stdio { .. } => config.isolation.unwrap_or(Isolation::Shared),
        };
        let upstream = Arc::new(Self {
            name: Arc::from(config.name.as_str()),
            transport,
            isolation,
            http_client,
            service: OnceLock::new(),
            per_agent: std::sync::Mutex::default(),
            native: NativeStateless::default(),
            shutdown,
        });
        if upstream.shares_service_connection() {
            upstream.service();
        }
        Ok(upstream)
    }

    /// Whether handshake-era sessions share the service connection.
    pub fn shares_service_connection(&self) -> bool {
        self.isolation == Isolation::Shared
    }

    /// How downstream sessions map onto this upstream's connections.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// With `isolation = "agent"`, `agent`'s own connection (opened on first use, kept until
    /// Airlock stops); `None` otherwise.
    pub fn agent_connection(&self, agent: &str) -> Option<Connection> {
        if self.isolation != Isolation::Agent {
            return None;
        }
        Some(self.agents_own(&self.per_agent, agent, || {
            Opening::Initialize(airlock_initialize_params())
        }))
    }

    /// `agent`'s connection in `connections`, opened as `opening` says on first use.
    fn agents_own(
        &self,
        connections: &AgentConnections,
        agent: &str,
        opening: impl FnOnce() -> Opening,
    ) -> Connection {
        connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(agent.to_owned())
            .or_insert_with(|| {
                let conn = self.open(opening(), self.shutdown.child_token());
                conn.serve_one_agent();
                conn
            })
            .clone()
    }

    /// The connection a 2026-07-28 request of `agent` goes over: a child that speaks that
    /// revision itself (see the module docs); else the agent's own with `isolation = "agent"`,
    /// else the service connection, both translated.
    pub async fn stateless_connection(&self, agent: &str) -> Connection {
        if let Some(native) = self.native_connection(agent).await {
            return native;
        }
        self.agent_connection(agent)
            .unwrap_or_else(|| self.service().clone())
    }

    /// A stdio child that speaks 2026-07-28 for `agent`'s requests, if the upstream speaks it.
    /// `None` for an HTTP upstream: its one session connection passes them through itself.
    async fn native_connection(&self, agent: &str) -> Option<Connection> {
        if !matches!(self.transport, Transport::Stdio { .. }) {
            return None;
        }
        let per_agent = self.isolation == Isolation::Agent;
        let open = || self.open(Opening::Discover, self.shutdown.child_token());
        let native::Verdict::Speaks(shared) = self
            .native
            .probe
            .verdict(&self.name, !per_agent, open)
            .await
        else {
            return None;
        };
        if per_agent {
            return Some(self.agents_own(&self.native.per_agent, agent, || Opening::Discover));
        }
        shared
    }

    /// The connection Airlock holds itself (see the module docs), opened on first use.
    pub fn service(&self) -> &Connection {
        self.service.get_or_init(|| {
            let params = airlock_initialize_params();
            self.open(Opening::Initialize(params), self.shutdown.child_token())
        })
    }

    /// The state of the service connection, if it has been opened.
    pub fn service_state(&self) -> Option<LinkState> {
        self.service.get().map(Connection::state)
    }

    /// The upstream's tools as it lists them (every page of `tools/list`).
    pub async fn list_tools(&self) -> Result<Vec<Value>, UpstreamError> {
        let mut tools = Vec::new();
        let mut cursor: Option<Value> = None;
        // A server that keeps handing out cursors is not followed forever.
        for _ in 0..100 {
            let params = match cursor.take() {
                Some(cursor) => json!({ "cursor": cursor }),
                None => json!({}),
            };
            let page = self.service().call("tools/list", params).await?;
            if let Some(listed) = page.get("tools").and_then(Value::as_array) {
                tools.extend(listed.iter().cloned());
            }
            cursor = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }

    /// A new connection of its own for one downstream session, initialized with `init_params`.
    pub fn open_session_connection(&self, init_params: Value) -> Connection {
        self.open(
            Opening::Initialize(init_params),
            self.shutdown.child_token(),
        )
    }

    fn open(&self, opening: Opening, stop: CancellationToken) -> Connection {
        match &self.transport {
            Transport::Stdio {
                argv,
                env,
                redactor,
            } => {
                let wire = Arc::new(stdio::StdioWire::default());
                let conn =
                    Connection::new(self.name.clone(), opening, Box::new(wire.clone()), stop);
                let spec = stdio::ChildSpec {
                    argv: argv.clone(),
                    env: env.clone(),
                    redactor: redactor.clone(),
                };
                tokio::spawn(stdio::supervise(conn.0.clone(), wire, spec));
                conn
            }
            Transport::Http(target) => {
                let HttpTarget { url, uri, headers } = target.as_ref().clone();
                let wire = Arc::new(http::HttpWire::new(
                    self.http_client.clone(),
                    url,
                    uri,
                    headers,
                ));
                let conn = Connection::new(
                    self.name.clone(),
                    opening,
                    Box::new(wire.clone()),
                    stop.clone(),
                );
                let shared = conn.0.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    wire.close().await;
                    shared.set_state(LinkState::Stopped);
                    shared.fail_all("stopped");
                });
                conn
            }
        }
    }
}

/// The `initialize` params Airlock sends for connections it holds itself. Airlock declares every
/// client capability: a shared child's server requests go to whichever agent's session can
/// answer them, and a 2026-07-28 client is asked them as input requests (`mcp::input_rounds`),
/// when it declared it can answer them; what nobody can answer is refused to the server.
fn airlock_initialize_params() -> Value {
    json!({
        "protocolVersion": crate::protocol::LATEST_HANDSHAKE_VERSION,
        "capabilities": {
            "roots": {"listChanged": true},
            "sampling": {},
            // Both modes by name: since 2025-11-25 an empty `elicitation` object means form mode
            // only, and servers (e.g. server-everything's `trigger-url-elicitation`) hide the
            // tools that need URL mode, so agents would never see them.
            "elicitation": {"form": {}, "url": {}},
        },
        "clientInfo": {"name": "airlock", "version": env!("CARGO_PKG_VERSION")},
    })
}
