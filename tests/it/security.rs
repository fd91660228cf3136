//! Attacks on Airlock, each against the real app over real sockets, and the defence that stops it
//! (README, "Security"). Every test is named for the attack.

use crate::common;

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
    let mut body: serde_json::Value =
        serde_json::from_str(&send_message(id)).expect("a JSON request");
    body["params"] = common::with_meta(body["params"].take());
    messages(app.post("telegram", &headers, &body.to_string()).await)
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

/// Every run of token-like text (16 or more of `A-Za-z0-9_-.`) in `bytes`.
fn token_runs(bytes: &[u8]) -> std::collections::BTreeSet<String> {
    let text = String::from_utf8_lossy(bytes);
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .filter(|run| run.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// All the database holds, as bytes: the SQLite file with its WAL (free pages included), or
/// every row of every table of the PostgreSQL schema.
async fn database_dump(app: &TestApp) -> Vec<u8> {
    use sqlx::Connection;
    if let Some(path) = app.db.url.strip_prefix("sqlite://") {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            bytes.extend(std::fs::read(format!("{path}{suffix}")).unwrap_or_default());
        }
        return bytes;
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url)
        .await
        .expect("open the test database");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the tables");
    assert!(tables.len() > 10, "{tables:?}");
    let mut bytes = Vec::new();
    for (table,) in tables {
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {table} t"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("a table's rows");
        for (row,) in rows {
            bytes.extend(row.into_bytes());
            bytes.push(b'\n');
        }
    }
    bytes
}

/// A review link in the format Airlock's first release used, signed with `key`: what a reader
/// of that release's database could make with the key it found there.
fn forged_link(key: &str, call: &str, reviewer: &str, digest: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"call": call, "reviewer": reviewer, "action": "approve",
        "digest": digest, "expires": time::OffsetDateTime::now_utc().unix_timestamp() + 600,
        "nonce": "forged"});
    let payload = engine.encode(claims.to_string());
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", engine.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn nothing_a_reader_of_the_database_finds_approves_a_parked_call() {
    let (app, sink) = reviewed_by_alice().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let _signed_in = app.signed_in("bob@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({"account": "main"}));
    let id = alice.wait_one_pending().await;
    let digest = alice.call(&id).await["args_digest"]
        .as_str()
        .expect("a digest")
        .to_owned();
    // The email went out with working links, minted as it was sent.
    let mail = &sink.wait_for(1, common::WAIT).await[0];
    let text = mail.part("text/plain").expect("a text part");
    let approve = text
        .lines()
        .find_map(|l| l.strip_prefix("Approve: "))
        .expect("an Approve link")
        .trim()
        .to_owned();
    let real_token = approve.rsplit('/').next().expect("a token").to_owned();

    let dump = database_dump(&app).await;
    assert!(dump.len() > 1000, "the dump holds the database");
    let candidates = token_runs(&dump);
    eprintln!(
        "{} candidate secrets in {} bytes",
        candidates.len(),
        dump.len()
    );
    assert!(
        candidates.contains(&id),
        "the dump holds the call ({} candidates)",
        candidates.len()
    );
    assert!(
        !candidates.iter().any(|c| c.contains(&real_token)),
        "the emailed link's token is not stored"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    for candidate in &candidates {
        for path in [
            format!("/review/{candidate}"),
            format!(
                "/review/{}",
                forged_link(candidate, &id, "alice@example.org", &digest)
            ),
        ] {
            let page = http
                .post(app.url(&path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("reason=forged")
                .send()
                .await
                .expect("POST /review");
            assert_ne!(page.status(), 200, "{path} decided something");
        }
        let api = http
            .post(app.url(&format!("/api/v1/calls/{id}/approve")))
            .bearer_auth(candidate)
            .send()
            .await
            .expect("POST approve");
        assert_eq!(api.status(), 401, "{candidate} is a reviewer token");
        let dashboard = http
            .get(app.url("/"))
            .header("cookie", format!("airlock_session={candidate}"))
            .send()
            .await
            .expect("GET /");
        assert_eq!(dashboard.status(), 303, "{candidate} is a session cookie");
    }
    assert_eq!(alice.call(&id).await["status"], "pending");
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    // The mailed link itself still works: the mechanism is intact, only unreadable.
    let mut browser = Dashboard::new(&app.url(""));
    let done = browser
        .post(&format!("/review/{real_token}"), &[("reason", "")])
        .await;
    assert!(done.body.contains("Approved."), "{}", done.body);
    let result = common::result_of(call).await;
    assert!(!common::is_error(&result), "{}", common::text(&result));
}

#[test]
fn the_database_and_its_folder_are_private_and_check_says_when_they_are_not() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("airlock-demo");
    let (mut demo, _banner) = common::start_demo(&data);
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "the demo's folder");
    for file in [
        "airlock.db",
        "airlock.db-wal",
        "airlock.db-shm",
        "audit.key",
    ] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    assert!(data.join("airlock.db").exists());
    let _ = demo.kill();
    let _ = demo.wait();

    // `airlock check` on a database someone made readable, in a folder open to all.
    std::fs::set_permissions(
        data.join("airlock.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let checked = common::run_in(&data, &["check", "--offline"]);
    let report = common::stdout(&checked);
    assert!(
        report.contains("airlock.db can be read by other users (mode 644)")
            && report.contains("chmod 600"),
        "{report}"
    );
    assert!(
        report.contains("is open to other users (mode 755)"),
        "{report}"
    );
}

/// A 2026-07-28 `tools/call` of `export_session` with these arguments: the answer, as text.
async fn stateless_export(app: &TestApp, id: u32, arguments: serde_json::Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": common::with_meta(json!({"name": "export_session", "arguments": arguments}))})
    .to_string();
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "export_session"),
    ];
    let answer = messages(app.post("telegram", &headers, &body).await)
        .await
        .pop()
        .expect("an answer");
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_megabyte_calls_park_nothing_and_mail_nobody() {
    let (app, sink) = emailing("to = [\"ops@example.org\"]\n", Setup::default()).await;
    let app = std::sync::Arc::new(app);
    let megabyte = "A".repeat(1024 * 1024);
    let mut calls = Vec::new();
    for id in 0..100 {
        let (app, megabyte) = (app.clone(), megabyte.clone());
        calls.push(tokio::spawn(async move {
            stateless_export(&app, id, json!({"account": "main", "padding": megabyte})).await
        }));
    }
    let bytes = json!({"account": "main", "padding": megabyte})
        .to_string()
        .len();
    for call in calls {
        let text = call.await.expect("the call ran");
        assert_eq!(
            text,
            format!(
                "Approval required by policy (telegram.export_session), but its arguments are \
                 too large to wait for approval ({bytes} bytes, limit 262144); not run"
            )
        );
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM tool_calls").await, 0);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 0);
    assert!(sink.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_parking_calls_in_a_loop_is_stopped_at_its_limit_and_reviewers_get_one_digest() {
    let (app, sink) = emailing(
        "to = [\"ops@example.org\"]\nnotify_every = 2\n\
         [approval]\nmax_pending_per_agent = 20\nmax_pending = 22\n",
        Setup::default(),
    )
    .await;
    let agent = app.agent().await;
    let mut calls: Vec<_> = (0..25)
        .map(|n| agent.spawn_call("export_session", json!({"account": format!("a{n}")})))
        .collect();
    // Twenty wait; the five beyond the agent's limit are refused at once.
    let mut refused = Vec::new();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while refused.len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{refused:?}");
        let mut waiting = Vec::new();
        for call in calls {
            if call.is_finished() {
                refused.push(common::text(&common::result_of(call).await).to_owned());
            } else {
                waiting.push(call);
            }
        }
        calls = waiting;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(calls.len(), 20);
    for text in &refused {
        assert_eq!(
            text,
            "Approval required by policy (telegram.export_session), but agent test-agent \
             already has 20 calls waiting for a decision; not run"
        );
    }
    // Another agent fits in the room left under max_pending (22), then meets it.
    let token = app.token_for("other-agent").await;
    let other = common::Agent::connect(&app.mcp_url("telegram"), &token).await;
    let _fits: Vec<_> = (0..2)
        .map(|n| other.spawn_call("export_session", json!({"account": format!("b{n}")})))
        .collect();
    let alice = app.reviewer("alice@example.org", "approver").await;
    alice.wait_pending(22).await;
    let over = other.call("export_session", json!({"account": "b2"})).await;
    assert_eq!(
        common::text(&over),
        "Approval required by policy (telegram.export_session), but Airlock already has 22 \
         calls waiting for a decision; not run"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM tool_calls").await, 22);
    // 22 calls, one recipient: the first call's own message, then one digest of the other 21.
    let mails = sink.wait_for(2, common::WAIT).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mails = if sink.mails().len() > mails.len() {
        sink.mails()
    } else {
        mails
    };
    assert_eq!(
        mails.len(),
        2,
        "{:#?}",
        mails
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    let digest = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("more calls"))
        })
        .expect("a digest");
    assert_eq!(
        digest.header("Subject").as_deref(),
        Some("[Airlock] 21 more calls are waiting for a decision")
    );
    let text = digest.part("text/plain").expect("a text part");
    assert_eq!(text.matches("/calls/").count(), 21, "{text}");
    assert!(
        !text.contains("/review/"),
        "a digest has View links only: {text}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
}

#[tokio::test]
async fn the_queue_page_pages_through_every_waiting_call() {
    let app = TestApp::spawn().await;
    for i in 0..130 {
        app.store_waiting_call("claude", "export_session", &format!("{{\"n\": {i}}}"))
            .await;
    }
    let mut browser = app.signed_in("vera@example.org", "viewer").await;
    let first = browser.get("/").await;
    assert!(
        first.body.contains("130 calls are waiting."),
        "{}",
        first.body
    );
    assert!(first.body.contains("<title>(130) Airlock</title>"));
    assert_eq!(first.body.matches("data-call-id=").count(), 100);
    let older = first
        .between("href=\"/?before=", '"')
        .expect("an Older link");
    let second = browser.get(&format!("/?before={older}")).await;
    assert_eq!(second.body.matches("data-call-id=").count(), 30);
    assert!(!second.body.contains("/?before="), "the last page");
    let live = browser.get(&format!("/queue/rows?before={older}")).await;
    assert_eq!(live.body.matches("data-call-id=").count(), 30);
}

/// An app that sends email to an SMTP sink: `[email]` with the sink's URL, a sender and
/// `email_toml` (more keys of that section, then other sections), on top of `setup`.
async fn emailing(email_toml: &str, setup: Setup) -> (TestApp, common::smtp::SmtpSink) {
    let sink = common::smtp::SmtpSink::start().await;
    let extra_toml = format!(
        "{}[email]\nsmtp_url = \"{}\"\nfrom = \"airlock@example.org\"\n{email_toml}",
        setup.extra_toml,
        sink.url()
    );
    let app = TestApp::spawn_with(Setup {
        extra_toml,
        ..setup
    })
    .await;
    (app, sink)
}

/// An app whose `export_session` waits for alice (approver, who is emailed about every call)
/// with an SMTP sink.
async fn reviewed_by_alice() -> (TestApp, common::smtp::SmtpSink) {
    let policy = r#"{"version": "1", "default": "deny", "tools": {"export_session":
        {"action": "require_approval", "notify": ["alice@example.org"]}}}"#;
    emailing(
        "notify_every = 0\n",
        Setup {
            policy: policy.to_owned(),
            ..Setup::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_reviewer_sees_ordinary_paths_and_names_and_reveals_a_masked_field_on_the_record() {
    let (app, sink) = reviewed_by_alice().await;
    let mut alice = app.signed_in("alice@example.org", "approver").await;
    let api = app.reviewer("vera@example.org", "viewer").await;
    let agent = app.agent().await;
    let secret = "hunter2-correct-horse";
    let _call = agent.spawn_call(
        "export_session",
        json!({"path": "/var/www/html/wp-content/uploads/2024/shell.php", "token": "USDC",
               "api key": "abc-123", "pin": "1234", "password": secret}),
    );
    let id = api.wait_one_pending().await;
    assert_eq!(
        api.call(&id).await["arguments"],
        json!({"path": "/var/www/html/wp-content/uploads/2024/shell.php", "token": "USDC",
               "api key": "•••• (redacted)", "pin": "•••• (redacted)",
               "password": "•••• (redacted)"})
    );
    // The email cannot show the masked values, so it offers View only.
    let mail = sink.wait_for(1, common::WAIT).await[0]
        .part("text/plain")
        .expect("a text part");
    assert!(
        mail.contains("shell.php") && mail.contains("•••• (redacted)"),
        "{mail}"
    );
    assert!(!mail.contains("/review/"), "no decision links: {mail}");
    let (page, _) = alice.open_call(&id).await;
    assert!(page.body.contains("shell.php"), "the path is shown");
    assert!(!page.body.contains(secret));
    assert!(page.body.contains("value=\"/password\""), "a reveal button");
    let revealed = alice
        .submit(&format!("/calls/{id}/reveal"), &[("field", "/password")])
        .await;
    assert_eq!(revealed.status, 200, "{}", revealed.body);
    assert!(
        revealed.body.contains(secret),
        "the value is shown to alice"
    );
    assert!(
        revealed
            .body
            .contains("the audit log records that you saw it")
    );
    // Nowhere else: not the next page view, the API, or the audit log.
    let (again, _) = alice.open_call(&id).await;
    assert!(!again.body.contains(secret));
    assert!(!api.call(&id).await.to_string().contains(secret));
    let event = app
        .db
        .text("SELECT actor || ' ' || detail FROM audit_events WHERE kind = 'revealed'")
        .await;
    assert_eq!(event, "alice@example.org field /password");
    let everything = app
        .db
        .count("SELECT COUNT(*) FROM audit_events WHERE detail LIKE '%hunter2%'")
        .await;
    assert_eq!(everything, 0);
    // A viewer cannot, nor can a field that is not masked be "revealed".
    let mut vera = app.signed_in("vera2@example.org", "viewer").await;
    vera.get(&format!("/calls/{id}")).await;
    let refused = vera
        .submit(&format!("/calls/{id}/reveal"), &[("field", "/password")])
        .await;
    assert_eq!(refused.status, 403);
    assert!(!refused.body.contains(secret));
    let not_masked = alice
        .submit(&format!("/calls/{id}/reveal"), &[("field", "/path")])
        .await;
    assert_eq!(not_masked.status, 400);
}

#[tokio::test]
async fn padding_that_pushes_dangerous_fields_out_of_the_email_leaves_it_without_an_approve_link() {
    let (app, sink) = reviewed_by_alice().await;
    let _alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let _short = agent.spawn_call("export_session", json!({"account": "main"}));
    let _padded = agent.spawn_call(
        "export_session",
        json!({"a_padding": "x ".repeat(1500), "z_target": "the whole account"}),
    );
    let mails = sink.wait_for(2, common::WAIT).await;
    let texts: Vec<String> = mails
        .iter()
        .map(|m| m.part("text/plain").expect("a text part"))
        .collect();
    let short = texts
        .iter()
        .find(|t| t.contains("\"main\""))
        .unwrap_or_else(|| panic!("the short call's mail: {texts:#?}"));
    assert!(
        short.contains("Approve: ") && short.contains("/review/"),
        "{short}"
    );
    let padded = texts
        .iter()
        .find(|t| t.contains("shortened"))
        .expect("the padded call's mail");
    assert!(
        !padded.contains("the whole account"),
        "the field was cut: {padded}"
    );
    assert!(!padded.contains("/review/"), "no decision links: {padded}");
    assert!(
        padded.contains("so it has no Approve or\r\nReject link"),
        "{padded}"
    );
    let html = mails
        .iter()
        .filter_map(|m| m.part("text/html"))
        .find(|h| h.contains("shortened"))
        .expect("the padded call's HTML");
    assert!(!html.contains("/review/"), "{html}");
}

#[tokio::test]
async fn bidi_overrides_and_zero_width_characters_are_shown_written_out_not_rendered() {
    let (app, sink) = reviewed_by_alice().await;
    let mut alice = app.signed_in("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let _call = agent.spawn_call(
        "export_session",
        json!({"file": "invoice\u{202e}fdp.exe", "to": "pay\u{200b}pal.com"}),
    );
    let mail = &sink.wait_for(1, common::WAIT).await[0];
    let api = app.reviewer("vera@example.org", "viewer").await;
    let id = api.wait_one_pending().await;
    let (page, _) = alice.open_call(&id).await;
    for shown in [
        page.body.clone(),
        mail.part("text/plain").expect("text"),
        mail.part("text/html").expect("html"),
    ] {
        assert!(
            !shown.contains('\u{202e}') && !shown.contains('\u{200b}'),
            "rendered: {shown}"
        );
        assert!(shown.contains("invoice\\u{202e}fdp.exe"), "{shown}");
        assert!(shown.contains("pay\\u{200b}pal.com"), "{shown}");
    }
    let queue = alice.get("/").await;
    assert!(!queue.body.contains('\u{202e}'), "the queue's preview");
}

/// A JSON-RPC request in a 2025-06-18 session: the answer.
async fn request_in(
    app: &TestApp,
    session: &str,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).to_string();
    messages(app.post_in_session(session, &body).await)
        .await
        .pop()
        .expect("an answer")
}

#[tokio::test]
async fn a_denied_tools_data_cannot_be_had_through_its_prompt_or_a_resource() {
    // get_messages is denied; the prompt that quotes the same messages and the profile resource
    // are not listed, and the policy denies what it does not list.
    let app = TestApp::spawn_with_policy(
        r#"{"version": "1", "default": "deny", "tools": {
              "get_messages": {"action": "deny", "reason": "private messages"}},
            "resources": {"telegram://account/*": {"action": "require_approval"}}}"#,
    )
    .await;
    let session = app.raw_session("2025-06-18").await;
    let chat = json!({"name": "summarize_chat", "arguments": {"chat_id": "1297381004"}});
    let cases = [
        (
            "prompts/get",
            chat.clone(),
            "Denied by policy (telegram.summarize_chat): not listed in the policy (default: deny)",
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "summarize_chat"},
                "argument": {"name": "chat_id", "value": "1"}}),
            "Denied by policy (telegram.summarize_chat): not listed in the policy (default: deny)",
        ),
        (
            "resources/read",
            json!({"uri": "telegram://account/profile"}),
            "Approval required by policy (telegram.telegram://account/profile), but only tool calls \
          can wait for approval; not run",
        ),
        (
            "resources/subscribe",
            json!({"uri": "telegram://account/profile"}),
            "Approval required by policy (telegram.telegram://account/profile), but only tool calls \
          can wait for approval; not run",
        ),
        (
            "admin/dump_everything",
            json!({}),
            "Denied by policy (telegram.admin/dump_everything): not listed in the policy (default: deny)",
        ),
    ];
    for (method, params, text) in cases {
        let answer = request_in(&app, &session, method, params).await;
        assert_eq!(answer["id"], 9);
        assert_eq!(answer["error"]["code"], -32003, "{method}: {answer}");
        assert_eq!(answer["error"]["message"], text, "{method}");
        assert!(
            !answer.to_string().contains("Alice"),
            "no transcript: {answer}"
        );
    }
    // A URI that could name another resource to an upstream that resolves it is not judged.
    let sneaky = request_in(
        &app,
        &session,
        "resources/read",
        json!({"uri": "telegram://account/x/../profile"}),
    )
    .await;
    assert_eq!(sneaky["error"]["code"], -32602, "{sneaky}");
    let upper = request_in(
        &app,
        &session,
        "resources/read",
        json!({"uri": "TELEGRAM://ACCOUNT/%70rofile"}),
    )
    .await;
    assert_eq!(upper["error"]["code"], -32003, "the same resource: {upper}");
    // Listings still work, and the refusals are in the audit log.
    let listed = request_in(&app, &session, "prompts/list", json!({})).await;
    assert_eq!(listed["result"]["prompts"][0]["name"], "summarize_chat");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while app
        .db
        .count("SELECT COUNT(*) FROM audit_events WHERE kind = 'denied'")
        .await
        < 5
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusals were not audited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Listed, the prompt passes; under default allow, unlisted requests pass too.
    std::fs::write(
        &app.policy_path,
        r#"{"version": "1", "default": "deny", "prompts": {"summarize_chat": {}}}"#,
    )
    .expect("edit the policy");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let answer = request_in(&app, &session, "prompts/get", chat.clone()).await;
        if answer["result"]["messages"].is_array() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A stdio MCP server (Python) whose every tool call fails with a JSON-RPC error quoting the
/// call's arguments, as careless servers do.
const QUOTING_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg or "method" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "quoting", "version": "1"}}
        reply = {"jsonrpc": "2.0", "id": msg["id"], "result": result}
    elif msg["method"] == "tools/list":
        reply = {"jsonrpc": "2.0", "id": msg["id"], "result": {"tools": []}}
    else:
        text = "cannot use " + json.dumps(msg.get("params", {}).get("arguments"))
        reply = {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32000, "message": text}}
    print(json.dumps(reply), flush=True)
"#;

#[tokio::test]
async fn an_upstream_error_quoting_a_configured_secret_is_masked_in_the_audit_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("quoting.py");
    std::fs::write(&script, QUOTING_SERVER).expect("write the server");
    let policy = dir.path().join("quoting.json");
    std::fs::write(&policy, r#"{"version": "1", "default": "allow"}"#).expect("write the policy");
    let app = TestApp::spawn_with(Setup {
        extra_toml: "[redaction]\nprefixes = [\"acme-live-\"]\n".to_owned(),
        upstreams: vec![airlock::config::UpstreamConfig {
            name: "quoting".to_owned(),
            command: Some(vec!["python3".to_owned(), script.display().to_string()]),
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
    let session = app.raw_session_on("quoting", "2025-06-18").await;
    // The upstream quotes the argument back: a secret of this deployment's, which its own
    // [redaction] prefix masks (the built-in rules would not).
    let secret = "acme-live-7f3a9";
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "charge", "arguments": {"key": "k", "note": secret}}})
    .to_string();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let answer = messages(app.post("quoting", &headers, &call).await).await;
    assert_eq!(answer[0]["error"]["code"], -32000, "{answer:?}");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let detail = loop {
        let detail = app
            .db
            .text("SELECT detail FROM audit_events WHERE kind = 'failed'")
            .await;
        if !detail.is_empty() {
            break detail;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed event");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        detail.starts_with("the upstream answered with error -32000"),
        "{detail}"
    );
    assert!(!detail.contains(secret), "{detail}");
    assert!(detail.contains("•••• (redacted)"), "{detail}");
}

#[tokio::test]
async fn an_admin_resetting_a_password_gets_no_sign_in_and_the_user_a_one_time_link() {
    let (app, sink) = emailing("", Setup::default()).await;
    let mut admin = app.signed_in("root@example.org", "admin").await;
    let carol_password = app
        .user_with_password("carol@example.org", "approver")
        .await;
    let carol_token = airlock::secrets::generate_token().expect("randomness");
    let carol = app
        .store
        .user_by_email("carol@example.org")
        .await
        .expect("store")
        .expect("carol");
    app.store
        .add_user_token(
            &carol,
            &airlock::secrets::sha256_hex(carol_token.as_bytes()),
        )
        .await
        .expect("carol's API token");
    let api = |token: String| {
        let url = app.url("/api/v1/calls");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("GET the API")
                .status()
        }
    };
    assert_eq!(api(carol_token.clone()).await, 200);

    admin.get("/users").await;
    let reset = admin
        .submit(&format!("/users/{}/password", carol.id), &[])
        .await;
    assert_eq!(reset.status, 200);
    assert!(reset.body.contains("was emailed a link"), "{}", reset.body);
    assert!(
        reset.between("id=\"new-password\">", '<').is_none(),
        "no password for the admin"
    );
    // Her old password and her API token end with the reset.
    let mut browser = Dashboard::new(&app.url(""));
    assert_eq!(
        browser
            .sign_in("carol@example.org", &carol_password)
            .await
            .status,
        401
    );
    assert_eq!(api(carol_token).await, 401);
    // The admin reading the outbox sees the message, not the link.
    let outbox = admin.get("/outbox").await;
    let mail_id = outbox.between("data-mail=\"", '"').expect("the message");
    let shown = admin.get(&format!("/outbox/{mail_id}")).await;
    assert!(
        shown
            .body
            .contains("[a set-password link for the recipient only]"),
        "{}",
        shown.body
    );
    assert!(!shown.body.contains("/set-password/rl_"));

    let mail = &sink.wait_for(1, common::WAIT).await[0];
    assert_eq!(mail.to, ["carol@example.org"]);
    let text = mail.part("text/plain").expect("a text part");
    let link = text
        .lines()
        .find(|l| l.contains("/set-password/"))
        .expect("a set-password link")
        .trim()
        .to_owned();
    let path = &link[link.find("/set-password/").expect("a path")..];
    let form = browser.get(path).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("carol@example.org"));
    let new = "a-brand-new-password-for-carol";
    let set = browser
        .submit(path, &[("new", new), ("confirm", new)])
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    assert_eq!(browser.sign_in("carol@example.org", new).await.status, 303);
    // Once.
    let again = Dashboard::new(&app.url("")).get(path).await;
    assert_eq!(again.status, 410);
    let events = app
        .db
        .count("SELECT COUNT(*) FROM audit_events WHERE kind IN ('password_reset', 'password_set')")
        .await;
    assert_eq!(events, 2);
}

#[tokio::test]
async fn a_second_reset_voids_the_first_reset_email_still_waiting_to_be_sent() {
    // Nothing listens on the SMTP port: the first reset's email waits in the outbox.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("an address").port()
    };
    let app = TestApp::spawn_with(Setup {
        extra_toml: format!(
            "[email]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\nfrom = \"airlock@example.org\"\n"
        ),
        ..Setup::default()
    })
    .await;
    let mut admin = app.signed_in("root@example.org", "admin").await;
    app.user_with_password("carol@example.org", "approver")
        .await;
    let carol = app
        .store
        .user_by_email("carol@example.org")
        .await
        .expect("store")
        .expect("carol");
    admin.get("/users").await;
    for _ in 0..2 {
        let reset = admin
            .submit(&format!("/users/{}/password", carol.id), &[])
            .await;
        assert!(reset.body.contains("was emailed a link"), "{}", reset.body);
    }
    let statuses = "SELECT COUNT(*) FROM outbox WHERE kind = 'password' AND status = 'cancelled'";
    assert_eq!(app.db.count(statuses).await, 1, "the first is cancelled");
    let live = "SELECT COUNT(*) FROM outbox WHERE kind = 'password' AND status <> 'cancelled'";
    assert_eq!(app.db.count(live).await, 1, "the second will be sent");
}

#[tokio::test]
async fn a_changed_password_ends_the_api_tokens_made_with_the_old_one() {
    let app = TestApp::spawn().await;
    let reviewer = app.reviewer("dana@example.org", "approver").await;
    assert_eq!(reviewer.get("/api/v1/calls").await.0, 200);
    let user = app
        .store
        .user_by_email("dana@example.org")
        .await
        .expect("store")
        .expect("dana");
    let old = "the-old-password-of-dana";
    app.store
        .set_password_hash(
            &user.id,
            &airlock::secrets::hash_password(old).expect("hash"),
        )
        .await
        .expect("a password");
    let mut browser = Dashboard::new(&app.url(""));
    assert_eq!(browser.sign_in("dana@example.org", old).await.status, 303);
    browser.get("/account").await;
    let new = "the-new-password-of-dana";
    let changed = browser
        .submit(
            "/account/password",
            &[("current", old), ("new", new), ("confirm", new)],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(reviewer.get("/api/v1/calls").await.0, 401);
    // The same from the command line.
    let second = app.reviewer("erin@example.org", "approver").await;
    let out = app.cli(&["user", "password", "erin@example.org"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(second.get("/api/v1/calls").await.0, 401);
}

#[tokio::test]
async fn metrics_and_readiness_detail_need_the_operator_token_when_one_is_set() {
    let token = "ops-token-for-the-test";
    let app = TestApp::spawn_with(Setup {
        extra_toml: format!(
            "ops_token_sha256 = \"{}\"\n",
            airlock::secrets::sha256_hex(token.as_bytes())
        ),
        ..Setup::default()
    })
    .await;
    let http = reqwest::Client::new();
    let get = |path: &str, bearer: Option<&str>| {
        let mut request = http.get(app.url(path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    let anonymous = get("/metrics", None).await.expect("GET /metrics");
    assert_eq!(anonymous.status(), 401);
    assert!(!anonymous.text().await.expect("a body").contains("airlock_"));
    assert_eq!(
        get("/metrics", Some("wrong")).await.expect("GET").status(),
        401
    );
    let operator = get("/metrics", Some(token)).await.expect("GET /metrics");
    assert_eq!(operator.status(), 200);
    assert!(
        operator
            .text()
            .await
            .expect("a body")
            .contains("airlock_sessions")
    );
    // Readiness answers everyone (load balancers), its detail only the operator.
    let (status, body) = app.readyz().await;
    assert_eq!((status, body.clone()), (200, json!({"ready": true})));
    let detail: serde_json::Value = get("/readyz", Some(token))
        .await
        .expect("GET /readyz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(detail["upstreams"]["telegram"]["policy"], "ok", "{detail}");
    assert_eq!(get("/healthz", None).await.expect("GET").status(), 200);
}

#[test]
fn a_password_for_plain_smtp_to_another_host_stops_start_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("airlock.toml"),
        "[email]\nsmtp_url = \"smtp://relay@mail.example.org:25\"\nfrom = \"a@example.org\"\n\
         password = \"hunter2\"\n",
    )
    .expect("write the config");
    for command in [&["check", "--offline"][..], &["serve"][..]] {
        let out = common::run_in(dir.path(), command);
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(
                "email.smtp_url: a password would travel unencrypted to mail.example.org"
            ),
            "{said}"
        );
        assert!(!said.contains("hunter2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_listener_open() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn_with(Setup {
        extra_toml: "max_connections = 3\nheader_timeout = 1\nbody_timeout = 1\n".to_owned(),
        ..Setup::default()
    })
    .await;
    // Three clients that send half a request head and then nothing take every connection.
    let opened = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        tcp.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", app.addr).as_bytes())
            .await
            .expect("half a head");
        slow.push(tcp);
    }
    // A fourth client waits for a free connection ...
    let url = app.url("/healthz");
    let fourth = tokio::spawn(async move {
        let status = reqwest::get(url).await.expect("GET /healthz").status();
        (status, std::time::Instant::now())
    });
    // ... which comes when the header timeout (1 s) cuts the slow ones off, and not before.
    for mut tcp in slow {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(common::WAIT, tcp.read(&mut buf))
            .await
            .expect("the connection is closed in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the server closed it: {read:?}"
        );
    }
    let (status, served) = fourth.await.expect("the fourth client");
    assert_eq!(status, 200);
    assert!(
        served.duration_since(opened) >= std::time::Duration::from_millis(900),
        "served only once the header timeout freed a connection"
    );
    // A body trickled byte by byte is cut off too, and the request fails.
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /mcp/telegram HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        app.addr, app.token
    );
    tcp.write_all(head.as_bytes()).await.expect("the head");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(started.elapsed() < common::WAIT, "cut off, not waited out");
}

/// A stdio MCP server (Python) whose `note` tool logs its text as a notification not tied to any
/// request (as servers log), then answers.
const LOGGING_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg or "method" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}, "logging": {}},
                  "serverInfo": {"name": "logging", "version": "1"}}
    elif msg["method"] == "tools/list":
        result = {"tools": [{"name": "note", "inputSchema": {"type": "object"}}]}
    else:
        text = msg["params"]["arguments"]["text"]
        note = {"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": text}}
        print(json.dumps(note), flush=True)
        result = {"content": [{"type": "text", "text": "noted"}]}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"#;

/// What agent B's GET stream received before B's own note arrived on it, when agent A logs a
/// secret first, on an upstream with this `isolation`.
async fn seen_by_another_agent(isolation: airlock::config::Isolation) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("logging.py");
    std::fs::write(&script, LOGGING_SERVER).expect("write the server");
    let policy = dir.path().join("logging.json");
    std::fs::write(&policy, r#"{"version": "1", "default": "allow"}"#).expect("write the policy");
    let app = TestApp::spawn_with(Setup {
        upstreams: vec![airlock::config::UpstreamConfig {
            name: "logging".to_owned(),
            command: Some(vec!["python3".to_owned(), script.display().to_string()]),
            env: Default::default(),
            url: None,
            headers: Default::default(),
            policy: Some(policy),
            isolation: Some(isolation),
            new_tools: Default::default(),
        }],
        ..Setup::default()
    })
    .await;
    let b_token = airlock::secrets::generate_token().expect("randomness");
    app.store
        .add_agent_token("agent-b", &airlock::secrets::sha256_hex(b_token.as_bytes()))
        .await
        .expect("agent b");
    let http = reqwest::Client::new();
    let url = app.mcp_url("logging");
    let open = |token: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}});
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .json(&init)
                .send()
                .await
                .expect("initialize");
            let session = r.headers()["mcp-session-id"]
                .to_str()
                .expect("ascii")
                .to_owned();
            let _ = r.text().await;
            (token, session)
        }
    };
    let note = |(token, session): (String, String), text: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "note", "arguments": {"text": text}}});
            http.post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json")
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", "2025-06-18")
                .json(&call)
                .send()
                .await
                .expect("tools/call")
                .text()
                .await
                .expect("an answer")
        }
    };
    let a = open(app.token.clone()).await;
    let b = open(b_token).await;
    let mut stream = http
        .get(&url)
        .bearer_auth(&b.0)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &b.1)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .expect("B's GET stream");
    assert_eq!(stream.status(), 200);
    assert!(note(a.clone(), "secret-of-agent-a").await.contains("noted"));
    // B's own note reaches B's stream; whatever came before it is what B could see of A's.
    assert!(note(b.clone(), "from-agent-b").await.contains("noted"));
    let mut seen = String::new();
    while !seen.contains("from-agent-b") {
        let chunk = tokio::time::timeout(common::WAIT, stream.chunk())
            .await
            .expect("B's stream in time")
            .expect("a chunk")
            .expect("the stream is open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agents_log_lines_reach_another_only_when_they_share_a_child() {
    // Shared (the default): one process for everyone, and its log lines go to every session.
    let shared = seen_by_another_agent(airlock::config::Isolation::Shared).await;
    assert!(shared.contains("secret-of-agent-a"), "{shared}");
    // One child per agent: agent B never sees agent A's.
    let apart = seen_by_another_agent(airlock::config::Isolation::Agent).await;
    assert!(!apart.contains("secret-of-agent-a"), "{apart}");
}

/// Opens a connection and asks for `/healthz` on it: the stream if it was answered 200, `None` if
/// the server closed it unanswered.
async fn served_connection(addr: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = tcp
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(common::WAIT, tcp.read(&mut buf))
        .await
        .expect("answered or closed in time");
    match read {
        Ok(n) if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") => Some(tcp),
        Ok(0) | Err(_) => None,
        Ok(n) => panic!(
            "neither served nor closed: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

/// A served connection, retried while an earlier one from this address (the harness's readiness
/// check, or one just dropped) has not yet been seen closing by the server.
async fn served_connection_soon(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        if let Some(tcp) = served_connection(addr).await {
            return tcp;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_connection() {
    let app = TestApp::spawn_with(Setup {
        extra_toml: "max_connections = 8\nmax_connections_per_client = 2\n".to_owned(),
        ..Setup::default()
    })
    .await;
    // Two idle connections are this client's share; a third is closed at once.
    let mut held = vec![
        served_connection_soon(app.addr).await,
        served_connection_soon(app.addr).await,
    ];
    assert!(
        served_connection(app.addr).await.is_none(),
        "a third connection is closed unanswered"
    );
    // Once one of its connections closes, the client gets one again.
    drop(held.pop());
    served_connection_soon(app.addr).await;
}

#[tokio::test]
async fn a_rebound_page_cannot_read_the_operator_endpoints() {
    let app = TestApp::spawn().await;
    for path in ["/metrics", "/readyz", "/healthz"] {
        let refused = reqwest::Client::new()
            .get(app.url(path))
            .header("host", "evil.example.com")
            .send()
            .await
            .expect("GET");
        assert_eq!(refused.status(), 403, "{path}");
    }
    assert_eq!(app.readyz().await.0, 200, "its own name is served");
}
