//! What each CLI subcommand does; `main.rs` only parses arguments and calls in here.
//! Commands that create a secret print it alone on stdout and everything else on stderr, so
//! `TOKEN=$(airlock token create --agent claude)` works.

mod review;

pub use review::{
    approve, is_plausible_email, pending, reject, user_add, user_password, user_token,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::app::{Application, StartupError};
use crate::config::{Config, ConfigError, UpstreamConfig};
use crate::policy::{Policy, PolicyHandle, Rule, risk};
use crate::secrets;
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no secure randomness available")]
    Random(#[from] getrandom::Error),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Demo(#[from] crate::demo_upstream::DemoError),
    #[error(transparent)]
    Decide(#[from] crate::approval::DecideError),
}

/// `airlock serve`: production.
pub async fn serve(config_path: &Path) -> Result<(), CommandError> {
    let config = Config::load(config_path)?;
    let app = Application::build(config).await?;
    let config = &app.state().config;
    for warning in crate::store::permission_warnings(&config.database.url)
        .into_iter()
        .chain(config.warnings())
    {
        tracing::warn!("{warning}");
    }
    tracing::info!(addr = %app.local_addr(), "airlock listening");
    app.run_until_stopped().await.map_err(CommandError::Serve)
}

/// `airlock token create --agent NAME`: a new agent bearer token, printed once.
pub async fn token_create(config_path: &Path, agent: &str) -> Result<String, CommandError> {
    if !crate::config::is_valid_name(agent) {
        return Err(CommandError::Invalid(format!(
            "agent name {agent:?}: use letters, digits, '-', '_' and '.'"
        )));
    }
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database).await?;
    let token = secrets::generate_token()?;
    store
        .add_agent_token(agent, &secrets::sha256_hex(token.as_bytes()))
        .await?;
    let detail = format!("agent {agent}");
    crate::audit::record(&store, "agent_token_created", "cli", "cli", Some(&detail)).await?;
    Ok(token)
}

/// `airlock check`: validates the config and every policy, and explains each tool's rule. Unless
/// `offline`, it also starts each upstream and explains the tools it actually offers, with risk
/// hints. An invalid config or policy is an error (exit 1); an unreachable upstream is a warning.
pub async fn check(config_path: &Path, offline: bool) -> Result<String, CommandError> {
    use std::fmt::Write;
    let config = Config::load(config_path)?;
    let mut report = format!("config {}: ok\n", config_path.display());
    if !offline {
        let shown = crate::config::redact_url(&config.database.url);
        match Store::open(&config.database).await {
            Ok(store) => {
                let _ = writeln!(
                    report,
                    "database {shown}: ok (reachable, migrations applied)"
                );
                drop(store);
            }
            Err(e) => {
                return Err(CommandError::Invalid(format!(
                    "database {shown}: {}",
                    crate::telemetry::error_chain(&e)
                )));
            }
        }
    }
    for warning in crate::store::permission_warnings(&config.database.url)
        .into_iter()
        .chain(config.warnings())
    {
        let _ = writeln!(report, "warning: {warning}");
    }
    if let Some(email) = &config.email {
        let mailer = crate::notify::worker::Mailer::new(email)
            .map_err(|e| CommandError::Invalid(format!("email: {e}")))?;
        match (mailer, offline) {
            (None, _) => report.push_str(
                "email: no smtp_url; messages stay in the outbox (admins read them on /outbox)\n",
            ),
            (Some(_), true) => report.push_str("email: not tested (--offline)\n"),
            (Some(mailer), false) => match mailer.test_connection().await {
                Ok(()) => {
                    report.push_str("email: ok (the SMTP server answered and accepted the login)\n")
                }
                Err(why) => return Err(CommandError::Invalid(format!("email: {why}"))),
            },
        }
    }
    match audit_key(&config)? {
        Some(key) => {
            let _ = writeln!(
                report,
                "audit: exports are signed; public key {} (give it to whoever checks them)",
                key.public_key()
            );
        }
        None => report.push_str(
            "audit: exports are not signed (set [audit] signing_key_file; `airlock audit keygen` makes a key)\n",
        ),
    }
    if config.audit.retain_days > 0 {
        let _ = writeln!(
            report,
            "audit: events older than {} days are removed",
            config.audit.retain_days
        );
    }
    if config.upstreams.is_empty() {
        report.push_str("warning: no [[upstream]] is configured; agents have nothing to reach\n");
    }
    let http_client = reqwest::Client::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    for upstream in &config.upstreams {
        let policy = PolicyHandle::load(upstream.policy.clone())
            .map_err(|e| CommandError::Invalid(format!("upstream {}: {e}", upstream.name)))?;
        let _ = writeln!(
            report,
            "\nupstream {} ({})",
            upstream.name,
            transport(upstream)
        );
        let _ = writeln!(
            report,
            "  policy {}",
            upstream.policy.as_ref().map_or_else(
                || "(none: the built-in default)".to_owned(),
                |p| p.display().to_string()
            )
        );
        let current = policy.current();
        for warning in current.warnings(|name| config.groups.contains_key(name)) {
            let _ = writeln!(report, "  warning: {warning}");
        }
        let offered = if offline {
            None
        } else {
            let runtime = Upstream::new(
                upstream,
                policy,
                http_client.clone(),
                shutdown.child_token(),
                std::sync::Arc::new(crate::redact::Redactor::new(&config.redaction)),
            )
            .map_err(|e| CommandError::Invalid(format!("upstream {}: {e}", upstream.name)))?;
            match runtime.list_tools().await {
                Ok(tools) => Some(tools),
                Err(e) => {
                    let _ = writeln!(
                        report,
                        "  warning: cannot list the upstream's tools ({e}); showing the policy only"
                    );
                    None
                }
            }
        };
        explain_tools(&mut report, &current, offered.as_deref());
        explain_other_requests(&mut report, &current);
    }
    shutdown.cancel();
    Ok(report)
}

/// The rules of resources and prompts, and what the rest of the requests get.
fn explain_other_requests(report: &mut String, policy: &Policy) {
    use std::fmt::Write;
    for (title, entries) in [
        ("resources", policy.resources().collect::<Vec<_>>()),
        ("prompts", policy.prompts().collect::<Vec<_>>()),
    ] {
        if entries.is_empty() {
            continue;
        }
        let _ = writeln!(
            report,
            "  {title} (resources/read and subscribe, prompts/get, their completions):"
        );
        for (name, rule) in entries {
            let _ = writeln!(report, "    {name:<24} {}", policy.describe_listed(rule));
        }
    }
    let _ = writeln!(
        report,
        "  other resources, prompts and methods: {} (tool listings, ping and tasks always pass; \
         outside tools/call nothing can wait for approval)",
        policy.describe_default()
    );
}

/// One line per tool: the upstream's own tools when known (plus policy entries it lacks), else the
/// policy's entries; then what any other tool gets.
fn explain_tools(report: &mut String, policy: &Policy, offered: Option<&[serde_json::Value]>) {
    use std::fmt::Write;
    match offered {
        Some(tools) => {
            let _ = writeln!(report, "  tools offered by the upstream ({}):", tools.len());
            for tool in tools {
                let name = tool
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                let allows = matches!(policy.rule_for(name).rule, Rule::Allow { .. });
                let _ = writeln!(report, "    {name:<24} {}", policy.describe(name));
                for note in risk::notes(tool, allows) {
                    let _ = writeln!(report, "    {:<24} ! {note}", "");
                }
            }
            let missing: Vec<&str> = policy
                .tools()
                .map(|(name, _)| name)
                .filter(|name| {
                    !tools
                        .iter()
                        .any(|t| t.get("name").and_then(serde_json::Value::as_str) == Some(name))
                })
                .collect();
            let _ = writeln!(
                report,
                "    {:<24} {}",
                "(any other tool)",
                policy.describe_default()
            );
            for name in missing {
                let _ = writeln!(
                    report,
                    "  warning: the policy lists {name}, which the upstream does not offer"
                );
            }
            return;
        }
        None => {
            for (name, _) in policy.tools() {
                let _ = writeln!(report, "    {name:<24} {}", policy.describe(name));
            }
        }
    }
    let _ = writeln!(
        report,
        "    {:<24} {}",
        "(any other tool)",
        policy.describe_default()
    );
}

fn transport(upstream: &UpstreamConfig) -> String {
    match (&upstream.command, &upstream.url) {
        (Some(argv), _) => format!("stdio: {}", argv.join(" ")),
        (None, Some(url)) => format!("http: {url}"),
        (None, None) => "no transport".to_owned(),
    }
}

/// The policy `airlock demo` starts with; written to the demo folder so it can be edited live.
pub const DEMO_POLICY: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "get_chats": {},
    "get_messages": {},
    "slow_task": {},
    "send_message": { "rate_limit": { "max": 5, "window": 60 } },
    "delete_chat": { "action": "deny", "reason": "never from an agent" },
    "export_session": { "action": "require_approval", "approvals": 1, "timeout": 600 }
  },
  "resources": {
    "telegram://account/profile": { "action": "deny", "reason": "the account's own details" }
  },
  "prompts": { "summarize_chat": {} }
}
"#;

/// The reviewer `airlock demo` creates (an admin), with a fresh API token each run.
pub const DEMO_REVIEWER: &str = "demo@airlock.local";

/// Options of `airlock demo`.
pub struct DemoArgs {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

/// `airlock audit verify`: the chain from its first event to its head, or the first break.
pub async fn audit_verify(config_path: &Path) -> Result<String, CommandError> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database).await?;
    match crate::audit::verify(&store).await {
        Ok(verified) => Ok(format!(
            "audit log intact: {} events, head {}\n",
            verified.events, verified.head
        )),
        Err(crate::audit::VerifyError::Broken(broken)) => {
            Err(CommandError::Invalid(broken.to_string()))
        }
        Err(crate::audit::VerifyError::Store(e)) => Err(e.into()),
    }
}

/// `airlock audit verify --file`: an exported JSON-lines file checked on its own, against the
/// public key given, or else the one of this config's `[audit] signing_key_file`.
pub fn audit_verify_file(
    config_path: &Path,
    file: &Path,
    public_key: Option<&str>,
    partial: bool,
) -> Result<String, CommandError> {
    let public_key = match public_key {
        Some(key) => key.to_owned(),
        None => Config::load(config_path)
            .ok()
            .and_then(|config| audit_key(&config).ok().flatten())
            .map(|key| key.public_key())
            .ok_or_else(|| {
                CommandError::Invalid(
                    "pass --public-key HEX, the key the export must be signed with (a key named \
                     in the file alone proves nothing), or run where [audit] signing_key_file is set"
                        .to_owned(),
                )
            })?,
    };
    let opened = std::fs::File::open(file).map_err(|source| CommandError::Io {
        context: format!("cannot open {}", file.display()),
        source,
    })?;
    let verified =
        crate::audit::verify_export(std::io::BufReader::new(opened), &public_key, partial)
            .map_err(|e| CommandError::Invalid(format!("{}: {e}", file.display())))?;
    let checkpoint = &verified.checkpoint;
    let scope = if partial {
        format!(
            "the events of a filtered export ({}), none missing, added or changed",
            if checkpoint.filter.is_empty() {
                "no filter"
            } else {
                &checkpoint.filter
            }
        )
    } else {
        format!(
            "the whole log from event {} to the head {}",
            checkpoint.pruned_seq + 1,
            checkpoint.seq
        )
    };
    Ok(format!(
        "export intact: {} events; {scope}; signed at {} by {public_key}\n",
        verified.events, checkpoint.at
    ))
}

/// The config's audit signing key, or a one-line reason it cannot be read.
fn audit_key(config: &Config) -> Result<Option<crate::audit::SigningKey>, CommandError> {
    crate::audit::SigningKey::configured(&config.audit)
        .map_err(|e| CommandError::Invalid(format!("[audit] signing_key_file: {e}")))
}

/// `airlock audit keygen`: a new signing key (hex seed) and its public key.
pub fn audit_keygen() -> Result<(String, String), CommandError> {
    let fail = |e: crate::audit::checkpoint::KeyError| CommandError::Invalid(e.to_string());
    let seed = crate::audit::SigningKey::generate().map_err(fail)?;
    let public_key = crate::audit::SigningKey::from_hex(&seed)
        .map_err(fail)?
        .public_key();
    Ok((seed, public_key))
}

/// What `airlock audit export` was asked for.
pub struct ExportRequest {
    pub format: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub agent: Option<String>,
}

/// A `--since`/`--until` value as stored-time text: RFC 3339, or a day (its start, or with
/// `day_end` the next day's start).
fn export_time(flag: &str, text: &str, day_end: bool) -> Result<String, CommandError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(crate::store::timestamp(at));
    }
    let day = time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| {
        CommandError::Invalid(format!(
            "{flag} {text:?}: use RFC 3339 (2026-11-25T14:05:00Z) or a day (2026-11-25)"
        ))
    })?;
    let day = if day_end {
        day.next_day().unwrap_or(day)
    } else {
        day
    };
    Ok(crate::store::timestamp(day.midnight().assume_utc()))
}

/// `airlock audit export`: the filtered log on stdout; returns how many events.
pub async fn audit_export(config_path: &Path, request: ExportRequest) -> Result<u64, CommandError> {
    let format = crate::audit::export::Format::parse(&request.format).ok_or_else(|| {
        CommandError::Invalid(format!("--format {:?}: use jsonl or csv", request.format))
    })?;
    let filter = crate::store::AuditFilter {
        since: request
            .since
            .as_deref()
            .map(|t| export_time("--since", t, false))
            .transpose()?,
        until: request
            .until
            .as_deref()
            .map(|t| export_time("--until", t, true))
            .transpose()?,
        upstream: request.upstream,
        tool: request.tool,
        agent: request.agent,
        ..crate::store::AuditFilter::default()
    };
    let config = Config::load(config_path)?;
    let key = audit_key(&config)?;
    let store = Store::open(&config.database).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::audit::export::export(&store, filter, format, key.as_ref(), &mut out)
        .await
        .map_err(|e| {
            CommandError::Invalid(format!(
                "audit export: {}",
                crate::telemetry::error_chain(&e)
            ))
        })
}

/// `airlock demo`: the gateway with the demo upstream on SQLite, no setup. Prints how to connect.
pub async fn demo(args: DemoArgs) -> Result<(), CommandError> {
    let io = |context: String| move |source| CommandError::Io { context, source };
    std::fs::create_dir_all(&args.data_dir)
        .map_err(io(format!("cannot create {}", args.data_dir.display())))?;
    let dir = std::fs::canonicalize(&args.data_dir)
        .map_err(io(format!("cannot resolve {}", args.data_dir.display())))?;
    // The demo's folder is its own: only its user may read the database, the key and the logs.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("cannot make {} private", dir.display())))?;
        for file in ["airlock.db", "airlock.db-wal", "airlock.db-shm"] {
            let file = dir.join(file);
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(io(format!("cannot make {} private", file.display())))?;
            }
        }
    }
    let policy_path = dir.join("telegram-policy.json");
    if !policy_path.exists() {
        std::fs::write(&policy_path, DEMO_POLICY)
            .map_err(io(format!("cannot write {}", policy_path.display())))?;
    }
    // Audit exports are signed with a key of the demo's own.
    let audit_key = dir.join("audit.key");
    if !audit_key.exists() {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let (seed, _) = audit_keygen()?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&audit_key)
            .and_then(|mut file| file.write_all(seed.as_bytes()))
            .map_err(io(format!("cannot write {}", audit_key.display())))?;
    }
    let exe = std::env::current_exe().map_err(io("cannot find the airlock binary".to_owned()))?;
    let call_log = dir.join("telegram-calls.jsonl");
    let mut config = Config::from_toml("", None, std::iter::empty())?;
    config.server.listen = args.listen;
    config.server.public_url = format!("http://{}", args.listen);
    config.database.url = format!("sqlite://{}", dir.join("airlock.db").display());
    config.audit.signing_key_file = Some(audit_key);
    // No SMTP server: email stays in the local outbox, readable on /outbox.
    config.email = Some(crate::config::EmailConfig {
        smtp_url: None,
        from: "airlock@localhost".to_owned(),
        to: vec![DEMO_REVIEWER.to_owned()],
        password: None,
        password_file: None,
        timeout: 15,
        remind_before: Some(120),
        outcome_emails: true,
        links_require_sign_in: false,
        notify_every: 60,
        allow_plaintext_password: false,
    });
    config.upstreams.push(UpstreamConfig {
        name: "telegram".to_owned(),
        command: Some(vec![
            exe.display().to_string(),
            "demo-upstream".to_owned(),
            "--call-log".to_owned(),
            call_log.display().to_string(),
        ]),
        env: Default::default(),
        url: None,
        headers: Default::default(),
        policy: Some(policy_path.clone()),
        isolation: None,
    });
    // The CLI's view of the demo: the same database, so `airlock pending/approve` work on it.
    let cli_config = dir.join("airlock.toml");
    std::fs::write(
        &cli_config,
        "# Written by `airlock demo` so the CLI (pending, approve, reject, user) reaches the demo's\n\
         # database: airlock --config airlock-demo/airlock.toml pending\n\
         [database]\nurl = \"sqlite://airlock.db\"\n[audit]\nsigning_key_file = \"audit.key\"\n",
    )
    .map_err(io(format!("cannot write {}", cli_config.display())))?;
    let app = Application::build(config).await?;
    let store = &app.state().store;
    let token = secrets::generate_token()?;
    store
        .add_agent_token("demo-agent", &secrets::sha256_hex(token.as_bytes()))
        .await?;
    let reviewer = match store.user_by_email(DEMO_REVIEWER).await? {
        Some(user) => user,
        None => store
            .add_user(DEMO_REVIEWER, crate::store::Role::Admin)
            .await?
            .ok_or_else(|| CommandError::Invalid(format!("cannot create {DEMO_REVIEWER}")))?,
    };
    let reviewer_token = secrets::generate_token()?;
    store
        .add_user_token(&reviewer, &secrets::sha256_hex(reviewer_token.as_bytes()))
        .await?;
    let password = secrets::generate_password()?;
    store
        .set_password_hash(&reviewer.id, &review::hash(password.clone()).await?)
        .await?;
    let url = format!("http://{}/mcp/telegram", app.local_addr());
    println!(
        "\
Airlock demo is running.

  dashboard      http://{addr}/
                 sign in as {DEMO_REVIEWER} with password {password}
  email          kept in the local outbox: http://{addr}/outbox
  audit log      http://{addr}/history/events   (check it: airlock --config {cli_config} audit verify)
  MCP endpoint   {url}
  agent token    {token}
  reviewer       {DEMO_REVIEWER}, API token {reviewer_token}
  health         http://{addr}/readyz    metrics http://{addr}/metrics
  policy         {policy}   (edit it: changes apply within a second)
  upstream log   {call_log}   (every call the demo upstream actually received)

Connect Claude Code:
  claude mcp add --transport http airlock-telegram {url} --header \"Authorization: Bearer {token}\"

Or the MCP Inspector:
  npx -y @modelcontextprotocol/inspector-cli@0.16.8 --cli {url} --transport http --header \"Authorization: Bearer {token}\" --method tools/list

Try get_chats (allowed), send_message (5 per minute), delete_chat (denied) and export_session
(waits for a human). Decide in the dashboard, or from another terminal:
  airlock --config {cli_config} pending
  airlock --config {cli_config} approve ID        (or: reject ID --reason \"...\")
  curl -H \"Authorization: Bearer {reviewer_token}\" http://{addr}/api/v1/calls?status=pending
(With cargo: cargo run --release -- --config {cli_config} pending.) Ctrl-C stops.
",
        addr = app.local_addr(),
        policy = policy_path.display(),
        call_log = call_log.display(),
        cli_config = cli_config.display(),
    );
    app.run_until_stopped().await.map_err(CommandError::Serve)
}

/// `airlock demo-upstream`: the demo MCP server on stdio, or on Streamable HTTP with `--listen`.
pub async fn demo_upstream(
    listen: Option<SocketAddr>,
    call_log: Option<PathBuf>,
) -> Result<(), CommandError> {
    let opts = crate::demo_upstream::DemoOptions { call_log };
    match listen {
        None => crate::demo_upstream::serve_stdio(opts).await?,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CommandError::Io {
                    context: format!("cannot listen on {addr}"),
                    source,
                })?;
            eprintln!("demo upstream: MCP Streamable HTTP on http://{}/mcp", addr);
            crate::demo_upstream::serve_http(listener, opts).await?;
        }
    }
    Ok(())
}
