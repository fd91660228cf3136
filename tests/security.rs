//! Attacks on Airlock, each against the real app over real sockets, and the defence that stops it
//! (README, "Security"). Every test is named for the attack.

mod common;

use common::dashboard::Dashboard;
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

/// A browser that has loaded the sign-in form, ready to post it.
async fn sign_in_form(app: &TestApp) -> Dashboard {
    let mut browser = Dashboard::new(&app.url(""));
    browser.get("/login").await;
    browser
}

async fn failed_sign_ins_logged(db: &common::TestDatabase) -> i64 {
    db.count("SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_failed'")
        .await
}

#[tokio::test]
async fn megabyte_emails_at_sign_in_are_refused_before_anything_is_stored() {
    let app = TestApp::spawn().await;
    let mut browser = sign_in_form(&app).await;
    for _ in 0..10 {
        let huge = format!("{}@example.org", "x".repeat(1_900_000));
        let page = browser
            .submit(
                "/login",
                &[("email", &huge), ("password", "whatever-it-is")],
            )
            .await;
        assert_eq!(page.status, 413);
    }
    // Within the body limit but over an address's 254 bytes: refused before any work.
    let long = format!("{}@example.org", "y".repeat(300));
    let page = browser
        .submit(
            "/login",
            &[("email", &long), ("password", "whatever-it-is")],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("too long"), "{}", page.body);
    assert!(!page.body.contains("yyyyyyyyyy"), "the email is not echoed");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM login_failures").await, 0);
    assert_eq!(failed_sign_ins_logged(&app.db).await, 0);
}

#[tokio::test]
async fn guessing_at_many_emails_from_one_address_is_throttled_with_the_same_answers_for_all() {
    let app = TestApp::spawn().await;
    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    let mut browser = sign_in_form(&app).await;
    // A known email with a wrong password and an unknown email read exactly alike.
    let known = browser
        .submit(
            "/login",
            &[
                ("email", "alice@example.org"),
                ("password", "wrong-password"),
            ],
        )
        .await;
    let unknown = browser
        .submit(
            "/login",
            &[
                ("email", "nobody@example.org"),
                ("password", "wrong-password"),
            ],
        )
        .await;
    assert_eq!(known.status, 401);
    assert_eq!(unknown.status, known.status);
    let error = |page: &common::dashboard::Page| page.between("role=\"alert\">", '<');
    assert!(error(&known).is_some(), "{}", known.body);
    assert_eq!(error(&unknown), error(&known));
    // The default allows 20 failures per address within the lockout, whatever the emails.
    for i in 2..20 {
        let email = format!("guess{i}@example.org");
        let page = browser
            .submit(
                "/login",
                &[("email", &email), ("password", "wrong-password")],
            )
            .await;
        assert_eq!(page.status, 401, "attempt {i}");
    }
    for email in ["guess99@example.org", "alice@example.org"] {
        let pw = if email.starts_with("alice") {
            password.as_str()
        } else {
            "wrong-password"
        };
        let page = browser
            .submit("/login", &[("email", email), ("password", pw)])
            .await;
        assert_eq!(page.status, 429, "{email}");
        assert!(
            page.body
                .contains("Too many failed sign-ins from this address"),
            "{}",
            page.body
        );
    }
}

#[tokio::test]
async fn failed_sign_ins_beyond_a_hundred_an_hour_become_one_counted_event() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "[dashboard]\nlogin_max_failures_per_client = 1000\n".to_owned(),
        ..Setup::default()
    })
    .await;
    let hour = || time::OffsetDateTime::now_utc().unix_timestamp() / 3600;
    let started = hour();
    let mut browser = sign_in_form(&app).await;
    for i in 0..105 {
        let email = format!("flood{i}@example.org");
        let page = browser
            .submit(
                "/login",
                &[("email", &email), ("password", "wrong-password")],
            )
            .await;
        assert_eq!(page.status, 401, "attempt {i}");
    }
    let same_hour = hour() == started;
    let db = app.stop().await;
    let one_by_one = failed_sign_ins_logged(&db).await;
    let detail = db
        .text("SELECT detail FROM audit_events WHERE kind = 'sign_in_failed_suppressed'")
        .await;
    if same_hour {
        assert_eq!(one_by_one, 100);
        assert!(
            detail.starts_with("5 more failed sign-ins from "),
            "{detail}"
        );
    } else {
        // The flood straddled an hour: each hour caps its own.
        assert!((100..=105).contains(&one_by_one), "{one_by_one}");
    }
}

#[tokio::test]
async fn a_ten_kilobyte_tool_name_is_refused_before_the_policy_the_store_or_the_log() {
    let app =
        TestApp::spawn_with_policy(r#"{"version": "1", "default": "require_approval"}"#).await;
    let session = app.raw_session("2025-06-18").await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "x".repeat(10_000), "arguments": {}}})
    .to_string();
    let answer = messages(app.post_in_session(&session, &call).await).await;
    assert_eq!(answer[0]["error"]["code"], -32602, "{:.200}", answer[0]);
    assert!(
        answer[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too long (10000 bytes; at most 256)")),
        "{:.300}",
        answer[0]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM tool_calls").await, 0);
    let got_to_the_log = "SELECT COUNT(*) FROM audit_events WHERE tool LIKE 'xxxxxxxx%'";
    assert_eq!(app.db.count(got_to_the_log).await, 0);
}
