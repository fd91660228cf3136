//! The audit log: every step of a parked call lands in a hash chain, in order, with who did it;
//! `airlock audit verify` passes on an untouched database and names the first event that was
//! edited, deleted, reordered or cut off (the rows are changed with plain SQL, as an intruder
//! with database access would).

mod common;

use common::{TestApp, result_of, text};
use serde_json::json;

/// (kind, actor, via) of each audit event of call `id`.
async fn trail(app: &TestApp, id: &str) -> Vec<(String, String, String)> {
    app.store
        .audit_events_of_call(id)
        .await
        .expect("read the audit log")
        .into_iter()
        .map(|e| (e.kind, e.actor, e.via))
        .collect()
}

fn owned(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(k, a, v)| ((*k).to_owned(), (*a).to_owned(), (*v).to_owned()))
        .collect()
}

/// (kind, actor, detail) of every event in the log, in order.
async fn entries(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    app.store
        .audit_events_after(0, 100)
        .await
        .expect("the log")
        .into_iter()
        .map(|e| (e.kind, e.actor, e.detail))
        .collect()
}

/// Runs `sql` against the log, then expects `audit verify` to fail saying `why`.
async fn assert_broken_by(app: &TestApp, sql: &[&'static str], why: &str) {
    for statement in sql {
        app.db.execute(statement, &[]).await;
    }
    let (intact, said) = verify(app).await;
    assert!(!intact, "{said}");
    assert!(said.contains(why), "{said}");
}

async fn verify(app: &TestApp) -> (bool, String) {
    let output = app.cli(&["audit", "verify"]).await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[tokio::test]
async fn each_outcome_of_a_parked_call_is_in_the_chain_in_order_with_its_actors() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    let approved = agent.spawn_call("export_session", json!({}));
    let id = alice.wait_one_pending().await;
    let (status, _) = alice.decide(&id, "approve", Some("ticket 7")).await;
    assert_eq!(status, 200);
    result_of(approved).await;
    alice.wait_status(&id, "completed").await;
    assert_eq!(
        trail(&app, &id).await,
        owned(&[
            ("pending", "agent:test-agent", "mcp"),
            ("approval", "alice@example.org", "api"),
            ("approved", "alice@example.org", "api"),
            ("forwarding", "system", "system"),
            ("completed", "system", "system"),
        ])
    );
    let events = app.store.audit_events_of_call(&id).await.expect("events");
    let completed = events
        .last()
        .and_then(|e| e.detail.clone())
        .unwrap_or_default();
    assert!(
        completed.starts_with("result of ") && completed.contains("bytes, SHA-256 "),
        "the result's size and digest, never the result: {completed}"
    );
    assert!(!completed.contains("1BVtsOK"), "{completed}");
    assert!(
        events
            .iter()
            .all(|e| e.tool.as_deref() == Some("export_session")
                && e.upstream.as_deref() == Some("telegram")
                && e.args_digest.as_deref() == Some(airlock::secrets::sha256_hex(b"{}").as_str()))
    );

    let rejected = agent.spawn_call("export_session", json!({"x": 1}));
    let id = alice.wait_one_pending().await;
    let (status, _) = alice.reject(&id, "no").await;
    assert_eq!(status, 200);
    assert_eq!(
        text(&result_of(rejected).await),
        "Rejected by alice@example.org: no"
    );
    let rows = trail(&app, &id).await;
    assert_eq!(
        rows,
        owned(&[
            ("pending", "agent:test-agent", "mcp"),
            ("rejected", "alice@example.org", "api"),
        ])
    );
    let reason = app.store.audit_events_of_call(&id).await.expect("events")[1]
        .detail
        .clone();
    assert_eq!(reason.as_deref(), Some("no"), "the reviewer's reason");

    let (intact, said) = verify(&app).await;
    assert!(intact, "{said}");
    assert!(said.contains("audit log intact: 7 events"), "{said}");
}

/// An app whose audit log holds a parked call that was rejected (events 1 and 2) and another
/// that was rejected (3 and 4).
async fn app_with_four_events() -> TestApp {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    for reason in ["first", "second"] {
        let call = agent.spawn_call("export_session", json!({}));
        let id = alice.wait_one_pending().await;
        assert_eq!(alice.reject(&id, reason).await.0, 200);
        result_of(call).await;
    }
    let (intact, said) = verify(&app).await;
    assert!(intact && said.contains("4 events"), "{said}");
    app
}

#[tokio::test]
async fn an_edited_reason_breaks_the_chain_at_that_event() {
    let app = app_with_four_events().await;
    let edit = "UPDATE audit_events SET detail = 'approved after all' WHERE seq = 2";
    assert_broken_by(&app, &[edit], "audit event 2 was edited").await;
}

#[tokio::test]
async fn a_deleted_event_is_named() {
    let app = app_with_four_events().await;
    let delete = "DELETE FROM audit_events WHERE seq = 2";
    assert_broken_by(&app, &[delete], "audit event 2 is missing").await;

    let app = app_with_four_events().await;
    let delete = "DELETE FROM audit_events WHERE seq = 4";
    assert_broken_by(
        &app,
        &[delete],
        "the newest audit events after 3 were deleted",
    )
    .await;
}

#[tokio::test]
async fn swapped_events_are_found() {
    let app = app_with_four_events().await;
    let swap = [
        "UPDATE audit_events SET seq = 0 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 0",
    ];
    assert_broken_by(&app, &swap, "audit event 2 does not follow event 1").await;
}

#[tokio::test]
async fn a_sensitive_call_that_cannot_be_audited_is_refused_and_not_run() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let waiting = agent.spawn_call("export_session", json!({}));
    let id = alice.wait_one_pending().await;
    // The audit log becomes unwritable: nothing it should record may happen.
    app.db.execute("DROP TABLE audit_events", &[]).await;

    let refused = agent.call("export_session", json!({})).await;
    assert!(common::is_error(&refused));
    assert!(
        text(&refused).contains("cannot record the call right now; not run"),
        "{}",
        text(&refused)
    );
    let (status, body) = alice.approve(&id).await;
    assert_eq!(
        status, 503,
        "an approval that cannot be audited is not made: {body}"
    );
    assert_eq!(alice.call(&id).await["status"], "pending");
    assert_eq!(app.call_log.calls_of("export_session"), 0, "nothing ran");
    drop(waiting);
}

#[tokio::test]
async fn the_export_streams_the_log_as_json_lines_or_csv_and_can_be_checked_without_the_database() {
    let app = app_with_four_events().await;
    let jsonl = app.cli(&["audit", "export", "--format", "jsonl"]).await;
    assert!(
        jsonl.status.success(),
        "{}",
        String::from_utf8_lossy(&jsonl.stderr)
    );
    let events: Vec<airlock::audit::AuditEvent> = String::from_utf8_lossy(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect();
    assert_eq!(events.len(), 4);
    // A third party holding only the file re-computes every link.
    let mut previous = airlock::audit::GENESIS.to_owned();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as i64 + 1);
        assert_eq!(event.prev_hash, previous);
        assert_eq!(event.expected_hash(), event.hash, "event {}", event.seq);
        previous.clone_from(&event.hash);
    }

    let csv = app.cli(&["audit", "export", "--format", "csv"]).await;
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("seq,at,kind,actor,via,upstream,tool,call_id,args_digest,detail,prev_hash,hash")
    );
    assert_eq!(lines.count(), 4);

    for (args, expected) in [
        (vec!["--tool", "export_session"], 4),
        (vec!["--tool", "get_chats"], 0),
        (vec!["--agent", "test-agent"], 4),
        (vec!["--agent", "someone-else"], 0),
        (vec!["--since", "2999-01-01"], 0),
        (vec!["--until", "2999-01-01T00:00:00Z"], 4),
    ] {
        let mut line = vec!["audit", "export"];
        line.extend(&args);
        let output = app.cli(&line).await;
        assert!(output.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).lines().count(),
            expected,
            "{args:?}"
        );
    }
    let bad = app.cli(&["audit", "export", "--format", "xml"]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use jsonl or csv"));
}

#[tokio::test]
async fn sign_ins_and_user_and_token_changes_are_in_the_chain() {
    let app = TestApp::spawn().await;
    let mut admin = app.signed_in("root@example.org", "admin").await;
    let mut stranger = common::dashboard::Dashboard::new(&app.url(""));
    assert_eq!(
        stranger
            .sign_in("root@example.org", "wrong password")
            .await
            .status,
        401
    );
    admin.get("/users").await;
    admin
        .submit(
            "/users/add",
            &[("email", "carol@example.org"), ("role", "viewer")],
        )
        .await;
    admin.get("/account").await;
    admin
        .submit("/account/tokens", &[("label", "laptop")])
        .await;
    let events = entries(&app).await;
    let expected = [
        ("sign_in", "root@example.org", None),
        ("sign_in_failed", "root@example.org", None),
        (
            "user_added",
            "root@example.org",
            Some("carol@example.org as viewer"),
        ),
        ("token_created", "root@example.org", Some("label laptop")),
    ];
    assert_eq!(
        events,
        expected
            .iter()
            .map(|(k, a, d)| ((*k).to_owned(), (*a).to_owned(), d.map(str::to_owned)))
            .collect::<Vec<_>>()
    );
    let (intact, said) = verify(&app).await;
    assert!(intact, "{said}");
}

#[tokio::test]
async fn the_session_string_export_session_returns_is_stored_nowhere() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = alice.wait_one_pending().await;
    assert_eq!(alice.approve(&id).await.0, 200);
    let secret = text(&result_of(call).await).to_owned();
    assert!(secret.len() > 40, "the demo's session string: {secret}");
    alice.wait_status(&id, "completed").await;

    let export = app.cli(&["audit", "export"]).await;
    assert!(!String::from_utf8_lossy(&export.stdout).contains(&secret));
    assert!(!alice.call(&id).await.to_string().contains(&secret));
    if let Some(path) = app.db.url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        let main = std::fs::read(path).expect("the SQLite file");
        let wal = std::fs::read(format!("{path}-wal")).unwrap_or_default();
        let holds = |bytes: &[u8], needle: &str| {
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        };
        assert!(
            holds(&main, &id) || holds(&wal, &id),
            "the files read hold the call (so they are the real database)"
        );
        for (file, bytes) in [("the database", main), ("its WAL", wal)] {
            assert!(!holds(&bytes, &secret), "{file} holds the session string");
        }
    }
}

#[tokio::test]
async fn user_and_token_changes_on_the_command_line_are_in_the_chain_as_cli() {
    let app = TestApp::spawn().await;
    for args in [
        &["user", "add", "dana@example.org", "--role", "approver"][..],
        &["user", "password", "dana@example.org"][..],
        &["user", "token", "dana@example.org"][..],
        &["token", "create", "--agent", "ci-bot"][..],
    ] {
        let output = app.cli(args).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let events = entries(&app).await;
    let expected = [
        ("user_added", "dana@example.org as approver"),
        ("password_reset", "dana@example.org"),
        ("token_created", "dana@example.org"),
        ("agent_token_created", "agent ci-bot"),
    ];
    assert_eq!(
        events,
        expected
            .iter()
            .map(|(k, d)| ((*k).to_owned(), "cli".to_owned(), Some((*d).to_owned())))
            .collect::<Vec<_>>()
    );
    let (intact, said) = verify(&app).await;
    assert!(intact, "{said}");
}
