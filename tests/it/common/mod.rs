//! The test harness: a real Airlock on a random loopback port, a temporary SQLite file, the real
//! `airlock demo-upstream` binary as a stdio child (with a call log that proves what it received),
//! and real rmcp clients connecting over Streamable HTTP with a bearer token.
//!
//! The database is a temporary SQLite file, or, when `AIRLOCK_TEST_POSTGRES` names a PostgreSQL
//! database (`postgres://USER:PASSWORD@HOST/postgres`), a fresh schema in it for each test
//! (Airlock connects with `search_path` set to it), dropped afterwards: the same suite runs on both
//! backends. Schemas, not databases: `DROP DATABASE` waits for every backend of the server to
//! answer a signal barrier, which took up to a minute per test here.
//!
//! Tests read like a user's story: `let app = TestApp::spawn_with_policy(POLICY).await; let
//! agent = app.agent().await; agent.call("get_chats", json!({})).await; app.upstream_calls()`.

pub mod browser;
pub mod dashboard;
pub mod smtp;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock::app::Application;
use airlock::config::{Config, UpstreamConfig};
use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(20);

/// The path of the binary under test, built by cargo for the integration tests.
pub const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

/// A policy that exercises every rule kind on the demo upstream (like `airlock demo`'s, with a
/// rate limit small enough to hit in a test).
pub const TEST_POLICY: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "get_chats": {},
    "get_messages": {},
    "slow_task": {},
    "send_message": { "rate_limit": { "max": 2, "window": 3 } },
    "delete_chat": { "action": "deny", "reason": "never from an agent" },
    "export_session": { "action": "require_approval" }
  },
  "resources": { "telegram://account/profile": {} },
  "prompts": { "summarize_chat": {} }
}"#;

/// The variable naming a PostgreSQL server for the suite (see the module docs).
pub const POSTGRES_VAR: &str = "AIRLOCK_TEST_POSTGRES";

/// The PostgreSQL server named by `AIRLOCK_TEST_POSTGRES`, if any (empty means none).
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_VAR)
        .ok()
        .filter(|url| !url.is_empty())
}

/// The database of one test: a SQLite file in the test's folder, or its own PostgreSQL database.
pub struct TestDatabase {
    pub url: String,
    /// The server URL and schema name to drop afterwards (PostgreSQL only).
    postgres: Option<(String, String)>,
    /// The folder of a SQLite file, kept as long as the database is (after its app stopped).
    folder: Option<TempDir>,
}

impl TestDatabase {
    pub async fn new(dir: &Path) -> Self {
        let Some(server) = postgres_server() else {
            return Self {
                url: format!("sqlite://{}", dir.join("airlock.db").display()),
                postgres: None,
                folder: None,
            };
        };
        Self::on_postgres(&server).await
    }

    /// A database another owner creates and drops.
    pub fn shared(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            postgres: None,
            folder: None,
        }
    }

    /// A fresh schema in the PostgreSQL database at `server`, and a URL that uses it.
    pub async fn on_postgres(server: &str) -> Self {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!("airlock_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::AnyConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_VAR}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test schema");
        let mut url = url::Url::parse(server).expect("a PostgreSQL URL");
        url.query_pairs_mut()
            .append_pair("options[search_path]", &name)
            .append_pair("application_name", &name);
        Self {
            url: url.to_string(),
            postgres: Some((server.to_owned(), name)),
            folder: None,
        }
    }

    /// Runs one SQL statement on the test's database, behind Airlock's back.
    pub async fn execute(&self, sql: &'static str, binds: &[&str]) -> u64 {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("open the test database");
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        query
            .execute(&mut conn)
            .await
            .expect("run SQL on the test database")
            .rows_affected()
    }

    /// One text from the test's database (the first row's first column; empty if none).
    pub async fn text(&self, sql: &'static str) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("open the test database");
        let row: Option<(String,)> = sqlx::query_as(sql)
            .fetch_optional(&mut conn)
            .await
            .expect("a text");
        row.map(|(text,)| text).unwrap_or_default()
    }

    /// One number from the test's database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("open the test database");
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(&mut conn)
            .await
            .expect("a count");
        n
    }

    /// Waits until the number `sql` counts is `wanted` (an event in the database, not a sleep).
    pub async fn wait_count(&self, what: &str, sql: &'static str, wanted: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = self.count(sql).await;
            if n == wanted {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {n}, never {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee: a short-lived one of its own does the work.
        let dropped = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::AnyConnection::connect(&server).await.ok()?;
                // The test's runtime is blocked in this drop, so a transaction the app had open
                // can never finish: end the app's connections (named after the schema) first.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{name}'; DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: a test schema was left behind on {POSTGRES_VAR}");
        }
    }
}

/// A running Airlock with one stdio upstream, `telegram`, served by the demo upstream.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub token: String,
    pub dir: TempDir,
    /// The config file the CLI commands read (the same database as the running app).
    pub config_path: PathBuf,
    pub store: airlock::store::Store,
    pub db: TestDatabase,
    pub policy_path: PathBuf,
    pub call_log: CallLog,
    /// The running app's tool pins.
    pub pins: std::sync::Arc<airlock::pinning::Pins>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Options for `TestApp::spawn_with`.
pub struct Setup {
    pub policy: String,
    /// The policy file's name, whose extension says its format.
    pub policy_file: &'static str,
    /// `new_tools` of the `telegram` upstream.
    pub new_tools: airlock::config::NewTools,
    /// Extra `[server]` and other top-level TOML appended to the generated config.
    pub extra_toml: String,
    /// More upstreams besides `telegram`.
    pub upstreams: Vec<UpstreamConfig>,
    pub isolation: Option<airlock::config::Isolation>,
    /// A database shared with other instances (its URL); by default each app gets its own.
    pub database: Option<String>,
    /// More `[database]` keys (the harness writes that section's `url`).
    pub database_toml: String,
}

impl Setup {
    /// Starts Airlock with this setup without waiting for it to be ready.
    pub async fn await_unready(self) -> TestApp {
        TestApp::start(self).await
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            policy: TEST_POLICY.to_owned(),
            policy_file: "telegram.json",
            new_tools: airlock::config::NewTools::Allow,
            extra_toml: String::new(),
            upstreams: Vec::new(),
            isolation: None,
            database: None,
            database_toml: String::new(),
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Setup::default()).await
    }

    pub async fn spawn_with_policy(policy: &str) -> Self {
        Self::spawn_with(Setup {
            policy: policy.to_owned(),
            ..Setup::default()
        })
        .await
    }

    pub async fn spawn_with(setup: Setup) -> Self {
        let app = Self::start(setup).await;
        app.wait_ready().await;
        app
    }

    /// Starts Airlock without waiting for `/readyz` (for setups that are meant not to be ready).
    async fn start(setup: Setup) -> Self {
        // Airlock's warnings show in a failing test's output (AIRLOCK_LOG sets the filter).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=error")),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let policy_path = dir.path().join(setup.policy_file);
        std::fs::write(&policy_path, &setup.policy).expect("write the policy");
        let call_log = CallLog(dir.path().join("telegram-calls.jsonl"));
        let db = match &setup.database {
            Some(url) => TestDatabase::shared(url),
            None => TestDatabase::new(dir.path()).await,
        };
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[database]\nurl = \"{}\"\n{}\n",
            setup.extra_toml, db.url, setup.database_toml
        );
        let config_path = dir.path().join("airlock.toml");
        std::fs::write(&config_path, &toml).expect("write the config");
        let mut config = Config::from_toml(&toml, Some(&config_path), std::iter::empty())
            .expect("a valid test config");
        config.upstreams.push(UpstreamConfig {
            name: "telegram".to_owned(),
            command: Some(vec![
                AIRLOCK.to_owned(),
                "demo-upstream".to_owned(),
                "--call-log".to_owned(),
                call_log.0.display().to_string(),
                "--descriptions".to_owned(),
                dir.path().join("descriptions.json").display().to_string(),
            ]),
            env: [("AIRLOCK_LOG".to_owned(), "warn".to_owned())].into(),
            url: None,
            headers: Default::default(),
            policy: Some(policy_path.clone()),
            isolation: setup.isolation,
            new_tools: setup.new_tools,
        });
        config.upstreams.extend(setup.upstreams);
        let app = Application::build(config).await.expect("airlock starts");
        let addr = app.local_addr();
        let token = airlock::secrets::generate_token().expect("randomness");
        app.state()
            .store
            .add_agent_token(
                "test-agent",
                &airlock::secrets::sha256_hex(token.as_bytes()),
            )
            .await
            .expect("store the agent token");
        let shutdown = app.shutdown_token();
        let store = app.state().store.clone();
        let pins = app.state().pins.clone();
        let server = tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            token,
            dir,
            config_path,
            store,
            db,
            policy_path,
            call_log,
            pins,
            shutdown,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The kinds of every audit event so far, oldest first (waits for the writer's batches).
    pub async fn audit_kinds(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.store
            .audit_events_after(0, 1000)
            .await
            .expect("the audit log")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// Waits until the audit log holds an event of `kind` (events of calls the policy decided
    /// are written in batches, a moment after the call); the first such event.
    pub async fn wait_audit_event(&self, kind: &str) -> airlock::domain::AuditEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let events = self
                .store
                .audit_events_after(0, 1000)
                .await
                .expect("the audit log");
            if let Some(event) = events.iter().find(|e| e.kind == kind) {
                return event.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} event in the audit log: {:?}",
                events.iter().map(|e| &e.kind).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes the demo upstream list `tool` with `description` from its next `tools/list` on
    /// (a rug pull).
    pub fn rewrite_description(&self, tool: &str, description: &str) {
        let path = self.dir.path().join("descriptions.json");
        std::fs::write(&path, serde_json::json!({ tool: description }).to_string())
            .expect("write the descriptions");
    }

    pub fn mcp_url(&self, upstream: &str) -> String {
        self.url(&format!("/mcp/{upstream}"))
    }

    /// Waits until `/readyz` says ready (the shared upstream child is initialized).
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "airlock never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn readyz(&self) -> (u16, Value) {
        let r = reqwest::get(self.url("/readyz"))
            .await
            .expect("GET /readyz");
        let status = r.status().as_u16();
        (status, r.json().await.expect("readyz is JSON"))
    }

    /// An rmcp client (handshake era) connected through Airlock to `telegram`.
    /// A new bearer token for `agent` (created on first use), as `airlock token create` makes.
    pub async fn token_for(&self, agent: &str) -> String {
        let token = airlock::secrets::generate_token().expect("randomness");
        self.store
            .add_agent_token(agent, &airlock::secrets::sha256_hex(token.as_bytes()))
            .await
            .expect("a token");
        token
    }

    pub async fn agent(&self) -> Agent {
        Agent::connect(&self.mcp_url("telegram"), &self.token).await
    }

    /// The `tools/call`s the demo upstream actually received.
    pub fn upstream_calls(&self) -> Vec<Value> {
        self.call_log.tool_calls()
    }

    /// A raw POST to `/mcp/{upstream}` with the agent's token and the given extra headers.
    pub async fn post(
        &self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(self.mcp_url(upstream))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST /mcp")
    }

    /// A POST to `telegram` within a 2025-06-18 session opened with `raw_session`.
    /// A 2026-07-28 request (no session) to `upstream` with the agent's `token`: its final
    /// message.
    pub async fn stateless(
        &self,
        upstream: &str,
        token: &str,
        method: &str,
        params: Value,
    ) -> Value {
        let mut request = reqwest::Client::new()
            .post(self.mcp_url(upstream))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = params.get("name").and_then(Value::as_str) {
            request = request.header("mcp-name", name);
        }
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": with_meta(params)});
        let response = tokio::time::timeout(WAIT, request.json(&body).send())
            .await
            .expect("an answer in time")
            .expect("POST");
        messages(response)
            .await
            .into_iter()
            .rfind(|m| m.get("method").is_none())
            .unwrap_or_else(|| panic!("{method} got no answer"))
    }

    pub async fn post_in_session(&self, session: &str, body: &str) -> reqwest::Response {
        self.post(
            "telegram",
            &[
                ("mcp-session-id", session),
                ("mcp-protocol-version", "2025-06-18"),
            ],
            body,
        )
        .await
    }

    /// Ends a session with DELETE.
    pub async fn delete_session(&self, session: &str) -> reqwest::Response {
        reqwest::Client::new()
            .delete(self.mcp_url("telegram"))
            .bearer_auth(&self.token)
            .header("mcp-session-id", session)
            .send()
            .await
            .expect("DELETE /mcp")
    }

    /// Opens a session by hand and returns its id.
    pub async fn raw_session(&self, version: &str) -> String {
        self.raw_session_on("telegram", version).await
    }

    /// Opens a session by hand on the given upstream and returns its id.
    pub async fn raw_session_on(&self, upstream: &str, version: &str) -> String {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"raw","version":"1"}}}}}}"#
        );
        let r = self.post(upstream, &[], &body).await;
        assert_eq!(r.status(), 200, "initialize succeeds");
        let id = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        let _ = r.text().await;
        id
    }

    /// A pending call stored behind the app's back (as another instance would), waiting 10 min;
    /// returns its id.
    pub async fn store_waiting_call(&self, agent: &str, tool: &str, args_json: &str) -> String {
        use airlock::domain::{AgentName, ArgsDigest, CallId, Timestamp, ToolName, UpstreamName};
        let id = CallId::generate();
        let now = Timestamp::now();
        let digest = ArgsDigest::parse(&airlock::secrets::sha256_hex(args_json.as_bytes()))
            .expect("a digest");
        self.store
            .insert_call(
                &airlock::store::NewCall {
                    id: &id,
                    upstream: &UpstreamName::new("telegram"),
                    tool: &ToolName::new(tool),
                    agent: &AgentName::new(agent),
                    agent_session: "0123456789abcdef",
                    instance_id: "elsewhere",
                    args_json,
                    args_shown: args_json,
                    args_sha256: &digest,
                    attach_key: &airlock::domain::AttachKey::new(
                        &AgentName::new(agent),
                        "elsewhere",
                        &UpstreamName::new("telegram"),
                        &ToolName::new(tool),
                        &digest,
                    ),
                    rule_json: "{}",
                    approvals_needed: 1,
                    created_at: now,
                    expires_at: now + time::Duration::minutes(10),
                },
                &[],
                None,
            )
            .await
            .expect("insert a call");
        id.into_string()
    }

    /// A new user with this role.
    pub async fn new_user(&self, email: &str, role: &str) -> airlock::store::User {
        let role = airlock::store::Role::parse(role).expect("a known role");
        self.store
            .add_user(email, role)
            .await
            .expect("add a user")
            .expect("a new user")
    }

    /// A reviewer with this role and a personal API token.
    pub async fn reviewer(&self, email: &str, role: &str) -> Reviewer {
        let user = self.new_user(email, role).await;
        let token = airlock::secrets::generate_token().expect("randomness");
        self.store
            .add_user_token(&user, &airlock::secrets::sha256_hex(token.as_bytes()))
            .await
            .expect("store the user's token");
        Reviewer {
            token,
            base: self.url(""),
            client: reqwest::Client::new(),
        }
    }

    /// A new user with this role and a dashboard password; returns the password.
    pub async fn user_with_password(&self, email: &str, role: &str) -> String {
        let user = self.new_user(email, role).await;
        let password = airlock::secrets::generate_password().expect("randomness");
        let hash = airlock::secrets::hash_password(&password).expect("a hash");
        self.store
            .set_password_hash(&user.id, &hash)
            .await
            .expect("store the password");
        password
    }

    /// A browser (HTTP level) signed in to the dashboard as a new user with this role.
    pub async fn signed_in(&self, email: &str, role: &str) -> dashboard::Dashboard {
        let password = self.user_with_password(email, role).await;
        let mut browser = dashboard::Dashboard::new(&self.url(""));
        let answer = browser.sign_in(email, &password).await;
        assert_eq!(answer.status, 303, "sign-in failed: {}", answer.body);
        browser
    }

    /// Runs `airlock ARGS --config <this app's config>` and returns its output.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(AIRLOCK)
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("AIRLOCK_LOG", "warn")
            .output()
            .await
            .expect("run the airlock CLI")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Stops Airlock gracefully; the database (and the folder of a SQLite file) outlives it, for
    /// a look at what it left.
    pub async fn stop(mut self) -> TestDatabase {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, &mut self.server).await;
        let placeholder = TestDatabase {
            url: String::new(),
            postgres: None,
            folder: None,
        };
        let mut db = std::mem::replace(&mut self.db, placeholder);
        let spare = tempfile::tempdir().expect("a temporary directory");
        db.folder = Some(std::mem::replace(&mut self.dir, spare));
        db
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A reviewer on the JSON API, with a personal API token.
pub struct Reviewer {
    pub token: String,
    base: String,
    client: reqwest::Client,
}

impl Reviewer {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("an API request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("API answers are JSON"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST /api/v1/calls/{id}/{action}` with `{"reason": reason}` (no body when `None`).
    pub async fn decide(&self, id: &str, action: &str, reason: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/api/v1/calls/{id}/{action}", self.base));
        if let Some(reason) = reason {
            request = request.json(&serde_json::json!({ "reason": reason }));
        }
        self.send(request).await
    }

    pub async fn approve(&self, id: &str) -> (u16, Value) {
        self.decide(id, "approve", Some("looks right")).await
    }

    pub async fn reject(&self, id: &str, reason: &str) -> (u16, Value) {
        self.decide(id, "reject", Some(reason)).await
    }

    pub async fn call(&self, id: &str) -> Value {
        let (status, call) = self.get(&format!("/api/v1/calls/{id}")).await;
        assert_eq!(status, 200, "{call}");
        call
    }

    pub async fn calls(&self, status: &str) -> Vec<Value> {
        let (code, page) = self
            .get(&format!("/api/v1/calls?status={status}&limit=500"))
            .await;
        assert_eq!(code, 200, "{page}");
        page["calls"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until at least `n` calls are pending and returns them, newest first.
    pub async fn wait_pending(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let pending = self.calls("pending").await;
            if pending.len() >= n {
                return pending;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} calls were parked in time",
                pending.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until one call is pending, and returns its id.
    pub async fn wait_one_pending(&self) -> String {
        self.wait_pending(1).await[0]["id"]
            .as_str()
            .expect("a call id")
            .to_owned()
    }

    /// Waits until `n` requests of the agent wait for call `id` on this instance, and returns
    /// the call.
    pub async fn wait_requests(&self, id: &str, n: usize) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let call = self.call(id).await;
            if call["requests_waiting"] == n {
                return call;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {n} requests waiting for {id}: {call:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until call `id` has `status`, and returns it.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let call = self.call(id).await;
            if call["status"] == status {
                return call;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call {id} never became {status}: {call:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `airlock ARGS` run in `dir` (where its `airlock.toml` is), quietly.
pub fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(AIRLOCK)
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_LOG", "warn")
        .output()
        .expect("run airlock")
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `airlock pending --json` in `dir`.
pub fn pending_in(dir: &Path) -> Vec<Value> {
    let listed = run_in(dir, &["pending", "--json"]);
    assert!(listed.status.success());
    serde_json::from_slice(&listed.stdout).expect("a JSON array")
}

/// `airlock serve` run as its own process in `dir` (for crashes and restarts), and the address it listens on.
pub struct Server {
    child: std::process::Child,
    pub addr: String,
    /// Its log (stderr), drained so it never blocks on a full pipe; all of it once it exits.
    log: std::thread::JoinHandle<Vec<String>>,
}

impl Server {
    pub fn start(dir: &Path) -> Self {
        Self::start_logging(dir, "info")
    }

    /// Started with `AIRLOCK_LOG=level`.
    pub fn start_logging(dir: &Path, level: &str) -> Self {
        let mut child = std::process::Command::new(AIRLOCK)
            .arg("serve")
            .current_dir(dir)
            .env("AIRLOCK_LOG", level)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start airlock serve");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve logs its address")
                .expect("a log line");
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Self { child, addr, log }
    }

    /// SIGKILL: no shutdown, no cleanup, as in a crash.
    pub fn kill_hard(mut self) {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit; returns how it exited and its whole log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = self.child.wait().expect("serve exits");
        let log = self.log.join().expect("log drained").join("\n");
        (status, log)
    }
}

/// The messages of an SSE or JSON response body, as JSON values.
pub async fn messages(response: reqwest::Response) -> Vec<Value> {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let text = response.text().await.expect("a body");
    if is_sse {
        // An event with empty data is a priming event (its id lets a cut stream resume).
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .filter(|data| !data.is_empty())
            .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
            .collect()
    } else if text.is_empty() {
        Vec::new()
    } else {
        vec![serde_json::from_str(&text).expect("a JSON body")]
    }
}

/// The demo upstream's call log, read back as JSON values.
pub struct CallLog(pub PathBuf);

impl CallLog {
    pub fn entries(&self) -> Vec<Value> {
        read_jsonl(&self.0)
    }

    /// The `tools/call` entries, in arrival order.
    pub fn tool_calls(&self) -> Vec<Value> {
        self.entries()
            .into_iter()
            .filter(|entry| entry.get("event").is_none())
            .collect()
    }

    pub fn calls_of(&self, tool: &str) -> usize {
        self.tool_calls()
            .iter()
            .filter(|c| c["tool"] == tool)
            .count()
    }

    /// Waits until an entry matching `wanted` has been written.
    pub async fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(entry) = self.entries().into_iter().rev().find(&wanted) {
                return entry;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the call log never showed {what}: {:#?}",
                self.entries()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    text.lines()
        .map(|line| serde_json::from_str(line).expect("every call log line is JSON"))
        .collect()
}

/// An MCP client handler that records every progress notification it receives.
#[derive(Clone)]
pub struct ProgressRecorder {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ProgressRecorder {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<ProgressNotificationParam>) {
        let (progress, received) = mpsc::unbounded_channel();
        (Self { progress }, received)
    }
}

impl ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

/// A connected rmcp client and the progress notifications it receives.
pub struct Agent {
    pub client: RunningService<RoleClient, ProgressRecorder>,
    pub progress: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

impl Agent {
    pub async fn connect(url: &str, token: &str) -> Self {
        let (handler, progress) = ProgressRecorder::new();
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token),
        );
        let client = tokio::time::timeout(WAIT, handler.serve(transport))
            .await
            .expect("the handshake in time")
            .expect("an MCP handshake through Airlock");
        Self { client, progress }
    }

    /// Calls a tool and returns its result; a protocol-level error fails the test.
    pub async fn call(&self, tool: &str, arguments: Value) -> CallToolResult {
        tokio::time::timeout(WAIT, self.client.call_tool(call_params(tool, arguments)))
            .await
            .unwrap_or_else(|_| panic!("{tool} did not answer in time"))
            .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
    }

    /// Calls a tool and returns the protocol-level outcome too (a JSON-RPC error is an `Err`).
    pub async fn client_call_raw(
        &self,
        tool: &str,
        arguments: Value,
    ) -> Result<CallToolResult, rmcp::ServiceError> {
        tokio::time::timeout(WAIT, self.client.call_tool(call_params(tool, arguments)))
            .await
            .unwrap_or_else(|_| panic!("{tool} did not answer in time"))
    }

    /// The names `tools/list` gives this agent.
    pub async fn list_tool_names(&self) -> Vec<String> {
        let tools = tokio::time::timeout(WAIT, self.client.list_all_tools())
            .await
            .expect("tools/list in time")
            .expect("tools/list through Airlock");
        tools
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect()
    }

    /// Starts a tool call in the background (it may wait for approval); await the handle for its
    /// result.
    pub fn spawn_call(
        &self,
        tool: &str,
        arguments: Value,
    ) -> tokio::task::JoinHandle<Result<CallToolResult, rmcp::ServiceError>> {
        let peer = self.client.peer().clone();
        let params = call_params(tool, arguments);
        tokio::spawn(async move { peer.call_tool(params).await })
    }

    pub async fn next_progress(&mut self) -> ProgressNotificationParam {
        tokio::time::timeout(WAIT, self.progress.recv())
            .await
            .expect("a progress notification in time")
            .expect("the client is still running")
    }

    pub async fn close(self) {
        let _ = self.client.cancel().await;
    }
}

/// The result of a call started with `Agent::spawn_call`; a protocol error or no answer in time
/// fails the test.
pub async fn result_of(
    call: tokio::task::JoinHandle<Result<CallToolResult, rmcp::ServiceError>>,
) -> CallToolResult {
    tokio::time::timeout(WAIT, call)
        .await
        .expect("the call answered in time")
        .expect("the call task ran")
        .expect("no protocol error")
}

pub fn call_params(tool: &str, arguments: Value) -> CallToolRequestParams {
    let Value::Object(arguments) = arguments else {
        panic!("tool arguments must be a JSON object, not {arguments}");
    };
    CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments)
}

/// An `[[upstream]]` reached over Streamable HTTP at `url`, under the policy file `policy`.
pub fn http_upstream(name: &str, url: String, policy: PathBuf) -> UpstreamConfig {
    UpstreamConfig {
        name: name.to_owned(),
        command: None,
        env: Default::default(),
        url: Some(url),
        headers: Default::default(),
        policy: Some(policy),
        isolation: None,
        new_tools: Default::default(),
    }
}

/// `params` with the `_meta` every 2026-07-28 request carries (the protocol version, and client
/// capabilities unless `params` already declares some).
pub fn with_meta(mut params: Value) -> Value {
    if !params.is_object() {
        params = serde_json::json!({});
    }
    let meta = &mut params["_meta"];
    if !meta.is_object() {
        *meta = serde_json::json!({});
    }
    meta["io.modelcontextprotocol/protocolVersion"] = serde_json::json!("2026-07-28");
    if !meta["io.modelcontextprotocol/clientCapabilities"].is_object() {
        meta["io.modelcontextprotocol/clientCapabilities"] = serde_json::json!({});
    }
    params
}

/// The first text content of a tool result.
pub fn text(result: &CallToolResult) -> &str {
    result
        .content
        .first()
        .and_then(|content| content.as_text())
        .map(|content| content.text.as_str())
        .expect("a text content block")
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// Whether an outside tool a test needs is here. Under `CI=true` a missing tool fails the test
/// (`.ci/run` installs it); on a laptop without it the test is skipped with a note.
pub fn outside_tool_available(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is missing: .ci/run should have installed it"
    );
    eprintln!("skipping: {what} is not installed here");
    false
}

/// Whether `program args...` runs and exits successfully.
pub fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `airlock demo` and reads what it prints up to the end of its banner.
pub fn start_demo(data_dir: &std::path::Path) -> (std::process::Child, Vec<String>) {
    let mut child = std::process::Command::new(AIRLOCK)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("AIRLOCK_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start airlock demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut banner = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("demo output");
        let done = line.contains("Ctrl-C stops");
        banner.push(line);
        if done {
            break;
        }
    }
    (child, banner)
}

/// The value after `label` on the banner line that starts with it.
pub fn banner_value<'a>(banner: &'a [String], label: &str) -> &'a str {
    banner
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("the demo prints {label}: {banner:#?}"))
}
