//! Resumption (2025-11-25, "Resumability"). Upstream side: an HTTP upstream that closes a
//! request's event stream after a priming event (an event id and `retry`) and delivers the answer
//! on `GET` with `Last-Event-ID`; Airlock reconnects and the agent gets its answer. Downstream:
//! Airlock's own stream of a forwarded call, cut by the agent, is taken up again the same way.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{Setup, TestApp, is_error, text};
use serde_json::{Value, json};

/// What the polling server saw, and the answer it holds back for the GET.
#[derive(Default)]
struct Polling {
    held: Option<Value>,
    resumed_after: Vec<String>,
}

fn sse(body: String) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn post(state: Arc<Mutex<Polling>>, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let answer = |result: Value| {
        axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
    };
    match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => {
            let mut response = answer(json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "polling", "version": "1"}}));
            response.headers_mut().insert(
                "mcp-session-id",
                "polling-session".parse().expect("a header"),
            );
            response
        }
        Some("tools/list") => answer(json!({"tools": [{"name": "slow_answer",
            "description": "Answers after the stream was resumed",
            "inputSchema": {"type": "object"}}]})),
        Some("tools/call") => {
            // The answer waits for the GET; this stream ends after the priming event.
            state.lock().expect("state").held = Some(json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": "answered after resuming"}]}}));
            sse("id: ev-1\nretry: 50\ndata: \n\n".to_owned())
        }
        Some(_) if msg.get("id").is_some() => answer(json!({})),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn get(state: Arc<Mutex<Polling>>, headers: HeaderMap) -> Response {
    let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let mut state = state.lock().expect("state");
    state.resumed_after.push(last.to_owned());
    match state.held.take() {
        Some(answer) => sse(format!("id: ev-2\ndata: {answer}\n\n")),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test]
async fn a_request_stream_the_upstream_closes_after_priming_is_resumed_with_last_event_id() {
    let state = Arc::new(Mutex::new(Polling::default()));
    let router = axum::Router::new().route(
        "/mcp",
        axum::routing::post({
            let state = state.clone();
            move |body: Bytes| post(state.clone(), body)
        })
        .get({
            let state = state.clone();
            move |headers: HeaderMap| get(state.clone(), headers)
        })
        .delete(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = tempfile::tempdir().expect("tmp");
    let policy = dir.path().join("polling.json");
    std::fs::write(&policy, r#"{"version":"1","default":"allow"}"#).expect("policy");
    let app = TestApp::spawn_with(Setup {
        upstreams: vec![common::http_upstream(
            "polling",
            format!("http://{addr}/mcp"),
            policy,
        )],
        ..Setup::default()
    })
    .await;

    let agent = common::Agent::connect(&app.mcp_url("polling"), &app.token).await;
    let result = agent.call("slow_answer", json!({})).await;
    assert!(!is_error(&result), "{result:?}");
    assert_eq!(text(&result), "answered after resuming");
    assert_eq!(state.lock().expect("state").resumed_after, ["ev-1"]);
    agent.close().await;
}

#[tokio::test]
async fn a_forwarded_calls_stream_cut_by_the_agent_resumes_with_last_event_id_and_delivers_the_answer()
 {
    let app = TestApp::spawn().await;
    let session = crate::tasks::TaskSession::open(&app, &app.token).await;
    let call = json!({"jsonrpc": "2.0", "id": 52, "method": "tools/call", "params": {
        "name": "slow_task", "arguments": {"steps": 3, "step_ms": 200},
        "_meta": {"progressToken": "p"}}});
    let (event_id, head) = session.cut_after_priming(&call).await;
    assert!(event_id.ends_with(":0"), "a priming event first: {head:?}");
    assert!(head.contains("retry:"), "{head:?}");

    let body = session.resumed_body(&event_id).await;
    let stream = event_id.trim_end_matches(":0");
    assert!(
        body.contains(&format!("id: {stream}:1")),
        "numbered on: {body}"
    );
    assert!(
        body.contains("notifications/progress"),
        "progress missed meanwhile: {body}"
    );
    let answer = crate::tasks::last_message(&body);
    assert_eq!(answer["id"], 52, "the answer to the cut request: {answer}");
    assert!(!is_error_message(&answer), "{answer}");
    assert_eq!(app.call_log.calls_of("slow_task"), 1, "run once");

    // Delivered to its end, the stream is forgotten: asking again opens the plain GET stream.
    let again = session
        .http(reqwest::Method::GET)
        .header("last-event-id", &event_id)
        .send()
        .await
        .expect("GET");
    let mut again = again;
    let first = tokio::time::timeout(std::time::Duration::from_millis(500), again.chunk()).await;
    assert!(
        !matches!(&first, Ok(Ok(Some(chunk))) if String::from_utf8_lossy(chunk).contains("\"id\":52")),
        "the answer is not delivered twice: {first:?}"
    );
}

fn is_error_message(msg: &Value) -> bool {
    msg.get("error").is_some() || msg["result"]["isError"] == true
}

#[tokio::test]
async fn a_cut_stream_nobody_resumes_lets_its_session_idle_out() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "session_idle_timeout = 1\n".to_owned(),
        ..Setup::default()
    })
    .await;
    let session = crate::tasks::TaskSession::open(&app, &app.token).await;
    // Runs well past the test's patience: a cut stream must not keep the session busy for it.
    let call = json!({"jsonrpc": "2.0", "id": 53, "method": "tools/call", "params": {
        "name": "slow_task", "arguments": {"steps": 60, "step_ms": 1000}}});
    let (event_id, _) = session.cut_after_priming(&call).await;
    assert!(event_id.ends_with(":0"), "{event_id}");

    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        // Polled slower than the idle timeout, so the session can be idle in between.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let status = session
            .http(reqwest::Method::POST)
            .json(&json!({"jsonrpc": "2.0", "id": 54, "method": "tools/list"}))
            .send()
            .await
            .expect("POST")
            .status();
        if status == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a stream nobody resumed kept its session alive"
        );
    }
}
