//! A third-party MCP server nobody here wrote, `@modelcontextprotocol/server-everything` (npm,
//! binary `mcp-server-everything`, run with `stdio`), works through Airlock as it works directly:
//! its tools, resources, prompts and completions, its progress notifications, and the requests it
//! makes of the client (sampling, form and URL elicitation, roots) all pass through intact, while
//! the policy still gates its tools.
//!
//! Each story runs against Airlock and against the same server spawned directly by the test, with
//! the same client (an rmcp client whose "user" answers every server request with a recognisable
//! canned answer), and compares what the two clients see. Both ways of running a stdio upstream
//! are covered: the default shared child and `isolation = "session"`. On a shared child, only the
//! session a server request was sent to may answer it.
//!
//! The server is found on `PATH` or at `AIRLOCK_TEST_EVERYTHING`. Without it the tests are skipped
//! with a note, except under `CI=true`, where `.ci/run` installs it and its absence is a failure.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use airlock::config::{Isolation, UpstreamConfig};
use common::{Setup, TestApp, WAIT, call_params, is_error};
use rmcp::model::{
    CallToolResult, ClientConfig, ElicitRequestParams, ElicitResult, ErrorData,
    GetPromptRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// What the agent may call on `everything`; anything else is denied, and `get-env` explicitly so:
/// it would show the agent the environment of the machine Airlock runs on.
const POLICY: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "echo": {},
    "get-sum": {},
    "get-annotated-message": {},
    "get-tiny-image": {},
    "trigger-long-running-operation": {},
    "trigger-sampling-request": {},
    "trigger-elicitation-request": {},
    "trigger-url-elicitation": {},
    "get-roots-list": {},
    "get-env": { "action": "deny", "reason": "it would reveal the gateway's environment" }
  },
  "resources": { "demo://resource/static/document/*": {} },
  "prompts": { "args-prompt": {}, "completable-prompt": {} }
}"#;

/// The canned answers of the test's "user", recognisable in the server's tool results.
const SAMPLED_TEXT: &str = "Canned completion from the airlock test client";
const SAMPLED_MODEL: &str = "airlock-test-model";
const ELICITED_NAME: &str = "Ada Lovelace (airlock test)";
const ROOT_URI: &str = "file:///srv/airlock-test-root";
const ROOT_NAME: &str = "airlock test root";

// ---------------------------------------------------------------------------------------------
// Finding the server

/// The `mcp-server-everything` binary, or `None` (with a note) when it is not installed here.
fn everything_binary() -> Option<PathBuf> {
    let found = match std::env::var_os("AIRLOCK_TEST_EVERYTHING") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("mcp-server-everything"))
                .find(|candidate| candidate.is_file())
        }),
    };
    if found.is_none() {
        let hint = "mcp-server-everything not found on PATH or at AIRLOCK_TEST_EVERYTHING \
                    (npm install -g @modelcontextprotocol/server-everything)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{hint}; .ci/run should have installed it"
        );
        eprintln!("note: skipping the server-everything tests: {hint}");
    }
    found
}

/// Airlock with one stdio upstream, `everything`, under `POLICY`.
struct Gateway {
    app: TestApp,
    /// Holds the policy file, which Airlock watches for edits while it runs.
    _policy_dir: tempfile::TempDir,
}

impl Gateway {
    async fn spawn(binary: &Path, isolation: Option<Isolation>) -> Self {
        let policy_dir = tempfile::tempdir().expect("a temporary directory");
        let policy = policy_dir.path().join("everything.json");
        std::fs::write(&policy, POLICY).expect("write the policy");
        let app = TestApp::spawn_with(Setup {
            upstreams: vec![UpstreamConfig {
                name: "everything".to_owned(),
                command: Some(vec![binary.display().to_string(), "stdio".to_owned()]),
                env: Default::default(),
                url: None,
                headers: Default::default(),
                policy: Some(policy),
                isolation,
                new_tools: Default::default(),
            }],
            ..Setup::default()
        })
        .await;
        Self {
            app,
            _policy_dir: policy_dir,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client and its user

/// The person behind the agent: answers sampling, elicitation and roots requests with canned
/// answers, and remembers every request and progress notification the server sent.
#[derive(Clone)]
struct User {
    asked: Arc<Mutex<Vec<Value>>>,
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
    /// When set, the user answers an elicitation only once a permit is added here.
    hesitate: Option<Arc<Semaphore>>,
}

/// A connected client, its user's memory of what the server asked, and its progress.
struct Agent {
    client: RunningService<RoleClient, User>,
    asked: Arc<Mutex<Vec<Value>>>,
    progress: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

fn user(
    hesitate: Option<Arc<Semaphore>>,
) -> (
    User,
    Arc<Mutex<Vec<Value>>>,
    mpsc::UnboundedReceiver<ProgressNotificationParam>,
) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let (progress, received) = mpsc::unbounded_channel();
    let user = User {
        asked: asked.clone(),
        progress,
        hesitate,
    };
    (user, asked, received)
}

impl User {
    fn remember(&self, method: &str, params: Value) {
        self.asked
            .lock()
            .expect("the user's memory")
            .push(json!({"method": method, "params": params}));
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a well-formed rmcp value")
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

// rmcp 3.11 marks sampling and roots `#[deprecated]` (SEP-2577 deprecates them in 2026-07-28), but
// handshake-era servers such as server-everything still use them, and Airlock must pass them on.
#[allow(deprecated)]
impl ClientHandler for User {
    fn get_info(&self) -> ClientConfig {
        // Everything a full-featured handshake-era client declares.
        from_json(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {
                "roots": {"listChanged": true},
                "sampling": {},
                "elicitation": {"form": {}, "url": {}},
            },
            "clientInfo": {"name": "airlock-everything-test", "version": "1.0.0"},
        }))
    }

    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        self.remember("sampling/createMessage", to_json(&params));
        Ok(from_json(json!({
            "role": "assistant",
            "content": {"type": "text", "text": SAMPLED_TEXT},
            "model": SAMPLED_MODEL,
            "stopReason": "endTurn",
        })))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, ErrorData> {
        self.remember("roots/list", json!({}));
        Ok(from_json(
            json!({"roots": [{"uri": ROOT_URI, "name": ROOT_NAME}]}),
        ))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.remember("elicitation/create", to_json(&request));
        if let Some(hesitate) = &self.hesitate {
            hesitate
                .acquire()
                .await
                .expect("the test keeps the semaphore open")
                .forget();
        }
        let answer = match request {
            ElicitRequestParams::FormElicitationParams { .. } => json!({
                "action": "accept",
                "content": {"name": ELICITED_NAME, "check": true, "integer": 7},
            }),
            _ => json!({"action": "accept"}),
        };
        Ok(from_json(answer))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

impl Agent {
    /// Connects through Airlock to its `everything` upstream.
    async fn via_airlock(app: &TestApp) -> Self {
        Self::via_airlock_with(app, None).await
    }

    /// Connects through Airlock; the user answers elicitations only when `hesitate` lets them.
    async fn via_airlock_with(app: &TestApp, hesitate: Option<Arc<Semaphore>>) -> Self {
        let (user, asked, progress) = user(hesitate);
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(app.mcp_url("everything"))
                .auth_header(&app.token),
        );
        let client = tokio::time::timeout(WAIT, user.serve(transport))
            .await
            .expect("the handshake through airlock in time")
            .expect("an MCP handshake through airlock");
        Self {
            client,
            asked,
            progress,
        }
    }

    /// Spawns the server as the test's own stdio child, with no Airlock in between.
    async fn direct(binary: &Path) -> Self {
        let (user, asked, progress) = user(None);
        let mut command = tokio::process::Command::new(binary);
        command.arg("stdio");
        let transport = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mcp-server-everything")
            .0;
        let client = tokio::time::timeout(WAIT, user.serve(transport))
            .await
            .expect("the direct handshake in time")
            .expect("a direct MCP handshake");
        Self {
            client,
            asked,
            progress,
        }
    }

    async fn call(&self, tool: &str, arguments: Value) -> CallToolResult {
        tokio::time::timeout(WAIT, self.client.call_tool(call_params(tool, arguments)))
            .await
            .unwrap_or_else(|_| panic!("{tool} did not answer in time"))
            .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
    }

    /// The requests the server made of this client's user, in order.
    fn asked(&self) -> Vec<Value> {
        self.asked.lock().expect("the user's memory").clone()
    }

    async fn next_progress(&mut self) -> ProgressNotificationParam {
        tokio::time::timeout(WAIT, self.progress.recv())
            .await
            .expect("a progress notification in time")
            .expect("the client is still running")
    }

    async fn close(self) {
        let _ = self.client.cancel().await;
    }
}

/// All text contents of a tool result, joined.
fn texts(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Stories

/// The catalogue and every deterministic answer are the same through Airlock as directly; a tool
/// the policy denies never runs.
async fn looks_the_same_as_a_direct_connection(binary: &Path, isolation: Option<Isolation>) {
    let gateway = Gateway::spawn(binary, isolation).await;
    let via = Agent::via_airlock(&gateway.app).await;
    let direct = Agent::direct(binary).await;

    let via_info = via
        .client
        .peer_info()
        .expect("initialize result via airlock");
    let direct_info = direct
        .client
        .peer_info()
        .expect("initialize result directly");
    assert_eq!(
        via_info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("mcp-servers/everything")
    );
    assert_eq!(
        to_json(&via_info.server_info),
        to_json(&direct_info.server_info)
    );
    assert_eq!(
        to_json(&via_info.capabilities),
        to_json(&direct_info.capabilities)
    );
    assert_eq!(via_info.instructions, direct_info.instructions);

    // The tools a full-featured client is offered, including those the server registers only
    // when the client declares sampling, elicitation (form and URL) and roots.
    let tools = via
        .client
        .list_all_tools()
        .await
        .expect("tools/list via airlock");
    let direct_tools = direct
        .client
        .list_all_tools()
        .await
        .expect("tools/list directly");
    let names = |tools: &[rmcp::model::Tool]| -> Vec<String> {
        tools.iter().map(|t| t.name.to_string()).collect()
    };
    assert_eq!(
        names(&tools),
        names(&direct_tools),
        "the same tools, in order"
    );
    assert_eq!(
        to_json(&tools),
        to_json(&direct_tools),
        "the same tool definitions"
    );
    let names = names(&tools);
    for wanted in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "trigger-url-elicitation",
        "get-roots-list",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }

    let resources = via
        .client
        .list_all_resources()
        .await
        .expect("resources/list");
    assert_eq!(
        to_json(&resources),
        to_json(
            &direct
                .client
                .list_all_resources()
                .await
                .expect("resources/list directly")
        )
    );
    let doc = resources
        .iter()
        .find(|r| r.uri.starts_with("demo://resource/static/document/"))
        .expect("a static document resource")
        .uri
        .clone();
    let read = |uri: String| ReadResourceRequestParams::new(uri);
    assert_eq!(
        to_json(
            &via.client
                .read_resource(read(doc.clone()))
                .await
                .expect("resources/read")
        ),
        to_json(
            &direct
                .client
                .read_resource(read(doc))
                .await
                .expect("resources/read directly")
        )
    );
    assert_eq!(
        to_json(
            &via.client
                .list_all_resource_templates()
                .await
                .expect("templates/list")
        ),
        to_json(
            &direct
                .client
                .list_all_resource_templates()
                .await
                .expect("templates directly")
        )
    );

    let prompts = via.client.list_all_prompts().await.expect("prompts/list");
    assert_eq!(
        to_json(&prompts),
        to_json(
            &direct
                .client
                .list_all_prompts()
                .await
                .expect("prompts/list directly")
        )
    );
    let mut args = serde_json::Map::new();
    args.insert("city".to_owned(), json!("Zürich"));
    args.insert("state".to_owned(), json!("ZH"));
    let get = || GetPromptRequestParams::new("args-prompt").with_arguments(args.clone());
    let prompt = via.client.get_prompt(get()).await.expect("prompts/get");
    assert_eq!(
        to_json(&prompt),
        to_json(
            &direct
                .client
                .get_prompt(get())
                .await
                .expect("prompts/get directly")
        )
    );
    assert!(
        to_json(&prompt)
            .to_string()
            .contains("What's weather in Zürich, ZH?")
    );
    let departments = via
        .client
        .complete_prompt_simple("completable-prompt", "department", "S")
        .await
        .expect("completion/complete");
    let departments_direct = direct
        .client
        .complete_prompt_simple("completable-prompt", "department", "S")
        .await
        .expect("completion/complete directly");
    assert_eq!(departments, departments_direct);
    assert_eq!(departments, ["Sales", "Support"]);

    for (tool, arguments) in [
        (
            "echo",
            json!({"message": "hello through the airlock ✈ \u{1F680}"}),
        ),
        ("get-sum", json!({"a": 0.1, "b": 12_345_678_901_i64})),
        (
            "get-annotated-message",
            json!({"messageType": "error", "includeImage": true}),
        ),
        ("get-tiny-image", json!({})),
    ] {
        let through = via.call(tool, arguments.clone()).await;
        assert!(!is_error(&through), "{tool}: {through:?}");
        assert_eq!(
            to_json(&through),
            to_json(&direct.call(tool, arguments).await),
            "{tool} answers the same through airlock"
        );
    }
    assert_eq!(
        texts(&via.call("echo", json!({"message": "ping"})).await),
        "Echo: ping"
    );

    // The gate applies to this server's tools like any other's.
    let denied = via.call("get-env", json!({})).await;
    assert!(is_error(&denied));
    assert_eq!(
        texts(&denied),
        "Denied by policy (everything.get-env): it would reveal the gateway's environment"
    );
    let unlisted = via.call("toggle-simulated-logging", json!({})).await;
    assert!(is_error(&unlisted));
    assert!(
        texts(&unlisted).starts_with("Denied by policy (everything.toggle-simulated-logging)"),
        "{}",
        texts(&unlisted)
    );
    // Not denied by the server: directly, the same tool runs.
    assert!(!is_error(&direct.call("get-env", json!({})).await));

    via.close().await;
    direct.close().await;
}

/// A long-running call's progress arrives in order, and each request the server makes of the
/// client reaches the user through Airlock, whose answer reaches the server: the tool result
/// shows the canned answer, exactly as it does directly.
async fn progress_and_server_requests_pass_through(binary: &Path, isolation: Option<Isolation>) {
    let gateway = Gateway::spawn(binary, isolation).await;
    let mut via = Agent::via_airlock(&gateway.app).await;
    let mut direct = Agent::direct(binary).await;

    // Progress: rmcp's call_tool attaches a progress token; the server reports each step.
    for agent in [&mut via, &mut direct] {
        let call = tokio::spawn({
            let peer = agent.client.peer().clone();
            async move {
                peer.call_tool(call_params(
                    "trigger-long-running-operation",
                    json!({"duration": 1, "steps": 4}),
                ))
                .await
            }
        });
        let mut steps = Vec::new();
        for _ in 0..4 {
            let p = agent.next_progress().await;
            steps.push((p.progress, p.total));
        }
        assert_eq!(
            steps,
            [
                (1.0, Some(4.0)),
                (2.0, Some(4.0)),
                (3.0, Some(4.0)),
                (4.0, Some(4.0))
            ]
        );
        let result = tokio::time::timeout(WAIT, call)
            .await
            .expect("the long-running operation ends")
            .expect("the call task")
            .expect("a result");
        assert_eq!(
            texts(&result),
            "Long running operation completed. Duration: 1 seconds, Steps: 4."
        );
    }

    // Sampling.
    let sampling = json!({"prompt": "Name a gateway", "maxTokens": 32});
    let sampled = via.call("trigger-sampling-request", sampling.clone()).await;
    assert!(!is_error(&sampled), "{sampled:?}");
    assert!(
        texts(&sampled).contains(SAMPLED_TEXT),
        "{}",
        texts(&sampled)
    );
    assert!(
        texts(&sampled).contains(SAMPLED_MODEL),
        "{}",
        texts(&sampled)
    );
    assert_eq!(
        to_json(&sampled),
        to_json(&direct.call("trigger-sampling-request", sampling).await)
    );

    // Form elicitation, with the server's whole schema (titled enums, formats, defaults).
    let elicited = via.call("trigger-elicitation-request", json!({})).await;
    assert!(!is_error(&elicited), "{elicited:?}");
    assert!(
        texts(&elicited).contains(&format!("- Name: {ELICITED_NAME}")),
        "{}",
        texts(&elicited)
    );
    assert_eq!(
        to_json(&elicited),
        to_json(&direct.call("trigger-elicitation-request", json!({})).await)
    );

    // URL elicitation (request path).
    let url_args = json!({
        "url": "https://example.org/airlock-consent",
        "message": "Open this to consent",
        "elicitationId": "airlock-test-elicitation-1",
    });
    let consented = via.call("trigger-url-elicitation", url_args.clone()).await;
    assert!(!is_error(&consented), "{consented:?}");
    assert!(
        texts(&consented).contains("User completed the URL elicitation flow"),
        "{}",
        texts(&consented)
    );
    assert_eq!(
        to_json(&consented),
        to_json(&direct.call("trigger-url-elicitation", url_args).await)
    );

    // Roots. The server asks for them right after initialization (a shared child has no client
    // yet then) and again when the tool finds none; either way the user's roots arrive.
    let roots = via.call("get-roots-list", json!({})).await;
    assert!(!is_error(&roots), "{roots:?}");
    assert!(texts(&roots).contains(ROOT_URI), "{}", texts(&roots));
    assert!(texts(&roots).contains(ROOT_NAME), "{}", texts(&roots));
    assert_eq!(
        to_json(&roots),
        to_json(&direct.call("get-roots-list", json!({})).await)
    );

    // The requests themselves arrived unchanged: the user was asked the same things either way.
    let sans_roots = |asked: Vec<Value>| -> Vec<Value> {
        asked
            .into_iter()
            .filter(|a| a["method"] != "roots/list")
            .collect()
    };
    let via_asked = via.asked();
    let direct_asked = direct.asked();
    assert!(via_asked.iter().any(|a| a["method"] == "roots/list"));
    assert_eq!(sans_roots(via_asked), sans_roots(direct_asked));

    via.close().await;
    direct.close().await;
}

#[tokio::test]
async fn a_shared_child_looks_the_same_as_a_direct_connection() {
    let Some(binary) = everything_binary() else {
        return;
    };
    looks_the_same_as_a_direct_connection(&binary, None).await;
}

#[tokio::test]
async fn a_per_session_child_looks_the_same_as_a_direct_connection() {
    let Some(binary) = everything_binary() else {
        return;
    };
    looks_the_same_as_a_direct_connection(&binary, Some(Isolation::Session)).await;
}

#[tokio::test]
async fn progress_and_server_requests_pass_through_a_shared_child() {
    let Some(binary) = everything_binary() else {
        return;
    };
    progress_and_server_requests_pass_through(&binary, None).await;
}

#[tokio::test]
async fn progress_and_server_requests_pass_through_a_per_session_child() {
    let Some(binary) = everything_binary() else {
        return;
    };
    progress_and_server_requests_pass_through(&binary, Some(Isolation::Session)).await;
}

/// On a shared child, server requests carry small sequential ids. Another agent on the same
/// upstream who guesses them must not be able to answer in this agent's user's place.
#[tokio::test]
async fn on_a_shared_child_only_the_asked_session_can_answer_a_server_request() {
    let Some(binary) = everything_binary() else {
        return;
    };
    let gateway = Gateway::spawn(&binary, None).await;
    let app = &gateway.app;
    let hesitate = Arc::new(Semaphore::new(0));
    let alice = Agent::via_airlock_with(app, Some(hesitate.clone())).await;
    let mallory = app.raw_session_on("everything", "2025-11-25").await;

    let call = tokio::spawn({
        let peer = alice.client.peer().clone();
        async move {
            peer.call_tool(call_params("trigger-elicitation-request", json!({})))
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while !alice
        .asked()
        .iter()
        .any(|a| a["method"] == "elicitation/create")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice's user was never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // While alice's user thinks, mallory answers every id the server is likely to have used.
    for id in 0..32 {
        let forged = json!({"jsonrpc": "2.0", "id": id, "result": {
            "action": "accept", "content": {"name": "Mallory", "check": true},
        }});
        let r = app
            .post(
                "everything",
                &[
                    ("mcp-session-id", mallory.as_str()),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
                &forged.to_string(),
            )
            .await;
        assert_eq!(r.status(), 202, "an answer is accepted, whoever it is for");
    }
    hesitate.add_permits(1);

    let result = tokio::time::timeout(WAIT, call)
        .await
        .expect("the elicitation tool ends")
        .expect("the call task")
        .expect("a result");
    assert!(!is_error(&result), "{result:?}");
    let shown = texts(&result);
    assert!(
        shown.contains(&format!("- Name: {ELICITED_NAME}")),
        "{shown}"
    );
    assert!(!shown.contains("Mallory"), "{shown}");
    alice.close().await;
}

#[tokio::test]
async fn an_upstreams_own_tasks_pass_through_and_only_the_token_that_made_one_reaches_it() {
    let Some(binary) = everything_binary() else {
        return;
    };
    let policy_dir = tempfile::tempdir().expect("a temporary directory");
    let policy = policy_dir.path().join("everything.json");
    std::fs::write(
        &policy,
        r#"{"version": "1", "default": "deny", "tools": {"simulate-research-query": {}}}"#,
    )
    .expect("write the policy");
    let app = TestApp::spawn_with(Setup {
        upstreams: vec![UpstreamConfig {
            name: "everything".to_owned(),
            command: Some(vec![binary.display().to_string(), "stdio".to_owned()]),
            env: Default::default(),
            url: None,
            headers: Default::default(),
            policy: Some(policy),
            isolation: None,
            new_tools: Default::default(),
        }],
        ..Setup::default()
    })
    .await;
    let mut maker = crate::tasks::TaskSession::open_on(&app, "everything", &app.token).await;
    let created = maker
        .request(
            "tools/call",
            json!({"name": "simulate-research-query", "arguments": {"topic": "tides"},
                   "task": {"ttl": 60000}}),
        )
        .await;
    let task_id = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("the upstream's own task: {created:#}"))
        .to_owned();
    assert!(
        !task_id.starts_with("task_"),
        "the upstream's, passed through: {task_id}"
    );

    let polled = maker.request("tasks/get", json!({"taskId": task_id})).await;
    assert_eq!(polled["result"]["taskId"], task_id.as_str(), "{polled:#}");
    let listed = maker.request("tasks/list", json!({})).await;
    let other_token = app.token_for("other-agent").await;
    let mut other = crate::tasks::TaskSession::open_on(&app, "everything", &other_token).await;
    let peek = other.request("tasks/get", json!({"taskId": task_id})).await;
    let theirs = other.request("tasks/list", json!({})).await;

    assert_eq!(peek["error"]["code"], -32602, "{peek:#}");
    let ids = |list: &Value| -> Vec<String> {
        list["result"]["tasks"]
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|t| t["taskId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(ids(&listed).contains(&task_id), "{listed:#}");
    assert!(!ids(&theirs).contains(&task_id), "{theirs:#}");
}
