//! Typed configuration: `airlock.toml`, then `AIRLOCK_SECTION__KEY` environment overrides, then
//! validation. A bad config stops start-up with a message that names the key and the fix; unknown
//! keys are errors (an ignored setting is a hole). Relative paths resolve against the directory of the
//! config file, so `airlock --config /etc/airlock/airlock.toml serve` works from any directory.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where `--config` points when nothing else is said.
pub const DEFAULT_CONFIG_PATH: &str = "airlock.toml";
const ENV_PREFIX: &str = "AIRLOCK_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {path} not found; create it (see README.md, \"Configuration\") or pass --config PATH"
    )]
    NotFound { path: PathBuf },
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// The whole configuration, as validated at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Read now so that a config written for the email notifications is not rejected as unknown.
    pub email: Option<EmailConfig>,
    #[serde(default)]
    pub dashboard: DashboardConfig,
    #[serde(default)]
    pub approval: ApprovalConfig,
    #[serde(default)]
    pub redaction: crate::redact::RedactionConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Reviewer groups, usable in a rule's `reviewers`.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentConfig>,
    /// Where the file was read from; relative paths were resolved against its directory.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    /// Browser origins allowed on `/mcp`, besides `public_url`'s origin (and localhost origins
    /// when `public_url` is localhost).
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides `public_url`'s and the listen address: `name` (any port) or
    /// `name:port`. Anything else is refused (403), as DNS rebinding sends a foreign name.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client, for
    /// sign-in throttling; from anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The SHA-256 (hex) of a bearer token that `/metrics` requires, and without which `/readyz`
    /// answers only ready or not (no component detail). Unset: both are open, as before.
    pub ops_token_sha256: Option<String>,
    pub max_body_bytes: usize,
    /// Connections served at once; more wait until one closes.
    pub max_connections: usize,
    /// Connections served at once from one client address (a `trusted_proxies` peer excepted);
    /// more are closed.
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's headers before its connection is closed (also how
    /// long a kept-alive connection may sit idle between requests: hyper times both alike).
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body once Airlock starts reading it.
    pub body_timeout: u64,
    /// A downstream session with no request, call or open stream for this long is closed.
    pub session_idle_timeout: u64,
    /// How many MCP sessions one agent may hold open (each may own an upstream child).
    pub max_sessions_per_agent: usize,
    /// Names this instance in the shared queue; stable across restarts. Default: `HOSTNAME/LISTEN`.
    pub instance_id: Option<String>,
    /// Seconds without a heartbeat after which an instance counts as dead and the others abandon
    /// the calls it held.
    pub instance_timeout: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".to_owned(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            ops_token_sha256: None,
            max_body_bytes: 4 * 1024 * 1024,
            max_connections: 4096,
            max_connections_per_client: 1024,
            header_timeout: 60,
            body_timeout: 30,
            session_idle_timeout: 1800,
            max_sessions_per_agent: 100,
            instance_id: None,
            instance_timeout: 15,
        }
    }
}

/// `[audit]`: how long the audit log keeps events, and the key its exports are signed with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days an event is kept; older ones are removed hourly, the chain still verifiable from the
    /// last removed event's hash. 0 (the default) keeps everything.
    pub retain_days: u32,
    /// A file holding an Ed25519 seed in hex (`airlock audit keygen` makes one): JSON-lines
    /// exports end with a checkpoint signed with it.
    pub signing_key_file: Option<PathBuf>,
}

/// `[approval]`: bounds on the queue, so agents cannot park without limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Open queue rows (calls waiting for a decision, or approved and not yet on their way) one
    /// agent may have; more calls that need approval are refused.
    pub max_pending_per_agent: u32,
    /// The same, for all agents together.
    pub max_pending: u32,
    /// Calls whose arguments are larger than this (as JSON text) cannot wait for approval.
    pub max_args_bytes: usize,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self {
            max_pending_per_agent: 20,
            max_pending: 1000,
            max_args_bytes: 256 * 1024,
        }
    }
}

/// The reviewers' browser sessions and sign-in throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Seconds a sign-in lasts; after that the reviewer signs in again.
    pub session_ttl: u64,
    /// Failed sign-ins for one account, within `login_lockout` seconds, after which further
    /// attempts are refused until the oldest failure is that old.
    pub login_max_failures: u32,
    /// The same, for one client address (whatever emails it tries).
    pub login_max_failures_per_client: u32,
    pub login_lockout: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            session_ttl: 12 * 3600,
            login_max_failures: 5,
            login_max_failures_per_client: 20,
            login_lockout: 15 * 60,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (the default, embedded) or `postgres://USER:PASSWORD@HOST/DB` (shared by
    /// several instances).
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// Seconds a query waits for a free connection (or a new one) before it fails.
    pub acquire_timeout: u64,
}

/// The URL may carry a password: `Debug` shows it redacted.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://airlock.db".to_owned(),
            max_connections: 10,
            acquire_timeout: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://HOST:PORT` (plain, for a local relay), `smtp+starttls://HOST:587`,
    /// `smtps://HOST:465`, or lettre's own `smtp://HOST?tls=required`; a user name goes in the URL.
    /// Without it messages stay in the outbox, shown to admins on `/outbox`.
    pub smtp_url: Option<Secret>,
    pub from: String,
    #[serde(default)]
    pub to: Vec<String>,
    pub password: Option<Secret>,
    /// A file holding the SMTP password (its first line), instead of `password`.
    pub password_file: Option<PathBuf>,
    /// Seconds an SMTP connection or command may take.
    #[serde(default = "default_smtp_timeout")]
    pub timeout: u64,
    /// Seconds before a pending call expires at which its recipients get a reminder (off if unset).
    pub remind_before: Option<u64>,
    /// Email the recipients of a call again when it is decided, expires or ends otherwise.
    #[serde(default)]
    pub outcome_emails: bool,
    /// Approve/reject links in emails work only for a browser signed in as their reviewer.
    #[serde(default)]
    pub links_require_sign_in: bool,
    /// Seconds: a recipient gets at most one message about newly parked calls this often; calls
    /// parked in between are listed in one digest sent when the time is up (0: a message per
    /// call).
    #[serde(default = "default_notify_every")]
    pub notify_every: u64,
    /// Lets a password travel over plain `smtp://` to a host that is not this machine (refused
    /// otherwise: anyone on the path could read it).
    #[serde(default)]
    pub allow_plaintext_password: bool,
}

impl EmailConfig {
    /// Why this config would send the SMTP password in the clear to another machine, if it would.
    fn plaintext_password(&self) -> Option<String> {
        let url = url::Url::parse(self.smtp_url.as_ref()?.expose()).ok()?;
        let encrypted = url.scheme() != "smtp"
            || url
                .query_pairs()
                .any(|(k, v)| k == "tls" && v == "required");
        let password =
            self.password.is_some() || self.password_file.is_some() || url.password().is_some();
        // `smtp:` is not a special scheme to the URL parser: its host is opaque text.
        let host = url.host_str().unwrap_or_default();
        let local = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (!encrypted && password && !local && !self.allow_plaintext_password).then(|| {
            format!(
                "a password would travel unencrypted to {}; use smtps://HOST:465 or \
                 smtp+starttls://HOST:587, or set email.allow_plaintext_password = true",
                url.host_str().unwrap_or_default()
            )
        })
    }
}

fn default_smtp_timeout() -> u64 {
    15
}

fn default_notify_every() -> u64 {
    60
}

/// How downstream sessions map onto a stdio upstream's child processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One child for the upstream, multiplexed by request-id rewriting.
    Shared,
    /// One child per downstream session, for stateful servers.
    Session,
    /// One child per agent, shared by that agent's sessions: agents never share a process, so
    /// one agent's notifications, server requests and server-side state never reach another.
    Agent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// argv of a stdio MCP server.
    pub command: Option<Vec<String>>,
    /// Extra environment for the stdio child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A Streamable HTTP MCP endpoint.
    pub url: Option<String>,
    /// Extra headers sent to an HTTP upstream (e.g. its own `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    pub policy: Option<PathBuf>,
    pub isolation: Option<Isolation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub name: String,
    pub token_sha256: String,
}

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(••••)")
    }
}

impl Config {
    /// Reads `path`, applies `AIRLOCK_*` overrides from the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                ConfigError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Self::from_toml(&text, Some(path), std::env::vars())
    }

    /// Parses TOML text with the given environment; `path` names the file in errors and anchors
    /// relative paths.
    pub fn from_toml(
        text: &str,
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let origin = path.map_or_else(|| "config".to_owned(), |p| p.display().to_string());
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: PathBuf::from(&origin),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        let overrides = apply_env_overrides(&mut table, env)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides
                    .iter()
                    .find(|(k, _)| key.starts_with(k.as_str()))
                    .map_or_else(|| origin.clone(), |(_, var)| format!("environment {var}"));
                // toml appends "in `section`" on a second line; the key path already says it.
                let message = e.into_inner().to_string();
                ConfigError::Invalid {
                    origin,
                    key,
                    message: message.lines().next().unwrap_or_default().to_owned(),
                }
            })?;
        config.source = path.map(Path::to_owned);
        if let Some(dir) = path.and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        config.validate(&origin)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        if let Some(file) = &self.audit.signing_key_file
            && file.is_relative()
        {
            self.audit.signing_key_file = Some(dir.join(file));
        }
        if let Some(email) = &mut self.email
            && let Some(file) = &email.password_file
            && file.is_relative()
        {
            email.password_file = Some(dir.join(file));
        }
        for upstream in &mut self.upstreams {
            if let Some(policy) = &upstream.policy
                && policy.is_relative()
            {
                upstream.policy = Some(dir.join(policy));
            }
            if let Some(program) = upstream.command.as_mut().and_then(|argv| argv.first_mut())
                && program.contains('/')
                && Path::new(program.as_str()).is_relative()
            {
                *program = dir.join(&*program).display().to_string();
            }
        }
        if let Some(file) = self.database.url.strip_prefix("sqlite://")
            && !file.starts_with('/')
            && !file.starts_with(':')
        {
            self.database.url = format!("sqlite://{}", dir.join(file).display());
        }
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        url::Url::parse(&self.server.public_url).map_err(|e| {
            invalid(
                "server.public_url",
                format!("{e}; expected an absolute URL such as \"http://127.0.0.1:8080\""),
            )
        })?;
        for (i, allowed) in self.server.allowed_origins.iter().enumerate() {
            if url::Url::parse(allowed).is_err() {
                return Err(invalid(
                    &format!("server.allowed_origins[{i}]"),
                    format!("{allowed:?} is not an origin; write it as \"https://host[:port]\""),
                ));
            }
        }
        for (i, host) in self.server.allowed_hosts.iter().enumerate() {
            let plain = !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            if !plain {
                return Err(invalid(
                    &format!("server.allowed_hosts[{i}]"),
                    format!(
                        "{host:?} is not a host; write it as \"name\" or \"name:port\", without a scheme or path"
                    ),
                ));
            }
        }
        if let Some(hex) = &self.server.ops_token_sha256
            && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(
                "server.ops_token_sha256",
                "expected 64 hex digits: the SHA-256 of the token (`printf %s TOKEN | sha256sum`)"
                    .to_owned(),
            ));
        }
        for (i, range) in self.server.trusted_proxies.iter().enumerate() {
            if !crate::web::client::is_range(range) {
                return Err(invalid(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("{range:?} is not an address or CIDR block such as \"10.0.0.0/8\""),
                ));
            }
        }
        if self.server.max_connections == 0
            || self.server.max_connections_per_client == 0
            || self.server.header_timeout == 0
            || self.server.body_timeout == 0
        {
            return Err(invalid(
                "server",
                "max_connections, max_connections_per_client, header_timeout and body_timeout \
                 must be more than 0"
                    .to_owned(),
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be more than 0".to_owned(),
            ));
        }
        if crate::store::Backend::of_url(&self.database.url).is_none() {
            return Err(invalid(
                "database.url",
                format!(
                    "unsupported database URL {:?}; use \"sqlite://PATH\" or \"postgres://USER:PASSWORD@HOST/DB\"",
                    redact_url(&self.database.url)
                ),
            ));
        }
        if self.server.instance_timeout < 2 {
            return Err(invalid(
                "server.instance_timeout",
                "must be at least 2 seconds (instances beat every quarter of it)".to_owned(),
            ));
        }
        if let Some(email) = &self.email
            && email.password.is_some()
            && email.password_file.is_some()
        {
            return Err(invalid(
                "email.password_file",
                "set email.password or email.password_file, not both".to_owned(),
            ));
        }
        if let Some(why) = self
            .email
            .as_ref()
            .and_then(EmailConfig::plaintext_password)
        {
            return Err(invalid("email.smtp_url", why));
        }
        if let Some((key, message)) = self.redaction.problem() {
            return Err(invalid(&key, message));
        }
        if self.dashboard.session_ttl == 0
            || self.dashboard.login_max_failures == 0
            || self.dashboard.login_max_failures_per_client == 0
            || self.dashboard.login_lockout == 0
        {
            return Err(invalid(
                "dashboard",
                "session_ttl, login_max_failures, login_max_failures_per_client and login_lockout must be more than 0".to_owned(),
            ));
        }
        if self.approval.max_pending_per_agent == 0
            || self.approval.max_pending == 0
            || self.approval.max_args_bytes == 0
        {
            return Err(invalid(
                "approval",
                "max_pending_per_agent, max_pending and max_args_bytes must be more than 0"
                    .to_owned(),
            ));
        }
        if self.database.max_connections == 0 || self.database.acquire_timeout == 0 {
            return Err(invalid(
                "database.max_connections",
                "database.max_connections and database.acquire_timeout must be more than 0"
                    .to_owned(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, upstream) in self.upstreams.iter().enumerate() {
            let key = |field: &str| format!("upstream[{i}].{field}");
            if !is_valid_name(&upstream.name) {
                return Err(invalid(
                    &key("name"),
                    format!(
                        "{:?} cannot be used in /mcp/{{upstream}}; use letters, digits, '-' and '_'",
                        upstream.name
                    ),
                ));
            }
            if !seen.insert(upstream.name.as_str()) {
                return Err(invalid(
                    &key("name"),
                    format!("upstream {:?} is defined twice", upstream.name),
                ));
            }
            match (&upstream.command, &upstream.url) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &key("command"),
                        "give either `command` (stdio) or `url` (Streamable HTTP), not both"
                            .to_owned(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        &upstream.name,
                        "needs `command = [\"program\", \"arg\"]` (stdio) or `url = \"http://...\"`"
                            .to_owned(),
                    ));
                }
                (Some(argv), None) if argv.is_empty() || argv[0].is_empty() => {
                    return Err(invalid(
                        &key("command"),
                        "is empty; give the program and its arguments".to_owned(),
                    ));
                }
                (None, Some(url)) => {
                    let parsed = url::Url::parse(url).map_err(|e| {
                        invalid(&key("url"), format!("{e}; expected http(s)://host/path"))
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(invalid(
                            &key("url"),
                            "must be an http:// or https:// URL".to_owned(),
                        ));
                    }
                    if matches!(
                        upstream.isolation,
                        Some(Isolation::Shared | Isolation::Agent)
                    ) {
                        return Err(invalid(
                            &key("isolation"),
                            "HTTP upstreams always get one upstream session per downstream session"
                                .to_owned(),
                        ));
                    }
                }
                _ => {}
            }
            for name in upstream.headers.keys() {
                if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(invalid(
                        &key(&format!("headers.{name}")),
                        "is not a valid HTTP header name".to_owned(),
                    ));
                }
            }
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if !is_valid_name(&agent.name) {
                return Err(invalid(
                    &format!("agent[{i}].name"),
                    "use letters, digits, '-', '_' and '.'".to_owned(),
                ));
            }
            let hex = &agent.token_sha256;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    &format!("agent[{i}].token_sha256"),
                    "expected 64 hex digits: the SHA-256 of the token (`printf %s TOKEN | sha256sum`)"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Settings that load but probably do not do what was meant (`check` prints them, `serve`
    /// logs them).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let proxied =
            self.server.listen.ip().is_loopback() && self.server.public_url.starts_with("https://");
        if proxied && self.server.trusted_proxies.is_empty() {
            warnings.push(
                "server.public_url is https and server.listen is loopback, so a proxy is in front, \
                 but server.trusted_proxies is empty: every client has the proxy's address, and \
                 login_max_failures_per_client wrong passwords from anyone lock everyone out for \
                 a while; add the proxy (e.g. trusted_proxies = [\"127.0.0.1\"])"
                    .to_owned(),
            );
        }
        warnings
    }

    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// Names of upstreams and agents appear in URLs and logs: keep them to a safe alphabet.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Hides a password in a URL before it is shown to anyone: the user-info password, a
/// `password=` query parameter, and, for a URL that does not even parse (an unescaped `#` or `/`
/// in the password), everything before the last `@`.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "••••";
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once("://") {
            Some((scheme, rest)) => match rest.rfind('@') {
                Some(at) => format!("{scheme}://{HIDDEN}@{}", &rest[at + 1..]),
                None => format!("{scheme}://{rest}"),
            },
            None => HIDDEN.to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    HIDDEN.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Applies `AIRLOCK_SECTION__KEY=value` overrides to scalar keys of the parsed file. Values are read
/// as TOML when they parse (`8080`, `true`, `["a"]`) and as plain strings otherwise. Returns which
/// key paths came from which variable, so errors can point at the variable instead of the file.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let invalid = |message: &str| ConfigError::Invalid {
            origin: format!("environment {var}"),
            key: path.join("."),
            message: message.to_owned(),
        };
        if path.len() != 2 || path.iter().any(String::is_empty) {
            return Err(invalid(
                "expected AIRLOCK_SECTION__KEY, e.g. AIRLOCK_DATABASE__URL",
            ));
        }
        if matches!(path[0].as_str(), "upstream" | "agent") {
            return Err(invalid(
                "[[upstream]] and [[agent]] entries can only be set in the config file",
            ));
        }
        let section = table
            .entry(path[0].clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(invalid("this section is not a table in the config file"));
        };
        section.insert(path[1].clone(), parse_env_value(&raw));
        applied.push((path.join("."), var));
    }
    Ok(applied)
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        for url in [
            "postgres://airlock:s3cret@db/x",
            "postgres://airlock:p#s3cret@db/x",
            "postgres://airlock:a/s3cret@db/x",
            "postgres://airlock@db/x?sslmode=require&password=s3cret",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("s3cret"), "{url} -> {shown}");
            assert!(shown.contains("db"), "{shown}");
        }
        let config = DatabaseConfig {
            url: "postgres://airlock:s3cret@db/x".to_owned(),
            ..DatabaseConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(redact_url("sqlite://airlock.db"), "sqlite://airlock.db");
    }

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::from_toml(text, Some(Path::new("/etc/airlock/airlock.toml")), env)
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let config = parse("", &[]).expect("empty config is valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.max_body_bytes, 4_194_304);
        assert_eq!(config.database.url, "sqlite:///etc/airlock/airlock.db");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config = parse(
            "[[upstream]]\nname = \"t\"\ncommand = [\"./bin/t\", \"--x\"]\npolicy = \"p/t.json\"\n",
            &[],
        )
        .expect("valid");
        let upstream = &config.upstreams[0];
        assert_eq!(
            upstream.policy.as_deref(),
            Some(Path::new("/etc/airlock/p/t.json"))
        );
        assert_eq!(
            upstream.command.as_deref(),
            Some(&["/etc/airlock/./bin/t".to_owned(), "--x".to_owned()][..])
        );
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err =
            parse("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n", &[]).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("server"), "{text}");
        assert!(text.contains("listn"), "{text}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = parse("[server]\nlisten = \"not an address\"\n", &[]).expect_err("bad addr");
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn env_overrides_scalars_and_is_named_in_errors() {
        let config = parse(
            "",
            &[
                ("AIRLOCK_SERVER__LISTEN", "0.0.0.0:9999"),
                ("AIRLOCK_SERVER__MAX_BODY_BYTES", "1024"),
                ("AIRLOCK_CONFIG", "ignored.toml"),
            ],
        )
        .expect("valid");
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(config.server.max_body_bytes, 1024);

        let err = parse("", &[("AIRLOCK_SERVER__MAX_BODY_BYTES", "lots")]).expect_err("bad");
        assert!(
            err.to_string()
                .contains("environment AIRLOCK_SERVER__MAX_BODY_BYTES"),
            "{err}"
        );
        let err = parse("", &[("AIRLOCK_UPSTREAM__NAME", "x")]).expect_err("array table");
        assert!(
            err.to_string().contains("only be set in the config file"),
            "{err}"
        );
    }

    #[test]
    fn an_upstream_needs_exactly_one_transport() {
        let err = parse("[[upstream]]\nname = \"t\"\n", &[]).expect_err("no transport");
        assert!(err.to_string().contains("command"), "{err}");
        let err = parse(
            "[[upstream]]\nname = \"t\"\ncommand = [\"x\"]\nurl = \"http://h/mcp\"\n",
            &[],
        )
        .expect_err("both");
        assert!(err.to_string().contains("not both"), "{err}");
        let err =
            parse("[[upstream]]\nname = \"a b\"\ncommand = [\"x\"]\n", &[]).expect_err("bad name");
        assert!(err.to_string().contains("upstream[0].name"), "{err}");
    }

    #[test]
    fn a_password_over_plain_smtp_to_another_host_is_refused_unless_allowed() {
        let email = |url: &str, extra: &str| {
            parse(
                &format!("[email]\nsmtp_url = \"{url}\"\nfrom = \"a@b.c\"\n{extra}"),
                &[],
            )
        };
        let err = email("smtp://relay@mail.example.org:25", "password = \"p\"\n")
            .expect_err("plain text to another host");
        assert!(
            err.to_string().contains(
                "email.smtp_url: a password would travel unencrypted to mail.example.org"
            ),
            "{err}"
        );
        assert!(email("smtp://u:p@mail.example.org:25", "").is_err());
        for ok in [
            (
                "smtp+starttls://relay@mail.example.org:587",
                "password = \"p\"\n",
            ),
            ("smtps://relay@mail.example.org:465", "password = \"p\"\n"),
            (
                "smtp://mail.example.org:587?tls=required",
                "password = \"p\"\n",
            ),
            ("smtp://relay@127.0.0.1:25", "password = \"p\"\n"),
            ("smtp://mail.example.org:25", ""),
            (
                "smtp://relay@mail.example.org:25",
                "password = \"p\"\nallow_plaintext_password = true\n",
            ),
        ] {
            assert!(email(ok.0, ok.1).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = parse(
            "[email]\nsmtp_url = \"smtps://u:hunter2@h\"\nfrom = \"a@b.c\"\npassword = \"hunter2\"\n",
            &[],
        )
        .expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
