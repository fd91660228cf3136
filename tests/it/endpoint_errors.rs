//! Bad input on `/mcp/{upstream}` gets a clear answer, in the order of the contract, and no panic:
//! Origin 403, token 401, unknown upstream 404, oversize 413, not JSON -32700, not JSON-RPC -32600,
//! sessions and routing headers. Raw HTTP, because a well-behaved client never sends these.

use crate::common;

use common::{Setup, TestApp, messages};
use serde_json::{Value, json};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON-RPC error body");
    (status, body["error"].clone())
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_never_echoed() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();

    let missing = client
        .post(app.mcp_url("telegram"))
        .header("content-type", "application/json")
        .body(INITIALIZE)
        .send()
        .await
        .expect("POST");
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    assert!(
        missing
            .text()
            .await
            .unwrap_or_default()
            .contains("airlock token create")
    );

    let wrong_token = "alk_0000000000000000000000000000000000000000000000000000000000000000";
    let wrong = client
        .post(app.mcp_url("telegram"))
        .bearer_auth(wrong_token)
        .body(INITIALIZE)
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong.status(), 401);
    let body = wrong.text().await.unwrap_or_default();
    assert!(!body.contains(wrong_token), "{body}");
}

#[tokio::test]
async fn a_foreign_origin_is_403_before_the_token_is_looked_at() {
    let app = TestApp::spawn().await;

    let foreign = app
        .post(
            "telegram",
            &[("origin", "https://evil.example.com")],
            INITIALIZE,
        )
        .await;
    let (status, error) = error_of(foreign).await;
    assert_eq!(status, 403);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Origin"),
        "{error}"
    );

    // Without a token, the Origin check still comes first.
    let anonymous = reqwest::Client::new()
        .post(app.mcp_url("telegram"))
        .header("origin", "https://evil.example.com")
        .body(INITIALIZE)
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), 403);

    let local = app
        .post(
            "telegram",
            &[("origin", "http://localhost:6274")],
            INITIALIZE,
        )
        .await;
    assert_eq!(local.status(), 200);
}

#[tokio::test]
async fn an_unknown_upstream_is_404() {
    let app = TestApp::spawn().await;
    let (status, error) = error_of(app.post("nosuch", &[], INITIALIZE).await).await;
    assert_eq!(status, 404);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nosuch"),
        "{error}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "max_body_bytes = 2048\n".to_owned(),
        ..Setup::default()
    })
    .await;
    let session = app.raw_session("2025-06-18").await;
    let big = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"send_message","arguments":{"chat_id":1,"text":"x".repeat(4096)}}});

    let response = app
        .post(
            "telegram",
            &[("mcp-session-id", &session)],
            &big.to_string(),
        )
        .await;

    let (status, error) = error_of(response).await;
    assert_eq!(status, 413);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2048"),
        "{error}"
    );
    assert!(app.upstream_calls().is_empty());
}

#[tokio::test]
async fn not_json_is_a_parse_error_and_not_json_rpc_is_an_invalid_request() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let with_session = [("mcp-session-id", session.as_str())];

    let (status, error) = error_of(app.post("telegram", &with_session, "{not json").await).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(-32700)));

    for bad in [
        r#"{"id":1,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"get_chats"}"#,
        r#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}"#,
        r#"42"#,
    ] {
        let (status, error) = error_of(app.post("telegram", &with_session, bad).await).await;
        assert_eq!(
            (status, error["code"].as_i64()),
            (400, Some(-32600)),
            "{bad}: {error}"
        );
    }
}

#[tokio::test]
async fn sessions_are_required_known_and_end_with_delete() {
    let app = TestApp::spawn().await;

    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _) = error_of(app.post("telegram", &[], list).await).await;
    assert_eq!(status, 400, "a request without a session");

    let (status, _) = error_of(
        app.post("telegram", &[("mcp-session-id", "feedface")], list)
            .await,
    )
    .await;
    assert_eq!(status, 404, "an unknown session");

    let session = app.raw_session("2025-06-18").await;
    let (status, error) = error_of(
        app.post(
            "telegram",
            &[
                ("mcp-session-id", &session),
                ("mcp-protocol-version", "1999-01-01"),
            ],
            list,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "an unsupported protocol version");
    assert_eq!(error["code"], -32022);
    assert_eq!(error["data"]["requested"], "1999-01-01");
    assert!(
        error["data"]["supported"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("2025-06-18"))),
        "{error}"
    );

    let deleted = app.delete_session(&session).await;
    assert_eq!(deleted.status(), 200);
    let (status, _) = error_of(
        app.post("telegram", &[("mcp-session-id", &session)], list)
            .await,
    )
    .await;
    assert_eq!(status, 404, "a deleted session");
}

#[tokio::test]
async fn an_old_client_is_offered_the_oldest_supported_version() {
    let app = TestApp::spawn().await;
    let body = INITIALIZE.replace("2025-06-18", "2024-11-05");
    let answer = messages(app.post("telegram", &[], &body).await).await;
    assert_eq!(answer[0]["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(
        answer[0]["result"]["serverInfo"]["name"],
        "airlock-demo-telegram"
    );
}

#[tokio::test]
async fn batches_are_policed_per_element_on_2025_03_26_and_refused_elsewhere() {
    let app = TestApp::spawn().await;
    let batch = json!([
        {"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"get_chats","arguments":{}}},
        {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"delete_chat","arguments":{"chat_id":1}}},
    ])
    .to_string();

    let newer = app.raw_session("2025-06-18").await;
    let (status, error) = error_of(
        app.post("telegram", &[("mcp-session-id", &newer)], &batch)
            .await,
    )
    .await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(-32600)));

    let older = app.raw_session("2025-03-26").await;
    let response = app
        .post("telegram", &[("mcp-session-id", &older)], &batch)
        .await;
    assert_eq!(response.status(), 200);
    let answers: Value = response.json().await.expect("a JSON array");
    let answers = answers.as_array().expect("an array of responses");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["id"], "a");
    assert_eq!(answers[0]["result"]["isError"], false);
    assert_eq!(answers[1]["id"], "b");
    assert_eq!(answers[1]["result"]["isError"], true);
    assert_eq!(app.call_log.calls_of("get_chats"), 1);
    assert_eq!(app.call_log.calls_of("delete_chat"), 0);
}

#[tokio::test]
async fn stateless_routing_headers_must_match_the_body() {
    let app = TestApp::spawn().await;
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_chats","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let version = ("mcp-protocol-version", "2026-07-28");

    let mismatched = app
        .post(
            "telegram",
            &[
                version,
                ("mcp-method", "tools/call"),
                ("mcp-name", "delete_chat"),
            ],
            call,
        )
        .await;
    let (status, error) = error_of(mismatched).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(-32020)));

    let wrong_method = app
        .post(
            "telegram",
            &[
                version,
                ("mcp-method", "tools/list"),
                ("mcp-name", "get_chats"),
            ],
            call,
        )
        .await;
    assert_eq!(wrong_method.status(), 400);
    assert_eq!(app.call_log.calls_of("get_chats"), 0);

    let matching = app
        .post(
            "telegram",
            &[
                version,
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_chats"),
            ],
            call,
        )
        .await;
    assert_eq!(matching.status(), 200);
    let answer = messages(matching).await;
    assert_eq!(
        answer.last().map(|m| m["result"]["isError"].clone()),
        Some(json!(false))
    );
    assert_eq!(app.call_log.calls_of("get_chats"), 1);
}

#[tokio::test]
async fn ops_endpoints_report_health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    agent.call("get_chats", json!({})).await;
    agent.call("delete_chat", json!({"chat_id": 1})).await;

    let health = reqwest::get(app.url("/healthz"))
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    let (status, ready) = app.readyz().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["upstreams"]["telegram"]["link"], "up");
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            r#"airlock_tool_calls_total{upstream="telegram",tool="get_chats",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"airlock_tool_calls_total{upstream="telegram",tool="delete_chat",outcome="denied"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"airlock_proxy_request_duration_seconds_count{upstream="telegram",method="tools/call"} 1"#), "{metrics}");
    agent.close().await;
}

#[tokio::test]
async fn a_session_is_invisible_to_another_agent() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let other_token = airlock::secrets::generate_token().expect("randomness");
    app.store
        .add_agent_token(
            "intruder",
            &airlock::secrets::sha256_hex(other_token.as_bytes()),
        )
        .await
        .expect("a second agent");

    let response = reqwest::Client::new()
        .post(app.mcp_url("telegram"))
        .bearer_auth(&other_token)
        .header("mcp-session-id", &session)
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_chats","arguments":{}}}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 404);
    assert!(app.upstream_calls().is_empty());
}

#[tokio::test]
async fn an_idle_session_is_closed() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "session_idle_timeout = 1\n".to_owned(),
        ..Setup::default()
    })
    .await;
    let session = app.raw_session("2025-06-18").await;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    assert_eq!(
        app.post("telegram", &[("mcp-session-id", &session)], list)
            .await
            .status(),
        200
    );
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let status = app
            .post("telegram", &[("mcp-session-id", &session)], list)
            .await
            .status();
        if status == 404 {
            break;
        }
        // Each request counts as activity; poll slower than the timeout so idleness can happen.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle session was never closed"
        );
    }
}

#[tokio::test]
async fn a_2026_07_28_client_closing_its_stream_cancels_the_call() {
    let app = TestApp::spawn().await;
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow_task","arguments":{"steps":200,"step_ms":50},"_meta":{"progressToken":"p","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let mut response = app
        .post(
            "telegram",
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "slow_task"),
            ],
            call,
        )
        .await;
    assert_eq!(response.status(), 200);
    // Read until the first progress event, then hang up.
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = tokio::time::timeout(common::WAIT, response.chunk())
            .await
            .expect("progress in time")
            .expect("the stream")
            .expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    let cancelled = app
        .call_log
        .wait_for("the cancellation", |e| e["event"] == "cancelled")
        .await;
    assert_eq!(cancelled["tool"], "slow_task");
}

#[tokio::test]
async fn a_tool_call_without_an_id_is_refused_not_forwarded() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    // Sent as a "notification", a call would get no answer, and so no policy verdict either.
    let sneaky = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_chat","arguments":{"chat_id":1}}}"#;

    let (status, error) = error_of(
        app.post("telegram", &[("mcp-session-id", &session)], sneaky)
            .await,
    )
    .await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(-32600)));

    let stateless = app
        .post(
            "telegram",
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "delete_chat"),
            ],
            sneaky,
        )
        .await;
    assert_eq!(stateless.status(), 400);
    // Give a forwarded message time to arrive before concluding it did not.
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_chats","arguments":{}}}"#;
    messages(
        app.post("telegram", &[("mcp-session-id", &session)], list)
            .await,
    )
    .await;
    assert_eq!(app.call_log.calls_of("delete_chat"), 0);
    assert_eq!(app.call_log.calls_of("get_chats"), 1);
}

#[tokio::test]
async fn hanging_up_does_not_give_a_stateless_call_its_rate_limit_slot_back() {
    let app = TestApp::spawn_with_policy(
        r#"{"version":"1","default":"deny","tools":{"slow_task":{"rate_limit":{"max":1,"window":60}}}}"#,
    )
    .await;
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "slow_task"),
    ];
    let call = |n: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"slow_task","arguments":{{"steps":100,"step_ms":50}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        )
    };
    // The first caller hangs up while its call runs: that cancels it, but it was sent.
    let first = app.post("telegram", &headers, &call(1)).await;
    app.call_log
        .wait_for("the first call", |e| e["tool"] == "slow_task")
        .await;
    drop(first);
    app.call_log
        .wait_for("its cancellation", |e| e["event"] == "cancelled")
        .await;

    let second = messages(app.post("telegram", &headers, &call(2)).await).await;

    let text = second[0]["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.starts_with("Rate limit for telegram.slow_task: 1 call per 60 s"),
        "{second:?}"
    );
    assert_eq!(app.call_log.calls_of("slow_task"), 1);
}

#[tokio::test]
async fn a_request_id_already_in_flight_is_refused() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let slow = r#"{"jsonrpc":"2.0","id":"same","method":"tools/call","params":{"name":"slow_task","arguments":{"steps":40,"step_ms":50}}}"#;
    let first = app
        .post("telegram", &[("mcp-session-id", &session)], slow)
        .await;
    app.call_log
        .wait_for("the first call", |e| e["tool"] == "slow_task")
        .await;

    let again = messages(
        app.post("telegram", &[("mcp-session-id", &session)], slow)
            .await,
    )
    .await;

    assert_eq!(again[0]["error"]["code"], -32600, "{again:?}");
    assert_eq!(app.call_log.calls_of("slow_task"), 1);
    drop(first);
}

#[tokio::test]
async fn an_agent_cannot_open_sessions_without_limit() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "max_sessions_per_agent = 2\n".to_owned(),
        ..Setup::default()
    })
    .await;
    app.raw_session("2025-06-18").await;
    let second = app.raw_session("2025-06-18").await;

    let (status, error) = error_of(app.post("telegram", &[], INITIALIZE).await).await;
    assert_eq!(status, 429);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_sessions_per_agent")
    );

    let deleted = app.delete_session(&second).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(app.post("telegram", &[], INITIALIZE).await.status(), 200);
}

#[tokio::test]
async fn ending_a_session_cancels_its_calls_upstream() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let slow = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow_task","arguments":{"steps":200,"step_ms":50}}}"#;
    let call = app
        .post("telegram", &[("mcp-session-id", &session)], slow)
        .await;
    app.call_log
        .wait_for("the call", |e| e["tool"] == "slow_task")
        .await;

    let deleted = app.delete_session(&session).await;
    assert_eq!(deleted.status(), 200);

    let cancelled = app
        .call_log
        .wait_for("the cancellation", |e| e["event"] == "cancelled")
        .await;
    assert_eq!(cancelled["tool"], "slow_task");
    drop(call);
}

#[tokio::test]
async fn a_json_only_client_gets_one_body_and_its_progress_on_the_get_stream() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let mut stream = reqwest::Client::new()
        .get(app.mcp_url("telegram"))
        .bearer_auth(&app.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("GET stream");
    assert_eq!(stream.status(), 200);

    let answer = reqwest::Client::new()
        .post(app.mcp_url("telegram"))
        .bearer_auth(&app.token)
        .header("accept", "application/json")
        .header("mcp-session-id", &session)
        .body(r#"{"jsonrpc":"2.0","id":"j","method":"tools/call","params":{"name":"slow_task","arguments":{"steps":2,"step_ms":10},"_meta":{"progressToken":7}}}"#)
        .send()
        .await
        .expect("POST");
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/json")
    );
    let answer: Value = answer.json().await.expect("one JSON body");
    assert_eq!(answer["id"], "j");
    assert_eq!(answer["result"]["content"][0]["text"], "completed 2 steps");

    let mut seen = String::new();
    while seen.matches("notifications/progress").count() < 2 {
        let chunk = tokio::time::timeout(common::WAIT, stream.chunk())
            .await
            .expect("progress on the GET stream in time")
            .expect("the stream")
            .expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(r#""progressToken":7"#), "{seen}");
}

#[tokio::test]
async fn an_upstream_that_cannot_start_is_a_clear_error_and_not_ready() {
    let app = Setup {
        upstreams: vec![airlock::config::UpstreamConfig {
            name: "broken".to_owned(),
            command: Some(vec!["/nonexistent/mcp-server".to_owned()]),
            env: Default::default(),
            url: None,
            headers: Default::default(),
            policy: None,
            isolation: None,
            new_tools: Default::default(),
        }],
        ..Setup::default()
    }
    .await_unready()
    .await;

    let answer = messages(app.post("broken", &[], INITIALIZE).await).await;
    let message = answer[0]["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(answer[0]["error"]["code"], -32603, "{answer:?}");
    assert!(
        message
            .starts_with("Upstream broken unavailable: cannot start \"/nonexistent/mcp-server\""),
        "{message}"
    );
    assert!(message.ends_with("try again later"), "{message}");

    // The supervisor keeps retrying; between attempts the link reads as down, with the cause.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, ready) = app.readyz().await;
        assert_eq!(status, 503, "{ready}");
        let link = ready["upstreams"]["broken"]["link"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if link.starts_with("down: cannot start") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The healthy upstream beside it is unaffected.
    assert_eq!(app.post("telegram", &[], INITIALIZE).await.status(), 200);
}

/// A raw 2026-07-28 POST of `method` with `params` (and these `extra` headers): status and body.
async fn post_2026(
    app: &TestApp,
    method: &str,
    params: Value,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 41, "method": method, "params": params}).to_string();
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    headers.extend_from_slice(extra);
    let response = app.post("telegram", &headers, &body).await;
    let status = response.status().as_u16();
    let answer = messages(response).await.pop().unwrap_or(Value::Null);
    (status, answer)
}

#[tokio::test]
async fn a_2026_request_answered_by_airlock_follows_the_2026_rules() {
    let app = TestApp::spawn().await;
    let meta = |version: &str| {
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": version,
                         "io.modelcontextprotocol/clientCapabilities": {}}})
    };
    // A request without its _meta, or with one missing a required key: 400, -32602, its id.
    for params in [
        json!({}),
        json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
    ] {
        let (status, answer) = post_2026(&app, "server/discover", params.clone(), &[]).await;
        assert_eq!(status, 400, "{params}: {answer}");
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert_eq!(answer["id"], 41, "errors answer the request's id: {answer}");
    }
    // The header's version must be the _meta's: 400, -32020.
    let (status, answer) = post_2026(&app, "server/discover", meta("2025-11-25"), &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(-32020)),
        "{answer}"
    );
    // Removed and unknown methods: 404, -32601, never forwarded.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "tools/destroy_everything",
    ] {
        let (status, answer) = post_2026(&app, method, meta("2026-07-28"), &[]).await;
        assert_eq!(status, 404, "{method}: {answer}");
        assert_eq!(answer["error"]["code"], -32601, "{method}: {answer}");
        assert_eq!(answer["id"], 41, "{answer}");
    }
    // A request by the rules is served.
    let (status, answer) = post_2026(&app, "server/discover", meta("2026-07-28"), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"]["supportedVersions"].is_array(), "{answer}");
    let (status, answer) = post_2026(
        &app,
        "tools/call",
        json!({"name": "get_chats", "arguments": {}, "_meta": meta("2026-07-28")["_meta"]}),
        &[("mcp-name", "get_chats")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(app.call_log.calls_of("get_chats"), 1);
}
