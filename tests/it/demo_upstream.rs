//! The demo upstream, driven by real rmcp clients over real transports: Streamable HTTP on a
//! loopback port (both the `initialize` handshake and the 2026-07-28 stateless lifecycle) and the
//! stdio protocol over an in-memory pipe, plus raw JSON-RPC where rmcp's client would hide the
//! detail under test. The call log is read back to prove what the server saw.
//!
//! The helpers at the top (`ProgressRecorder`, `HttpUpstream`, `CallLog`) are meant to be
//! imitated by the gateway's tests.

use crate::common;

use std::time::Duration;

use common::{Agent, CallLog, ProgressRecorder, WAIT, call_params as call, text};

use airlock::demo_upstream::{
    DemoError, DemoOptions, DemoServer, PROFILE_URI, SERVER_NAME, serve_http, serve_http_until,
};
use rmcp::{
    ServiceExt,
    model::{
        CallToolResult, ClientRequest, GetPromptRequestParams, ProtocolVersion,
        ReadResourceRequestParams, Request, ResourceContents,
    },
    service::{ClientLifecycleMode, ClientServiceExt, PeerRequestOptions},
    transport::StreamableHttpClientTransport,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader, Lines},
    net::TcpListener,
    sync::oneshot,
    task::JoinHandle,
};

/// The demo upstream serving Streamable HTTP on a free loopback port, with its own call log.
struct HttpUpstream {
    url: String,
    log: CallLog,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DemoError>>,
    _dir: TempDir,
}

impl HttpUpstream {
    async fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the call log");
        let log = CallLog(dir.path().join("calls.jsonl"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let opts = DemoOptions {
            call_log: Some(log.0.clone()),
            ..DemoOptions::default()
        };
        let task = tokio::spawn(serve_http_until(listener, opts, async {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        Self {
            url: format!("http://{addr}/mcp"),
            log,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// Connects with the `initialize` handshake (protocol revisions up to 2025-11-25).
    async fn connect(&self) -> Agent {
        let (handler, progress) = ProgressRecorder::new();
        let transport = StreamableHttpClientTransport::from_uri(self.url.clone());
        let client = tokio::time::timeout(WAIT, handler.serve(transport))
            .await
            .expect("the handshake in time")
            .expect("an MCP handshake over HTTP");
        Agent { client, progress }
    }

    /// Connects with `server/discover` and per-request metadata (2026-07-28, no session).
    async fn connect_stateless(&self) -> Agent {
        let (handler, progress) = ProgressRecorder::new();
        let transport = StreamableHttpClientTransport::from_uri(self.url.clone());
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        let client = tokio::time::timeout(WAIT, handler.serve_with_lifecycle(transport, lifecycle))
            .await
            .expect("discovery in time")
            .expect("server/discover over HTTP");
        Agent { client, progress }
    }

    async fn stop(mut self) -> Result<(), DemoError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("the server to stop in time")
            .expect("the server task not to panic")
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves a fresh demo server over an in-memory pipe, the way a stdio child would be served.
async fn connect_in_memory(opts: DemoOptions) -> Agent {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = DemoServer::new(opts).expect("the demo server starts");
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let (handler, progress) = ProgressRecorder::new();
    let client = tokio::time::timeout(WAIT, handler.serve(client_io))
        .await
        .expect("the handshake in time")
        .expect("an MCP handshake over the pipe");
    Agent { client, progress }
}

fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

fn chat_ids(result: &CallToolResult) -> Vec<i64> {
    structured(result)["chats"]
        .as_array()
        .expect("a chats array")
        .iter()
        .map(|chat| chat["id"].as_i64().expect("a numeric chat id"))
        .collect()
}

const ALICE: i64 = 1_297_381_004;

#[tokio::test]
async fn http_client_sees_the_demo_catalogue() {
    let upstream = HttpUpstream::spawn().await;
    let connection = upstream.connect().await;
    let client = &connection.client;

    let info = client.peer_info().expect("the server's initialize result");
    assert_eq!(
        info.server_info.as_ref().map(|server| server.name.as_str()),
        Some(SERVER_NAME)
    );
    let instructions = info.instructions.as_deref().unwrap_or_default();
    assert!(instructions.contains("demo"), "{instructions}");

    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "delete_chat",
            "export_session",
            "get_chats",
            "get_messages",
            "send_message",
            "slow_task"
        ]
    );
    let tool = |name: &str| {
        tools
            .iter()
            .find(|tool| tool.name == name)
            .expect("a listed tool")
    };
    let export = tool("export_session");
    assert_eq!(
        export.description.as_deref(),
        Some("Export the current session string")
    );
    assert_eq!(
        export.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true),
        "export_session claims to be read-only, as the real server does"
    );
    assert_eq!(
        tool("delete_chat")
            .annotations
            .as_ref()
            .and_then(|a| a.destructive_hint),
        Some(true)
    );
    let send_schema = Value::Object((*tool("send_message").input_schema).clone());
    assert_eq!(send_schema["properties"]["chat_id"]["type"], "integer");
    assert_eq!(send_schema["properties"]["text"]["type"], "string");
    let slow_schema = Value::Object((*tool("slow_task").input_schema).clone());
    assert_eq!(slow_schema["properties"]["steps"]["default"], 5);
    assert_eq!(slow_schema["properties"]["step_ms"]["default"], 200);

    let resources = client.list_all_resources().await.expect("resources/list");
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].uri, PROFILE_URI);
    let read = client
        .read_resource(ReadResourceRequestParams::new(PROFILE_URI))
        .await
        .expect("resources/read");
    let ResourceContents::TextResourceContents {
        text, mime_type, ..
    } = &read.contents[0]
    else {
        panic!("the profile is text: {read:?}");
    };
    assert_eq!(mime_type.as_deref(), Some("application/json"));
    let profile: Value = serde_json::from_str(text).expect("the profile is JSON");
    assert_eq!(profile["username"], "dana_demo");
    assert!(
        client
            .read_resource(ReadResourceRequestParams::new("telegram://nowhere"))
            .await
            .is_err(),
        "an unknown resource is a JSON-RPC error"
    );

    let prompts = client.list_all_prompts().await.expect("prompts/list");
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].name, "summarize_chat");
    let arguments = prompts[0].arguments.as_deref().unwrap_or_default();
    assert_eq!(arguments.len(), 1);
    assert_eq!(arguments[0].name, "chat_id");
    assert_eq!(arguments[0].required, Some(true));
    let Value::Object(prompt_args) = json!({ "chat_id": ALICE.to_string() }) else {
        unreachable!("a JSON object literal");
    };
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("summarize_chat").with_arguments(prompt_args))
        .await
        .expect("prompts/get");
    let message = serde_json::to_value(&prompt.messages[0]).expect("a serialisable message");
    let prompt_text = message["content"]["text"].as_str().unwrap_or_default();
    assert!(prompt_text.contains("Alice Martin"), "{prompt_text}");
    assert!(prompt_text.contains("staging URL"), "{prompt_text}");

    connection.close().await;
    upstream.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn tools_behave_like_a_small_telegram_account_shared_by_all_sessions() {
    let upstream = HttpUpstream::spawn().await;
    let first = upstream.connect().await;
    let second = upstream.connect().await;

    let chats = first.call("get_chats", json!({})).await;
    assert_eq!(chats.is_error, Some(false));
    assert_eq!(chat_ids(&chats).len(), 4);
    assert_eq!(chat_ids(&chats)[0], ALICE, "most recently active first");
    assert_eq!(
        chat_ids(&first.call("get_chats", json!({ "limit": 2 })).await).len(),
        2
    );

    let messages = first
        .call("get_messages", json!({ "chat_id": ALICE, "limit": 2 }))
        .await;
    let listed = structured(&messages)["messages"]
        .as_array()
        .expect("a messages array");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["from"], "Alice Martin");

    let unknown = first.call("get_messages", json!({ "chat_id": 42 })).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(text(&unknown).contains("not found"), "{}", text(&unknown));

    let bad_arguments = first
        .call("get_messages", json!({ "chat_id": "alice" }))
        .await;
    assert_eq!(
        bad_arguments.is_error,
        Some(true),
        "arguments that do not fit the schema are a tool error the agent can read"
    );

    let team = -1_001_846_223_907;
    let sent = first
        .call(
            "send_message",
            json!({ "chat_id": team, "text": "Staging is at https://staging.example" }),
        )
        .await;
    assert_eq!(sent.is_error, Some(false));
    assert_eq!(structured(&sent)["status"], "sent");
    assert_eq!(structured(&sent)["message_id"], 4);
    let seen_elsewhere = second
        .call("get_messages", json!({ "chat_id": team }))
        .await;
    let last = structured(&seen_elsewhere)["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .cloned()
        .expect("a last message");
    assert_eq!(last["text"], "Staging is at https://staging.example");
    assert_eq!(last["from"], "Dana Demo");
    assert_eq!(
        chat_ids(&second.call("get_chats", json!({})).await)[0],
        team,
        "the chat just written to moves to the top"
    );

    let deleted = second
        .call("delete_chat", json!({ "chat_id": ALICE }))
        .await;
    assert_eq!(structured(&deleted)["status"], "deleted");
    assert!(!chat_ids(&first.call("get_chats", json!({})).await).contains(&ALICE));
    assert_eq!(
        second
            .call("delete_chat", json!({ "chat_id": ALICE }))
            .await
            .is_error,
        Some(true)
    );

    let session = first.call("export_session", json!({})).await;
    let session_string = text(&session);
    assert!(session_string.starts_with("1BVtsOK"), "{session_string}");
    assert_eq!(session_string.len(), 353);
    assert!(
        session_string[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'='),
        "URL-safe base64: {session_string}"
    );
    assert_eq!(
        text(&second.call("export_session", json!({})).await),
        session_string,
        "one session string per process"
    );

    first.close().await;
    second.close().await;
    upstream.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn slow_task_reports_progress_for_each_step() {
    let upstream = HttpUpstream::spawn().await;
    let mut connection = upstream.connect().await;

    let result = connection
        .call("slow_task", json!({ "steps": 4, "step_ms": 20 }))
        .await;
    assert_eq!(text(&result), "completed 4 steps");

    // rmcp's client puts a progress token on every request, so progress always flows here.
    for step in 1..=4 {
        let progress = connection.next_progress().await;
        assert_eq!(progress.progress, f64::from(step));
        assert_eq!(progress.total, Some(4.0));
        assert_eq!(
            progress.message.as_deref(),
            Some(format!("step {step} of 4 done").as_str())
        );
    }
    assert!(
        connection.progress.try_recv().is_err(),
        "one notification per step"
    );

    let invalid = connection.call("slow_task", json!({ "steps": 0 })).await;
    assert_eq!(invalid.is_error, Some(true));

    connection.close().await;
    upstream.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn cancelling_slow_task_stops_it_and_the_call_log_says_so() {
    let upstream = HttpUpstream::spawn().await;
    let mut connection = upstream.connect().await;

    let request = ClientRequest::CallToolRequest(Request::new(call(
        "slow_task",
        json!({ "steps": 200, "step_ms": 50 }),
    )));
    let handle = connection
        .client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("tools/call sent");
    let first = connection.next_progress().await;
    assert_eq!(first.progress_token, handle.progress_token);

    handle
        .cancel(Some("the test changed its mind".into()))
        .await
        .expect("notifications/cancelled sent");
    let cancelled = upstream
        .log
        .wait_for("the cancellation", |entry| entry["event"] == "cancelled")
        .await;
    assert_eq!(cancelled["tool"], "slow_task");
    assert_eq!(cancelled["pid"], std::process::id());

    // Stopped promptly: nowhere near all 200 steps were reported.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut reported = 1;
    while connection.progress.try_recv().is_ok() {
        reported += 1;
    }
    assert!(reported < 20, "{reported} steps reported after cancelling");

    connection.close().await;
    upstream.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn call_log_records_each_call_before_it_runs() {
    let upstream = HttpUpstream::spawn().await;
    let connection = upstream.connect().await;

    connection
        .call("send_message", json!({ "chat_id": ALICE, "text": "hi" }))
        .await;
    connection.call("export_session", json!({})).await;
    let unknown = connection
        .client
        .call_tool(call("no_such_tool", json!({ "x": 1 })))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a JSON-RPC error");

    let entries = upstream.log.entries();
    assert_eq!(entries[0]["event"], "started");
    assert_eq!(
        entries[0]["pid"],
        std::process::id(),
        "served in-process here"
    );
    let calls = upstream.log.tool_calls();
    let tools: Vec<&str> = calls
        .iter()
        .map(|entry| entry["tool"].as_str().expect("a tool name"))
        .collect();
    assert_eq!(tools, ["send_message", "export_session", "no_such_tool"]);
    assert_eq!(
        calls[0]["arguments"],
        json!({ "chat_id": ALICE, "text": "hi" })
    );
    assert_eq!(calls[1]["arguments"], json!({}));
    assert_eq!(calls[2]["arguments"], json!({ "x": 1 }));
    for entry in &calls {
        assert_eq!(entry["pid"], std::process::id());
        let at = entry["at"].as_str().expect("a timestamp");
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "RFC 3339: {at}"
        );
    }

    connection.close().await;
    upstream.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn stateless_2026_clients_get_the_same_server() {
    let upstream = HttpUpstream::spawn().await;
    let mut connection = upstream.connect_stateless().await;
    let info = connection.client.peer_info().expect("the discovery result");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);

    let tools = connection
        .client
        .list_all_tools()
        .await
        .expect("tools/list");
    assert_eq!(tools.len(), 6);
    let chats = connection.call("get_chats", json!({ "limit": 1 })).await;
    assert_eq!(chat_ids(&chats), [ALICE]);

    let result = connection
        .call("slow_task", json!({ "steps": 3, "step_ms": 10 }))
        .await;
    assert_eq!(text(&result), "completed 3 steps");
    for step in 1..=3 {
        assert_eq!(connection.next_progress().await.progress, f64::from(step));
    }

    let calls = upstream.log.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["arguments"], json!({ "steps": 3, "step_ms": 10 }));

    // Giving up on a call (dropping its future) cancels it on the server, sessions or not.
    let abandoned = connection
        .client
        .call_tool(call("slow_task", json!({ "steps": 100, "step_ms": 50 })));
    tokio::select! {
        result = abandoned => panic!("a 5 s task answered early: {result:?}"),
        progress = tokio::time::timeout(WAIT, connection.progress.recv()) => {
            progress.expect("a progress notification in time");
        }
    }
    upstream
        .log
        .wait_for("the cancellation", |entry| entry["event"] == "cancelled")
        .await;

    connection.close().await;
    upstream.stop().await.expect("a clean shutdown");
}

#[tokio::test]
async fn the_stdio_protocol_works_over_a_pipe() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = CallLog(dir.path().join("calls.jsonl"));
    let mut connection = connect_in_memory(DemoOptions {
        call_log: Some(log.0.clone()),
        ..DemoOptions::default()
    })
    .await;

    assert_eq!(
        connection
            .client
            .list_all_tools()
            .await
            .expect("tools/list")
            .len(),
        6
    );
    let result = connection
        .call("slow_task", json!({ "steps": 2, "step_ms": 10 }))
        .await;
    assert_eq!(text(&result), "completed 2 steps");
    assert_eq!(connection.next_progress().await.progress, 1.0);
    assert_eq!(connection.next_progress().await.progress, 2.0);

    let handle = connection
        .client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(call(
                "slow_task",
                json!({ "steps": 100, "step_ms": 50 }),
            ))),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("tools/call sent");
    connection.next_progress().await;
    handle
        .cancel(None)
        .await
        .expect("notifications/cancelled sent");
    log.wait_for("the cancellation", |entry| entry["event"] == "cancelled")
        .await;
    assert_eq!(log.tool_calls().len(), 2);

    connection.close().await;
}

/// Sends one JSON-RPC message as a line, as the stdio transport frames it.
async fn send_line(writer: &mut (impl AsyncWrite + Unpin), message: Value) {
    let mut line = message.to_string();
    line.push('\n');
    writer
        .write_all(line.as_bytes())
        .await
        .expect("the server is reading");
}

/// Reads messages until the response with `id`; returns everything read, response last.
async fn read_until_response<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    id: i64,
) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the server answers in time")
            .expect("the pipe is readable")
            .expect("the server has not hung up");
        let message: Value = serde_json::from_str(&line).expect("only JSON-RPC on the wire");
        let done = message["id"] == id;
        seen.push(message);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn progress_is_sent_only_when_the_request_asks_for_it() {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = DemoServer::new(DemoOptions::default()).expect("the demo server starts");
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let (read, mut write) = tokio::io::split(client_io);
    let mut lines = BufReader::new(read).lines();

    send_line(
        &mut write,
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "raw-test", "version": "0" }
            }
        }),
    )
    .await;
    read_until_response(&mut lines, 1).await;
    send_line(
        &mut write,
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    )
    .await;

    let arguments = json!({ "steps": 3, "step_ms": 10 });
    send_line(
        &mut write,
        json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": "slow_task", "arguments": arguments }
        }),
    )
    .await;
    let unasked = read_until_response(&mut lines, 2).await;
    assert_eq!(
        unasked.len(),
        1,
        "no notifications without a token: {unasked:#?}"
    );
    assert_eq!(
        unasked[0]["result"]["content"][0]["text"],
        "completed 3 steps"
    );

    send_line(
        &mut write,
        json!({
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {
                "name": "slow_task",
                "arguments": arguments,
                "_meta": { "progressToken": "raw-progress" }
            }
        }),
    )
    .await;
    let asked = read_until_response(&mut lines, 3).await;
    let progress: Vec<&Value> = asked
        .iter()
        .filter(|message| message["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{asked:#?}");
    for (step, notification) in (1..).map(f64::from).zip(&progress) {
        assert_eq!(notification["params"]["progressToken"], "raw-progress");
        // rmcp writes progress as a float (`1.0`): compare numbers, not JSON text.
        assert_eq!(notification["params"]["progress"].as_f64(), Some(step));
        assert_eq!(notification["params"]["total"].as_f64(), Some(3.0));
    }
}

#[tokio::test]
async fn stopping_ends_sessions_that_are_still_connected() {
    let upstream = HttpUpstream::spawn().await;
    let connection = upstream.connect().await;
    connection.call("get_chats", json!({})).await;

    // The client keeps its session (and its event stream) open while the server stops.
    upstream
        .stop()
        .await
        .expect("a clean shutdown despite a connected client");
    assert!(
        connection
            .client
            .call_tool(call("get_chats", json!({})))
            .await
            .is_err(),
        "the session is gone"
    );
}

#[tokio::test]
async fn aborting_serve_http_closes_the_port() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let addr = listener.local_addr().expect("the bound address");
    let server = tokio::spawn(serve_http(listener, DemoOptions::default()));
    let (handler, _progress) = ProgressRecorder::new();
    let client = handler
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://{addr}/mcp"
        )))
        .await
        .expect("an MCP handshake over HTTP");
    assert_eq!(
        client.list_all_tools().await.expect("tools/list").len(),
        6,
        "the server answers before it is aborted"
    );

    server.abort();
    assert!(
        server.await.expect_err("an aborted task").is_cancelled(),
        "serve_http only returns on ctrl-c"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens on {addr} any more"
    );
    let _ = client.cancel().await;
}
