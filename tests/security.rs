//! Attacks on Airlock, each against the real app over real sockets, and the defence that stops it
//! (README, "Security"). Every test is named for the attack.

mod common;

use common::{Setup, TestApp, messages};
use serde_json::json;

const LIST_TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

#[tokio::test]
async fn dns_rebinding_with_a_foreign_host_header_is_refused() {
    let app = TestApp::spawn().await;
    let session = app.raw_session("2025-06-18").await;
    let port = app.addr.port().to_string();
    // A page whose name was re-pointed at 127.0.0.1 sends its own name, and no Origin when it
    // uses a simple request; Airlock must not answer it.
    for host in ["evil.example.com", &format!("evil.example.com:{port}")] {
        let refused = app
            .post(
                "telegram",
                &[
                    ("host", host),
                    ("mcp-session-id", &session),
                    ("mcp-protocol-version", "2025-06-18"),
                ],
                LIST_TOOLS,
            )
            .await;
        assert_eq!(refused.status(), 403, "Host {host}");
        let body: serde_json::Value = refused.json().await.expect("a JSON-RPC error");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Host not allowed")),
            "{body}"
        );
        let page = reqwest::Client::new()
            .get(app.url("/login"))
            .header("host", host)
            .send()
            .await
            .expect("GET /login");
        assert_eq!(page.status(), 403, "the dashboard for Host {host}");
    }
    // Its own names are served: the listen address, and localhost on that port.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let served = app
            .post(
                "telegram",
                &[
                    ("host", &host),
                    ("mcp-session-id", &session),
                    ("mcp-protocol-version", "2025-06-18"),
                ],
                LIST_TOOLS,
            )
            .await;
        assert_eq!(served.status(), 200, "Host {host}");
        assert!(messages(served).await[0]["result"]["tools"].is_array());
    }
}

#[tokio::test]
async fn a_localhost_page_cannot_call_an_airlock_served_under_a_public_name() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "public_url = \"https://airlock.example.org\"\n".to_owned(),
        ..Setup::default()
    })
    .await;
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "page", "version": "1"}}})
    .to_string();
    let from_localhost = app
        .post(
            "telegram",
            &[("origin", "http://localhost:6274")],
            &initialize,
        )
        .await;
    assert_eq!(from_localhost.status(), 403);
    let from_itself = app
        .post(
            "telegram",
            &[("origin", "https://airlock.example.org")],
            &initialize,
        )
        .await;
    assert_eq!(from_itself.status(), 200);
}

/// A `tools/call` of `send_message` as JSON-RPC text.
fn send_message(id: u32) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "send_message", "arguments": {"chat_id": 1297381004, "text": format!("m{id}")}}})
    .to_string()
}

/// Whether a `tools/call` answer is Airlock's rate-limit refusal.
fn rate_limited(answer: &serde_json::Value) -> bool {
    answer["result"]["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("Rate limit for telegram.send_message"))
}

/// `send_message` in a new 2025-06-18 session that is deleted afterwards: the answer.
async fn send_in_new_session(app: &TestApp, id: u32) -> serde_json::Value {
    let session = app.raw_session("2025-06-18").await;
    let answer = messages(app.post_in_session(&session, &send_message(id)).await)
        .await
        .pop()
        .expect("an answer");
    assert_eq!(app.delete_session(&session).await.status(), 200);
    answer
}

/// `send_message` as a 2026-07-28 (stateless) request: the answer.
async fn send_stateless(app: &TestApp, id: u32) -> serde_json::Value {
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "send_message"),
    ];
    messages(app.post("telegram", &headers, &send_message(id)).await)
        .await
        .pop()
        .expect("an answer")
}

#[tokio::test]
async fn new_sessions_and_stateless_calls_do_not_escape_an_agents_rate_limit() {
    // TEST_POLICY: send_message at most 2 calls per 3 s.
    let app = TestApp::spawn().await;
    let mut answers = Vec::new();
    for id in 1..=4 {
        answers.push(send_in_new_session(&app, id).await);
    }
    answers.push(send_stateless(&app, 5).await);
    let limited: Vec<bool> = answers.iter().map(rate_limited).collect();
    assert_eq!(limited, [false, false, true, true, true], "{answers:#?}");
    assert_eq!(app.call_log.calls_of("send_message"), 2);
}

#[tokio::test]
async fn a_rule_per_session_gives_each_session_its_own_budget() {
    let policy = common::TEST_POLICY.replace(
        r#""rate_limit": { "max": 2, "window": 3 } }"#,
        r#""rate_limit": { "max": 1, "window": 60 }, "per": "session" }"#,
    );
    assert_ne!(policy, common::TEST_POLICY);
    let app = TestApp::spawn_with_policy(&policy).await;
    let session = app.raw_session("2025-06-18").await;
    let first = messages(app.post_in_session(&session, &send_message(1)).await).await;
    let again = messages(app.post_in_session(&session, &send_message(2)).await).await;
    assert!(!rate_limited(&first[0]), "{first:?}");
    assert!(rate_limited(&again[0]), "{again:?}");
    let other = send_in_new_session(&app, 3).await;
    assert!(!rate_limited(&other), "{other}");
    assert_eq!(app.call_log.calls_of("send_message"), 2);
}
