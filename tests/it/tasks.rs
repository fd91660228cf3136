//! MCP tasks for parked calls, driven with a raw HTTP client (the official TypeScript SDK's own
//! 2025-11-25 task support is in `agent_sdks`; no official SDK release speaks the 2026-07-28
//! tasks extension yet): the capability and the tools that can run as tasks, a task for a parked
//! call, polled through its approval, its result taken once; `tasks/result` waiting for the
//! decision; `tasks/cancel`; a rejection; a task another agent cannot see; and the 2026-07-28
//! extension, with its result inline in `tasks/get`.

use crate::common;

use common::{TestApp, WAIT};
use serde_json::{Value, json};

/// A 2025-11-25 session opened by hand with `token`.
pub struct TaskSession {
    url: String,
    token: String,
    pub id: String,
    /// What `initialize` answered.
    pub init: Value,
    next: u64,
}

impl TaskSession {
    pub async fn open(app: &TestApp, token: &str) -> Self {
        Self::open_on(app, "telegram", token).await
    }

    /// A session on the upstream `upstream`.
    pub async fn open_on(app: &TestApp, upstream: &str, token: &str) -> Self {
        let url = app.mcp_url(upstream);
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "raw-task-client", "version": "1"}}}),
            )
            .send()
            .await
            .expect("initialize");
        assert_eq!(response.status(), 200);
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        let init = common::messages(response).await.remove(0);
        Self {
            url,
            token: token.to_owned(),
            id,
            init,
            next: 1,
        }
    }

    /// `export_session` with `arguments`, asked for as a task; the task's id.
    pub async fn task_of_call(&mut self, arguments: Value) -> String {
        let created = self
            .request(
                "tools/call",
                json!({"name": "export_session", "arguments": arguments, "task": {}}),
            )
            .await;
        task_of(&created)
    }

    /// A request in this session (`method` POST or GET), as a streaming client sends it.
    pub fn http(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, &self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-11-25")
    }

    /// POSTs the request `msg` and reads its stream's first event (a priming event), then drops
    /// the connection as a client cut off would; the event's id and text.
    pub async fn cut_after_priming(&self, msg: &Value) -> (String, String) {
        let mut cut = self
            .http(reqwest::Method::POST)
            .json(msg)
            .send()
            .await
            .expect("POST");
        let head = first_event(&mut cut).await;
        (event_id_of(&head), head)
    }

    /// Resumes the stream after `last_event_id` (`GET` with `Last-Event-ID`) and reads it to
    /// its end.
    pub async fn resumed_body(&self, last_event_id: &str) -> String {
        let resumed = self
            .http(reqwest::Method::GET)
            .header("last-event-id", last_event_id)
            .send()
            .await
            .expect("GET");
        assert_eq!(resumed.status(), 200);
        tokio::time::timeout(WAIT, resumed.text())
            .await
            .expect("the rest of the stream in time")
            .expect("a body")
    }

    /// Sends a request and returns its final answer.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        let response =
            tokio::time::timeout(WAIT, self.http(reqwest::Method::POST).json(&body).send())
                .await
                .expect("an answer in time")
                .expect("POST");
        let messages = common::messages(response).await;
        messages
            .into_iter()
            .rfind(|m| m.get("method").is_none())
            .unwrap_or_else(|| panic!("{method} got no answer"))
    }
}

/// Reads `response` up to its first SSE event and returns that event's text (a priming event:
/// `id`, `retry`, empty data).
pub async fn first_event(response: &mut reqwest::Response) -> String {
    let mut head = String::new();
    while !head.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("the first event in time")
            .expect("a chunk")
            .expect("the stream is open");
        head.push_str(&String::from_utf8_lossy(&chunk));
    }
    head
}

/// The `id:` of an SSE event's text.
pub fn event_id_of(event: &str) -> String {
    event
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("an event with an id: {event:?}"))
        .to_owned()
}

/// The last JSON-RPC message of an SSE body.
pub fn last_message(body: &str) -> Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str(d).ok())
        .next_back()
        .unwrap_or_else(|| panic!("a message: {body}"))
}

/// A `tasks/result` for `task` sent in a session of its own with the agent's token; await the
/// handle for its answer.
async fn waiting_for_result(app: &TestApp, task: String) -> tokio::task::JoinHandle<Value> {
    let mut waiter = TaskSession::open(app, &app.token).await;
    tokio::spawn(async move {
        waiter
            .request("tasks/result", json!({"taskId": task}))
            .await
    })
}

fn task_of(created: &Value) -> String {
    created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a task: {created:#}"))
        .to_owned()
}

#[tokio::test]
async fn a_parked_call_asked_for_as_a_task_is_polled_through_its_approval_and_its_result_taken_once()
 {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agent = TaskSession::open(&app, &app.token).await;
    let tasks = &agent.init["result"]["capabilities"]["tasks"];
    assert_eq!(tasks["requests"]["tools"]["call"], json!({}), "{tasks}");
    assert!(
        tasks["list"].is_object() && tasks["cancel"].is_object(),
        "{tasks}"
    );
    let listed = agent.request("tools/list", json!({})).await;
    let support = |name: &str| {
        listed["result"]["tools"]
            .as_array()
            .and_then(|tools| tools.iter().find(|t| t["name"] == name))
            .map(|t| t.pointer("/execution/taskSupport").cloned())
            .unwrap_or_else(|| panic!("{name} is listed: {listed:#}"))
    };
    assert_eq!(support("export_session"), Some(json!("optional")));
    assert_eq!(support("get_chats"), None, "only tools that can park");

    let created = agent
        .request(
            "tools/call",
            json!({"name": "export_session", "arguments": {}, "task": {"ttl": 60000}}),
        )
        .await;

    let task = &created["result"]["task"];
    assert_eq!(task["status"], "working", "{created:#}");
    assert!(
        task["statusMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("Waiting for approval of telegram.export_session")),
        "{created:#}"
    );
    assert!(
        task["pollInterval"].is_u64() && task["ttl"].is_i64(),
        "{task}"
    );
    let task_id = task_of(&created);
    assert!(task_id.starts_with("task_"), "{task_id}");
    let id = alice.wait_one_pending().await;
    let polled = agent.request("tasks/get", json!({"taskId": task_id})).await;
    assert_eq!(polled["result"]["status"], "working", "{polled:#}");
    let listed = agent.request("tasks/list", json!({})).await;
    assert_eq!(
        listed["result"]["tasks"][0]["taskId"],
        task_id.as_str(),
        "{listed:#}"
    );

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.call_log.calls_of("export_session"),
        0,
        "it runs when the agent asks for it"
    );

    let polled = agent.request("tasks/get", json!({"taskId": task_id})).await;
    assert_eq!(polled["result"]["status"], "completed", "{polled:#}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    let result = agent
        .request("tasks/result", json!({"taskId": task_id}))
        .await;
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{result:#}"
    );
    assert_eq!(
        result["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        task_id.as_str()
    );
    let again = agent
        .request("tasks/result", json!({"taskId": task_id}))
        .await;
    assert_eq!(again["error"]["code"], -32602, "delivered once: {again:#}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    alice.wait_status(&id, "completed").await;
}

#[tokio::test]
async fn another_agent_cannot_see_or_cancel_a_task() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agent = TaskSession::open(&app, &app.token).await;
    let task_id = agent.task_of_call(json!({})).await;
    let mut other = TaskSession::open(&app, &app.token_for("other-agent").await).await;

    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let answer = other.request(method, json!({"taskId": task_id})).await;
        assert_eq!(answer["error"]["code"], -32602, "{method}: {answer:#}");
        assert_eq!(
            answer["error"]["message"],
            "Failed to retrieve task: Task not found"
        );
    }
    let listed = other.request("tasks/list", json!({})).await;
    assert_eq!(listed["result"]["tasks"], json!([]), "{listed:#}");
    let forged = agent
        .request(
            "tasks/get",
            json!({"taskId": format!("task_{}", "0".repeat(64))}),
        )
        .await;
    assert_eq!(forged["error"]["code"], -32602);
    let id = alice.wait_one_pending().await;
    assert_eq!(alice.call(&id).await["status"], "pending", "untouched");
}

#[tokio::test]
async fn tasks_result_waits_for_the_decision_and_tasks_cancel_withdraws_a_waiting_call() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agent = TaskSession::open(&app, &app.token).await;
    let waited = agent.task_of_call(json!({"account": "a"})).await;
    // Another session of the same token: a task belongs to the token, not to a session.
    let result = waiting_for_result(&app, waited).await;
    let id = alice.wait_one_pending().await;
    alice.wait_requests(&id, 1).await;
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    let result = result.await.expect("the waiting request");
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{result:#}"
    );

    let cancelled = agent.task_of_call(json!({"account": "b"})).await;
    let answer = agent
        .request("tasks/cancel", json!({"taskId": cancelled}))
        .await;
    assert_eq!(answer["result"]["status"], "cancelled", "{answer:#}");
    let withdrawn = alice.calls("withdrawn").await;
    assert_eq!(withdrawn.len(), 1, "{withdrawn:#?}");
    let (status, _) = alice
        .approve(withdrawn[0]["id"].as_str().expect("an id"))
        .await;
    assert_eq!(status, 409, "a cancelled call can no longer be approved");
    let again = agent
        .request("tasks/cancel", json!({"taskId": cancelled}))
        .await;
    assert_eq!(again["error"]["code"], -32602, "{again:#}");
    let told = agent
        .request("tasks/result", json!({"taskId": cancelled}))
        .await;
    assert_eq!(told["result"]["isError"], true, "{told:#}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
}

#[tokio::test]
async fn a_rejected_task_fails_with_the_reviewers_reason_and_never_runs() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agent = TaskSession::open(&app, &app.token).await;
    let task_id = agent.task_of_call(json!({})).await;
    let id = alice.wait_one_pending().await;

    let (status, _) = alice.reject(&id, "not for a bot").await;
    assert_eq!(status, 200);

    let polled = agent.request("tasks/get", json!({"taskId": task_id})).await;
    assert_eq!(polled["result"]["status"], "failed", "{polled:#}");
    assert_eq!(
        polled["result"]["statusMessage"],
        "Rejected by alice@example.org: not for a bot"
    );
    let result = agent
        .request("tasks/result", json!({"taskId": task_id}))
        .await;
    assert_eq!(result["result"]["isError"], true);
    assert_eq!(
        result["result"]["content"][0]["text"],
        "Rejected by alice@example.org: not for a bot"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
}

#[tokio::test]
async fn an_older_revision_is_offered_no_tasks_and_its_calls_hold_as_before() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let listed = common::messages(
        app.post_in_session(
            &session,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await,
    )
    .await;
    let tools = listed[0]["result"]["tools"].as_array().expect("tools");
    assert!(
        tools.iter().all(|t| t.get("execution").is_none()),
        "{tools:#?}"
    );
    let answer = common::messages(
        app.post_in_session(
            &session,
            r#"{"jsonrpc":"2.0","id":2,"method":"tasks/list","params":{}}"#,
        )
        .await,
    )
    .await;
    assert!(
        answer[0]["error"].is_object(),
        "passed to the upstream, which has no tasks: {answer:#?}"
    );
}

/// `tools/call` params declaring the 2026-07-28 tasks extension.
fn with_tasks_extension(arguments: Value) -> Value {
    json!({"name": "export_session", "arguments": arguments, "_meta": {
        "io.modelcontextprotocol/clientCapabilities": {
            "extensions": {"io.modelcontextprotocol/tasks": {}}}}})
}

#[tokio::test]
async fn a_2026_client_declaring_the_tasks_extension_gets_a_task_and_its_result_inline() {
    let app = TestApp::spawn_with(common::Setup {
        extra_toml: "[approval]\nhold = 1\n".to_owned(),
        ..common::Setup::default()
    })
    .await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let discovered = app
        .stateless("telegram", &app.token, "server/discover", json!({}))
        .await;
    assert_eq!(
        discovered["result"]["capabilities"]["extensions"]["io.modelcontextprotocol/tasks"],
        json!({}),
        "{discovered:#}"
    );

    let created = app
        .stateless(
            "telegram",
            &app.token,
            "tools/call",
            with_tasks_extension(json!({})),
        )
        .await;

    let task = &created["result"];
    assert_eq!(task["resultType"], "task", "{created:#}");
    assert_eq!(task["status"], "working");
    assert!(
        task["ttlMs"].is_i64() && task["pollIntervalMs"].is_u64(),
        "{task}"
    );
    let task_id = task["taskId"].as_str().expect("a task id").to_owned();
    let id = alice.wait_one_pending().await;
    let poll = |token| app.stateless("telegram", token, "tasks/get", json!({"taskId": task_id}));
    let polled = poll(&app.token).await;
    assert_eq!(polled["result"]["resultType"], "complete", "{polled:#}");
    assert_eq!(polled["result"]["status"], "working");
    let other = app.token_for("other-agent").await;
    let peek = poll(&other).await;
    assert_eq!(peek["error"]["code"], -32602, "{peek:#}");

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    let done = poll(&app.token).await;
    assert_eq!(done["result"]["status"], "completed", "{done:#}");
    assert!(
        done["result"]["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{done:#}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    let again = poll(&app.token).await;
    assert_eq!(again["error"]["code"], -32602, "delivered once: {again:#}");

    let refused = app
        .stateless(
            "telegram",
            &app.token,
            "tools/call",
            with_tasks_extension(json!({"account": "other"})),
        )
        .await;
    let refused_id = refused["result"]["taskId"]
        .as_str()
        .expect("a task")
        .to_owned();
    let pending = alice.wait_pending(1).await;
    let (status, _) = alice
        .reject(pending[0]["id"].as_str().expect("an id"), "no")
        .await;
    assert_eq!(status, 200);
    let told = app
        .stateless(
            "telegram",
            &app.token,
            "tasks/get",
            json!({"taskId": refused_id}),
        )
        .await;
    assert_eq!(told["result"]["status"], "completed", "{told:#}");
    assert_eq!(told["result"]["result"]["isError"], true);
    assert_eq!(
        told["result"]["result"]["content"][0]["text"],
        "Rejected by alice@example.org: no"
    );
    let cancelled = app
        .stateless(
            "telegram",
            &app.token,
            "tasks/cancel",
            json!({"taskId": refused_id}),
        )
        .await;
    assert_eq!(
        cancelled["result"]["resultType"], "complete",
        "acknowledged: {cancelled:#}"
    );

    let plain = app
        .stateless(
            "telegram",
            &app.token,
            "tools/call",
            json!({"name": "export_session", "arguments": {"account": "plain"}}),
        )
        .await;
    assert_eq!(
        plain["result"]["isError"], true,
        "no task without the extension: {plain:#}"
    );
    assert!(
        plain["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Waiting for approval")),
        "{plain:#}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 1);
}

#[tokio::test]
async fn a_tasks_result_waiting_while_a_tasks_get_runs_the_call_still_gets_the_result() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agent = TaskSession::open(&app, &app.token).await;
    let task_id = agent.task_of_call(json!({})).await;
    let result = waiting_for_result(&app, task_id.clone()).await;
    let id = alice.wait_one_pending().await;
    alice.wait_requests(&id, 1).await;

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    // Whichever of the two wins the call, it runs once and tasks/result gets its result.
    let polled = agent.request("tasks/get", json!({"taskId": task_id})).await;

    let result = result.await.expect("the waiting request");
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{result:#} (tasks/get said {polled:#})"
    );
    assert!(
        matches!(
            polled["result"]["status"].as_str(),
            Some("working" | "completed")
        ),
        "{polled:#}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 1);
}

#[tokio::test]
async fn another_token_of_the_same_agent_cannot_use_its_session() {
    let app = TestApp::spawn().await;
    let session = TaskSession::open(&app, &app.token).await;
    let token = app.token_for("test-agent").await;

    let response = reqwest::Client::new()
        .post(app.mcp_url("telegram"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/list", "params": {}}))
        .send()
        .await
        .expect("POST");

    assert_eq!(response.status(), 404, "a session belongs to its token");
}
