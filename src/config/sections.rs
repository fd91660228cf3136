//! The sections of `airlock.toml` and their defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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

/// `[audit]`: how long the audit log keeps events, the key its exports are signed with, and
/// whether calls the policy decides alone are recorded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record the calls the policy decides alone (allowed, denied, rate-limited, and how the
    /// allowed ones end). `false` keeps them out of the log (a deployment that cannot spare the
    /// writes); parked calls, decisions and what people do are recorded either way.
    pub record_policy_decisions: bool,
    /// Days an event is kept; older ones are removed hourly, the chain still verifiable from the
    /// last removed event's hash. 0 (the default) keeps everything.
    pub retain_days: u32,
    /// A file holding an Ed25519 seed in hex (`airlock audit keygen` makes one): JSON-lines
    /// exports end with a checkpoint signed with it.
    pub signing_key_file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            record_policy_decisions: true,
            retain_days: 0,
            signing_key_file: None,
        }
    }
}

/// `[approval]`: bounds on the queue, so agents cannot park without limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Seconds a parked call's request is held before Airlock answers "still waiting, call again"
    /// (under the 60 s most clients give up after); 0 holds it until the call is decided.
    pub hold: u64,
    /// Seconds an approved call waits for its agent to call again (or a refused one for its
    /// agent to be told) before it ends `unclaimed` and never runs.
    pub pickup: u64,
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
            hold: 50,
            pickup: 600,
            max_pending_per_agent: 20,
            max_pending: 1000,
            max_args_bytes: 256 * 1024,
        }
    }
}

/// `[policy]`: what applies to every upstream's policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// What happens to a tool that looks credential-exporting when its rule merely allows it.
    pub sensitive: SensitiveSetting,
    /// With `sensitive = "require_approval"`, park tools that look destructive too.
    pub sensitive_destructive: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            sensitive: SensitiveSetting::RequireApproval,
            sensitive_destructive: false,
        }
    }
}

/// `[policy] sensitive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveSetting {
    /// Park it anyway (the default): the classifier's verdict beats a rule that only allows.
    RequireApproval,
    /// Do what the rule says (PolicyLayer's behaviour).
    Allow,
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
    pub(super) fn plaintext_password(&self) -> Option<String> {
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
    /// What a tool that appears after the upstream's tools were first seen gets.
    #[serde(default)]
    pub new_tools: NewTools,
}

/// `[[upstream]] new_tools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewTools {
    /// Accept it as first seen (the default): pinned from then on.
    #[default]
    Allow,
    /// Quarantine it until an admin accepts it.
    Quarantine,
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
