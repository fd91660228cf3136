//! `airlock demo` (everything local, no setup) and `airlock demo-upstream` (the demo MCP server).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{CommandError, review};
use crate::app::Application;
use crate::config::{Config, UpstreamConfig};
use crate::secrets;

/// The policy `airlock demo` starts with; written to the demo folder so it can be edited live.
pub const DEMO_POLICY: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "get_chats": {},
    "get_messages": {},
    "slow_task": {},
    "send_message": { "rate_limit": { "max": 5, "window": 60 },
      "rules": [ { "name": "groups need a human", "action": "require_approval",
                   "reason": "a group reads it", "conditions": [
                     { "path": "args.chat_id", "op": "gte", "value": 0 } ] } ] },
    "delete_chat": { "action": "deny", "reason": "never from an agent" },
    "export_session": {}
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

/// The demo's files, in its own folder.
struct DemoFiles {
    dir: PathBuf,
    policy: PathBuf,
    audit_key: PathBuf,
    call_log: PathBuf,
    /// A config for the CLI (`airlock --config … pending`), on the demo's database.
    cli_config: PathBuf,
}

/// What the banner hands out (made fresh at each start).
struct DemoSecrets {
    agent_token: String,
    reviewer_token: String,
    password: String,
}

/// `airlock demo`: the gateway with the demo upstream on SQLite, no setup. Prints how to connect.
pub async fn demo(args: DemoArgs) -> Result<(), CommandError> {
    let files = prepare_folder(&args.data_dir)?;
    let app = Application::build(demo_config(&args, &files)?).await?;
    let secrets = demo_secrets(&app).await?;
    print_banner(&app, &files, &secrets);
    app.run_until_stopped().await.map_err(CommandError::Serve)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> CommandError {
    move |source| CommandError::Io { context, source }
}

/// The demo's folder, private to its user, with the policy, the audit key and the CLI's config
/// (kept from an earlier run, but for the CLI's config, which is written each time).
fn prepare_folder(data_dir: &std::path::Path) -> Result<DemoFiles, CommandError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(data_dir)
        .map_err(io(format!("cannot create {}", data_dir.display())))?;
    let dir = std::fs::canonicalize(data_dir)
        .map_err(io(format!("cannot resolve {}", data_dir.display())))?;
    // Only the demo's user may read the database, the key and the logs.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("cannot make {} private", dir.display())))?;
    for file in ["airlock.db", "airlock.db-wal", "airlock.db-shm"] {
        let file = dir.join(file);
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(io(format!("cannot make {} private", file.display())))?;
        }
    }
    let policy = dir.join("telegram-policy.json");
    if !policy.exists() {
        std::fs::write(&policy, DEMO_POLICY)
            .map_err(io(format!("cannot write {}", policy.display())))?;
    }
    // Audit exports are signed with a key of the demo's own.
    let audit_key = dir.join("audit.key");
    if !audit_key.exists() {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let (seed, _) = super::audit_keygen()?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&audit_key)
            .and_then(|mut file| file.write_all(seed.as_bytes()))
            .map_err(io(format!("cannot write {}", audit_key.display())))?;
    }
    let cli_config = dir.join("airlock.toml");
    std::fs::write(
        &cli_config,
        "# Written by `airlock demo` so the CLI (pending, approve, reject, user) reaches the demo's\n\
         # database: airlock --config airlock-demo/airlock.toml pending\n\
         [database]\nurl = \"sqlite://airlock.db\"\n[audit]\nsigning_key_file = \"audit.key\"\n",
    )
    .map_err(io(format!("cannot write {}", cli_config.display())))?;
    Ok(DemoFiles {
        call_log: dir.join("telegram-calls.jsonl"),
        dir,
        policy,
        audit_key,
        cli_config,
    })
}

/// The demo's configuration: its folder, the demo upstream, and email kept in the outbox.
fn demo_config(args: &DemoArgs, files: &DemoFiles) -> Result<Config, CommandError> {
    let exe = std::env::current_exe().map_err(io("cannot find the airlock binary".to_owned()))?;
    let mut config = Config::from_toml("", None, std::iter::empty())?;
    config.server.listen = args.listen;
    config.server.public_url = format!("http://{}", args.listen);
    config.database.url = format!("sqlite://{}", files.dir.join("airlock.db").display());
    config.audit.signing_key_file = Some(files.audit_key.clone());
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
            files.call_log.display().to_string(),
        ]),
        env: Default::default(),
        url: None,
        headers: Default::default(),
        policy: Some(files.policy.clone()),
        isolation: None,
        new_tools: Default::default(),
    });
    Ok(config)
}

/// A fresh agent token, and the demo reviewer (made once) with a fresh API token and password.
async fn demo_secrets(app: &Application) -> Result<DemoSecrets, CommandError> {
    let store = &app.state().store;
    let agent_token = secrets::generate_token()?;
    store
        .add_agent_token("demo-agent", &secrets::sha256_hex(agent_token.as_bytes()))
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
    Ok(DemoSecrets {
        agent_token,
        reviewer_token,
        password,
    })
}

/// What an agent calling export_session sees while nobody decides, for the banner.
fn waiting_note(hold: u64) -> String {
    if hold == 0 {
        return "Its request waits until someone decides.".to_owned();
    }
    format!(
        "After {hold} s its request is answered \"Waiting for approval ... Call export_session
again with the same arguments to get its result once a reviewer approves.\"; the call stays
in the queue, and the agent's next call with the same arguments gets the real result."
    )
}

fn print_banner(app: &Application, files: &DemoFiles, secrets: &DemoSecrets) {
    let url = format!("http://{}/mcp/telegram", app.local_addr());
    let DemoSecrets {
        agent_token: token,
        reviewer_token,
        password,
    } = secrets;
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
(waits for a human). {waiting}
Decide in the dashboard, or from another terminal:
  airlock --config {cli_config} pending
  airlock --config {cli_config} approve ID        (or: reject ID --reason \"...\")
  curl -H \"Authorization: Bearer {reviewer_token}\" http://{addr}/api/v1/calls?status=pending
(With cargo: cargo run --release -- --config {cli_config} pending.) Ctrl-C stops.
",
        addr = app.local_addr(),
        waiting = waiting_note(app.state().config.approval.hold),
        policy = files.policy.display(),
        call_log = files.call_log.display(),
        cli_config = files.cli_config.display(),
    );
}

/// `airlock demo-upstream`: the demo MCP server on stdio, or on Streamable HTTP with `--listen`.
pub async fn demo_upstream(
    listen: Option<SocketAddr>,
    opts: crate::demo_upstream::DemoOptions,
) -> Result<(), CommandError> {
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
