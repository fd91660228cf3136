//! The audit log: every step of a parked call lands in a hash chain, in order, with who did it;
//! `airlock audit verify` passes on an untouched database and names the first event that was
//! edited, deleted, reordered or cut off (the rows are changed with plain SQL, as an intruder
//! with database access would).

use crate::common;

use common::{TestApp, result_of, text};
use serde_json::{Value, json};

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

/// (kind, actor, detail) of every event in the log after the policy the app started with, in
/// order.
async fn entries(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let events = app.store.audit_events_after(0, 100).await.expect("the log");
    assert_eq!(
        events[0].kind, "policy_loaded",
        "a run starts with its policies"
    );
    events
        .into_iter()
        .skip(1)
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

/// How many events a JSON-lines export printed (its closing checkpoint line aside).
fn event_lines(output: &std::process::Output) -> usize {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .count()
}

async fn verify(app: &TestApp) -> (bool, String) {
    outcome(&app.cli(&["audit", "verify"]).await)
}

/// Whether a command succeeded, and all it said.
fn outcome(output: &std::process::Output) -> (bool, String) {
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
    assert!(said.contains("audit log intact: 8 events"), "{said}");
}

/// An app whose audit log holds its policy (event 1), a parked call that was rejected (events 2
/// and 3) and another that was rejected (4 and 5).
async fn app_with_four_events() -> TestApp {
    app_with_four_events_in(common::Setup::default()).await
}

async fn app_with_four_events_in(setup: common::Setup) -> TestApp {
    let app = TestApp::spawn_with(setup).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    for reason in ["first", "second"] {
        let call = agent.spawn_call("export_session", json!({}));
        let id = alice.wait_one_pending().await;
        assert_eq!(alice.reject(&id, reason).await.0, 200);
        result_of(call).await;
    }
    let (intact, said) = verify(&app).await;
    assert!(intact && said.contains("5 events"), "{said}");
    app
}

#[tokio::test]
async fn an_edited_reason_breaks_the_chain_at_that_event() {
    let app = app_with_four_events().await;
    let edit = "UPDATE audit_events SET detail = 'approved after all' WHERE seq = 3";
    assert_broken_by(&app, &[edit], "audit event 3 was edited").await;
}

#[tokio::test]
async fn a_deleted_event_is_named() {
    let app = app_with_four_events().await;
    let delete = "DELETE FROM audit_events WHERE seq = 3";
    assert_broken_by(&app, &[delete], "audit event 3 is missing").await;

    let app = app_with_four_events().await;
    let delete = "DELETE FROM audit_events WHERE seq = 5";
    assert_broken_by(
        &app,
        &[delete],
        "the newest audit events after 4 were deleted",
    )
    .await;
}

#[tokio::test]
async fn swapped_events_are_found() {
    let app = app_with_four_events().await;
    let swap = [
        "UPDATE audit_events SET seq = 0 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = 0",
    ];
    assert_broken_by(&app, &swap, "audit event 3 does not follow event 2").await;
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

    let refused = agent
        .call("export_session", json!({"account": "another"}))
        .await;
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
    let stdout = String::from_utf8_lossy(&jsonl.stdout).into_owned();
    let (events, checkpoint) = stdout.trim_end().rsplit_once('\n').expect("lines");
    let events: Vec<airlock::audit::AuditEvent> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect();
    assert_eq!(events.len(), 5);
    let checkpoint: Value = serde_json::from_str(checkpoint).expect("the checkpoint line");
    assert_eq!(checkpoint["checkpoint"]["seq"], 5);
    assert_eq!(checkpoint["checkpoint"]["hash"], events[4].hash.as_str());
    assert_eq!(
        checkpoint["checkpoint"]["signature"],
        Value::Null,
        "no key configured"
    );
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
    assert_eq!(lines.count(), 5);

    for (args, expected) in [
        (vec!["--tool", "export_session"], 4),
        (vec!["--tool", "get_chats"], 0),
        (vec!["--agent", "test-agent"], 4),
        (vec!["--agent", "someone-else"], 0),
        (vec!["--since", "2999-01-01"], 0),
        (vec!["--until", "2999-01-01T00:00:00Z"], 5),
    ] {
        let mut line = vec!["audit", "export"];
        line.extend(&args);
        let output = app.cli(&line).await;
        assert!(output.status.success(), "{args:?}");
        assert_eq!(event_lines(&output), expected, "{args:?}");
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
        ("sign_in_failed", "root@example.org", Some("from 127.0.0.1")),
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

/// Every event after the policy the app started with, once there are `n` (calls the policy
/// decides alone are written by a batching task, a moment after they happen).
async fn wait_events(app: &TestApp, n: usize) -> Vec<airlock::audit::AuditEvent> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = app
            .store
            .audit_events_after(1, 1000)
            .await
            .expect("the log");
        if events.len() >= n || tokio::time::Instant::now() > deadline {
            assert_eq!(events.len(), n, "events: {events:#?}");
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn calls_the_policy_decides_alone_are_in_the_chain_with_how_they_ended() {
    let policy = r#"{ "version": "1", "default": "deny", "tools": {
        "get_chats": {},
        "send_message": { "rate_limit": { "max": 1, "window": 60 } },
        "delete_chat": { "action": "deny", "reason": "never from an agent" },
        "no_such_tool": {} } }"#;
    let app = TestApp::spawn_with_policy(policy).await;
    let agent = app.agent().await;
    let listed = agent.call("get_chats", json!({"limit": 2})).await;
    assert!(!common::is_error(&listed));
    let denied = agent.call("delete_chat", json!({"chat_id": 1})).await;
    let sent = agent
        .call("send_message", json!({"chat_id": 1297381004, "text": "hi"}))
        .await;
    assert!(!common::is_error(&sent), "{}", text(&sent));
    let limited = agent
        .call(
            "send_message",
            json!({"chat_id": 1297381004, "text": "again"}),
        )
        .await;
    let unlisted = agent.call("get_secret", json!({})).await;
    let missing = agent
        .client
        .call_tool(common::call_params("no_such_tool", json!({})))
        .await;
    assert!(
        missing.is_err() || missing.as_ref().is_ok_and(common::is_error),
        "the upstream has no such tool: {missing:?}"
    );

    let events = wait_events(&app, 9).await;
    let rows: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                e.actor.as_str(),
                e.via.as_str(),
                e.tool.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("allowed", "agent:test-agent", "mcp", "get_chats"),
            ("completed", "system", "system", "get_chats"),
            ("denied", "agent:test-agent", "mcp", "delete_chat"),
            ("allowed", "agent:test-agent", "mcp", "send_message"),
            ("completed", "system", "system", "send_message"),
            ("rate_limited", "agent:test-agent", "mcp", "send_message"),
            ("denied", "agent:test-agent", "mcp", "get_secret"),
            ("allowed", "agent:test-agent", "mcp", "no_such_tool"),
            ("failed", "system", "system", "no_such_tool"),
        ]
    );
    let detail = |i: usize| events[i].detail.clone().unwrap_or_default();
    assert_eq!(detail(0), "allowed by its rule");
    assert!(
        detail(1).starts_with("result of ") && detail(1).ends_with(" ms"),
        "size, digest and duration: {}",
        detail(1)
    );
    assert_eq!(detail(2), text(&denied), "the reason the agent was given");
    assert_eq!(detail(5), text(&limited));
    assert_eq!(detail(6), text(&unlisted));
    assert!(
        detail(8).contains("the upstream answered with error -32602"),
        "{}",
        detail(8)
    );
    // An allowed call's events share one id and the digest of the arguments sent.
    assert_eq!(events[0].call_id, events[1].call_id);
    assert_ne!(events[0].call_id, events[3].call_id);
    let digest = airlock::domain::ArgsDigest::of(&json!({"limit": 2}));
    assert_eq!(events[0].args_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(events[1].args_digest.as_deref(), Some(digest.as_str()));

    let by_agent = app.cli(&["audit", "export", "--agent", "test-agent"]).await;
    assert_eq!(
        event_lines(&by_agent),
        events.len(),
        "the agent's calls, including the outcomes the system recorded"
    );
    let (intact, said) = verify(&app).await;
    assert!(intact, "{said}");
}

#[tokio::test]
async fn with_policy_decisions_not_recorded_only_parked_calls_reach_the_chain() {
    let app = TestApp::spawn_with(common::Setup {
        extra_toml: "[audit]\nrecord_policy_decisions = false\n".to_owned(),
        ..common::Setup::default()
    })
    .await;
    let agent = app.agent().await;
    assert!(!common::is_error(&agent.call("get_chats", json!({})).await));
    assert!(common::is_error(
        &agent.call("delete_chat", json!({"chat_id": 1})).await
    ));
    // A parked call is recorded with its change, as ever.
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    let parked = agent.spawn_call("export_session", json!({}));
    let id = reviewer.wait_one_pending().await;
    assert_eq!(reviewer.reject(&id, "not today").await.0, 200);
    parked
        .await
        .expect("the parked call's task")
        .expect("an answer");
    app.wait_audit_event("rejected").await;
    let kinds: Vec<String> = app
        .store
        .audit_events_after(1, 1000)
        .await
        .expect("the log")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| ["allowed", "completed", "denied"].contains(&k.as_str())),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "pending"), "{kinds:?}");
}

#[tokio::test]
async fn policy_reloads_are_in_the_chain_with_the_policy_digest() {
    let app = TestApp::spawn().await;
    let first = app.store.audit_events_after(0, 1).await.expect("the log");
    let loaded = std::fs::read(&app.policy_path).expect("the policy");
    assert_eq!(first[0].kind, "policy_loaded");
    assert_eq!(first[0].upstream.as_deref(), Some("telegram"));
    let detail = first[0].detail.clone().unwrap_or_default();
    assert!(
        detail.ends_with(&format!(
            "SHA-256 {}",
            airlock::secrets::sha256_hex(&loaded)
        )),
        "{detail}"
    );

    let edited = common::TEST_POLICY.replace("\"get_chats\": {},", "");
    std::fs::write(&app.policy_path, &edited).expect("edit the policy");
    let reloaded = wait_events(&app, 1).await;
    assert_eq!(reloaded[0].kind, "policy_reloaded");
    assert!(
        reloaded[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .ends_with(&airlock::secrets::sha256_hex(edited.as_bytes())),
        "{:?}",
        reloaded[0].detail
    );
    std::fs::write(&app.policy_path, "{ not json").expect("break the policy");
    let refused = wait_events(&app, 2).await;
    assert_eq!(refused[1].kind, "policy_refused");
    assert!(
        refused[1]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains(&airlock::secrets::sha256_hex(edited.as_bytes())),
        "names the policy still in force: {:?}",
        refused[1].detail
    );
}

#[tokio::test]
async fn secret_arguments_are_masked_for_people_and_gone_from_the_store_once_the_call_is_over() {
    const IBAN: &str = "DE44500105175407324931";
    const KEY: &str = "sk-live-4f9a1c";
    let app = TestApp::spawn_with(common::Setup {
        extra_toml: "[redaction]\nfields = [\"IBAN\"]\nprefixes = [\"sk-\"]\n".to_owned(),
        ..common::Setup::default()
    })
    .await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let arguments = json!({"payer_iban": IBAN, "note": KEY, "chat_id": 5});
    let call = agent.spawn_call("export_session", arguments.clone());
    let id = alice.wait_one_pending().await;

    let shown = alice.call(&id).await;
    assert_eq!(
        shown["arguments"],
        json!({"payer_iban": "•••• (redacted)", "note": "•••• (redacted)", "chat_id": 5})
    );
    assert_eq!(
        shown["args_digest"],
        airlock::domain::ArgsDigest::of(&arguments).as_str(),
        "the digest covers the real arguments"
    );
    let holding = "SELECT COUNT(*) FROM tool_calls WHERE args_json LIKE '%DE44500105175407324931%'";
    assert_eq!(app.db.count(holding).await, 1, "kept to forward them");

    assert_eq!(alice.approve(&id).await.0, 200);
    result_of(call).await;
    alice.wait_status(&id, "completed").await;
    let forwarded = app
        .call_log
        .wait_for("the approved call", |c| c["tool"] == "export_session")
        .await;
    assert!(
        forwarded.to_string().contains(IBAN),
        "forwarded as sent: {forwarded}"
    );
    assert_eq!(
        app.db.count(holding).await,
        0,
        "scrubbed once the call is over"
    );
    assert!(!alice.call(&id).await.to_string().contains(IBAN));
    let export = app.cli(&["audit", "export"]).await;
    assert!(!String::from_utf8_lossy(&export.stdout).contains(IBAN));

    if let Some(path) = app.db.url.strip_prefix("sqlite://") {
        // What a periodic checkpoint does: the WAL's old pages go, the file holds the new ones
        // (freed space zeroed by secure_delete).
        app.db.execute("PRAGMA wal_checkpoint(TRUNCATE)", &[]).await;
        let path = path.split('?').next().unwrap_or(path);
        let mut bytes = std::fs::read(path).expect("the SQLite file");
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let holds = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(holds(&id), "the file read is the real database");
        assert!(
            !holds(IBAN) && !holds(KEY),
            "a secret argument is left in the file"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_string_and_secret_arguments_never_reach_the_log_of_a_real_process() {
    const PASSWORD: &str = "correct-horse-battery-staple-42";
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = common::TestDatabase::new(dir.path()).await;
    std::fs::write(
        dir.path().join("policy.json"),
        r#"{"version": "1", "tools": {"export_session": {"action": "require_approval"}}}"#,
    )
    .expect("write the policy");
    std::fs::write(
        dir.path().join("airlock.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{}\"\n\
             [[upstream]]\nname = \"telegram\"\ncommand = [\"{}\", \"demo-upstream\"]\n\
             policy = \"policy.json\"\n",
            db.url,
            common::AIRLOCK
        ),
    )
    .expect("write the config");
    let token = common::stdout(&common::run_in(
        dir.path(),
        &["token", "create", "--agent", "claude"],
    ));
    // Everything Airlock and its libraries say, at the most talkative level.
    let server = common::Server::start_logging(dir.path(), "trace");
    let agent = common::Agent::connect(
        &format!("http://{}/mcp/telegram", server.addr),
        token.trim(),
    )
    .await;
    let chats = agent.call("get_chats", json!({"password": PASSWORD})).await;
    assert!(!common::is_error(&chats));
    let call = agent.spawn_call("export_session", json!({"password": PASSWORD}));
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let id = loop {
        if let Some(call) = common::pending_in(dir.path()).first() {
            break call["id"].as_str().unwrap_or_default().to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let approved = common::run_in(dir.path(), &["approve", &id]);
    assert!(approved.status.success(), "{approved:?}");
    let secret = text(&result_of(call).await).to_owned();
    assert!(secret.len() > 40, "the demo's session string: {secret}");
    agent.close().await;
    let (_, log) = server.stop();
    assert!(
        log.contains(&id),
        "the log is the server's: it names the call"
    );
    let shown: Vec<&str> = log.lines().filter(|l| l.contains(&secret)).collect();
    assert!(
        shown.is_empty(),
        "the session string is in the log: {shown:#?}"
    );
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(PASSWORD)).collect();
    assert!(
        leaks.is_empty(),
        "a secret argument is in the log: {leaks:#?}"
    );
    let export = common::run_in(dir.path(), &["audit", "export", "--format", "csv"]);
    let export = common::stdout(&export);
    assert!(export.contains("completed"), "{export}");
    assert!(!export.contains(&secret) && !export.contains(PASSWORD));
}

/// `airlock audit verify --file` on `lines` (written to a file), with `extra` arguments.
fn verify_file(dir: &std::path::Path, lines: &[String], extra: &[&str]) -> (bool, String) {
    let path = dir.join("export.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write the export");
    let mut args = vec![
        "audit",
        "verify",
        "--file",
        path.to_str().unwrap_or_default(),
    ];
    args.extend(extra);
    outcome(&common::run_in(dir, &args))
}

#[tokio::test]
async fn a_signed_export_is_checked_offline_and_any_change_to_the_file_is_named() {
    let keys = tempfile::tempdir().expect("a temporary directory");
    let keygen = common::run_in(keys.path(), &["audit", "keygen"]);
    assert!(keygen.status.success());
    let seed = common::stdout(&keygen).trim().to_owned();
    assert_eq!(seed.len(), 64, "the key alone on stdout: {seed}");
    let public_key = String::from_utf8_lossy(&keygen.stderr)
        .split("public key: ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let key_path = keys.path().join("audit.key");
    std::fs::write(&key_path, &seed).expect("save the key");
    let app = app_with_four_events_in(common::Setup {
        extra_toml: format!(
            "[audit]\nsigning_key_file = {:?}\n",
            key_path.display().to_string()
        ),
        ..common::Setup::default()
    })
    .await;
    let export = app.cli(&["audit", "export"]).await;
    assert!(export.status.success());
    let lines: Vec<String> = common::stdout(&export).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 6, "5 events and the checkpoint");
    let offline = keys.path();

    let key = ["--public-key", public_key.as_str()];
    let (ok, said) = verify_file(offline, &lines, &key);
    assert!(ok, "{said}");
    assert!(
        said.contains("export intact: 5 events; the whole log from event 1 to the head 5"),
        "{said}"
    );
    let (ok, said) = verify_file(offline, &lines, &[]);
    assert!(
        !ok && said.contains("pass --public-key"),
        "a key in the file proves nothing: {said}"
    );

    let mut edited = lines.clone();
    let mut event: Value = serde_json::from_str(&edited[2]).expect("an event");
    event["detail"] = json!("approved after all");
    edited[2] = event.to_string();
    let (ok, said) = verify_file(offline, &edited, &key);
    assert!(!ok && said.contains("audit event 3 was edited"), "{said}");

    let mut annotated = lines.clone();
    let mut event: Value = serde_json::from_str(&annotated[2]).expect("an event");
    event["reviewed_by"] = json!("the CFO");
    annotated[2] = event.to_string();
    let (ok, said) = verify_file(offline, &annotated, &key);
    assert!(
        !ok && said.contains("line 3: not a line as Airlock writes it"),
        "{said}"
    );

    let mut deleted = lines.clone();
    deleted.remove(2);
    let (ok, said) = verify_file(offline, &deleted, &key);
    assert!(!ok && said.contains("audit event 3 is missing"), "{said}");

    let mut cut = lines.clone();
    cut.remove(4);
    let (ok, said) = verify_file(offline, &cut, &key);
    assert!(!ok && said.contains("events are missing"), "{said}");

    // A forger who drops the last event and rewrites the checkpoint to match cannot sign it
    // with the key, and a signature with a key of their own is not the one pinned.
    let mut forged = cut.clone();
    let mut checkpoint: Value = serde_json::from_str(&forged[4]).expect("the checkpoint");
    let hashes: String = forged[..4]
        .iter()
        .map(|l| {
            let event: Value = serde_json::from_str(l).expect("an event");
            format!("{}\n", event["hash"].as_str().unwrap_or_default())
        })
        .collect();
    let last: Value = serde_json::from_str(&forged[3]).expect("an event");
    checkpoint["checkpoint"]["seq"] = json!(4);
    checkpoint["checkpoint"]["hash"] = last["hash"].clone();
    checkpoint["checkpoint"]["events"] = json!(4);
    checkpoint["checkpoint"]["events_sha256"] =
        json!(airlock::secrets::sha256_hex(hashes.as_bytes()));
    forged[4] = checkpoint.to_string();
    let (ok, said) = verify_file(offline, &forged, &key);
    assert!(!ok && said.contains("signature does not hold"), "{said}");
    let mut resigned: airlock::audit::Checkpoint =
        serde_json::from_value(checkpoint["checkpoint"].clone()).expect("a checkpoint");
    airlock::audit::SigningKey::from_hex(&"77".repeat(32))
        .expect("a key")
        .sign(&mut resigned);
    forged[4] = json!({ "checkpoint": resigned }).to_string();
    let (ok, said) = verify_file(offline, &forged, &key);
    assert!(!ok && said.contains("not by the key given"), "{said}");

    let filtered = app
        .cli(&["audit", "export", "--tool", "export_session"])
        .await;
    let filtered: Vec<String> = common::stdout(&filtered)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(filtered.len(), 5, "4 call events and the checkpoint");
    let (ok, said) = verify_file(offline, &filtered, &key);
    assert!(
        !ok && said.contains("filtered (tool=export_session)"),
        "{said}"
    );
    let partial = ["--partial", "--public-key", public_key.as_str()];
    let (ok, said) = verify_file(offline, &filtered, &partial);
    assert!(ok && said.contains("export intact: 4 events"), "{said}");
    let mut thinned = filtered.clone();
    thinned.remove(1);
    let (ok, said) = verify_file(offline, &thinned, &partial);
    assert!(
        !ok && said.contains("lines were removed, added or changed"),
        "{said}"
    );
}

#[tokio::test]
async fn a_batch_longer_than_one_insert_statement_is_chained_across_them() {
    // The writer appends a batch in INSERTs of 32 rows: the events on either side of each
    // statement's edge must still follow each other, and a second batch the first.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = common::TestDatabase::new(dir.path()).await;
    let store = airlock::store::Store::connect(&db.url)
        .await
        .expect("the store");
    let batches = store.for_batches().expect("the writer's store");
    let at = airlock::domain::Timestamp::now().text();
    let details: Vec<String> = (0..73).map(|n| format!("event {n}")).collect();
    let events: Vec<airlock::store::NewAuditEvent<'_>> = details
        .iter()
        .map(|detail| airlock::store::NewAuditEvent {
            at: &at,
            kind: "allowed",
            actor: "agent:claude",
            via: "mcp",
            upstream: Some("telegram"),
            tool: Some("get_chats"),
            call_id: None,
            args_digest: None,
            detail: Some(detail),
        })
        .collect();
    batches.audit_many(&events[..70]).await.expect("append 70");
    batches.audit_many(&events[70..]).await.expect("append 3");

    let stored = store.audit_events_after(0, 100).await.expect("events");
    assert_eq!(stored.len(), 73);
    let mut prev = airlock::domain::GENESIS.to_owned();
    for (n, event) in stored.iter().enumerate() {
        assert_eq!(event.seq, i64::try_from(n).expect("small") + 1);
        assert_eq!(event.detail.as_deref(), Some(details[n].as_str()));
        assert_eq!(
            event.prev_hash, prev,
            "event {} follows the one before",
            event.seq
        );
        assert_eq!(event.hash, event.expected_hash());
        prev.clone_from(&event.hash);
    }
    assert_eq!(store.audit_head().await.expect("head"), (73, prev));
    let verified = airlock::audit::verify(&store).await.expect("intact");
    assert_eq!(verified.events, 73);
}

#[tokio::test]
async fn retention_removes_old_events_and_the_rest_still_verifies() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = common::TestDatabase::new(dir.path()).await;
    let store = airlock::store::Store::connect(&db.url)
        .await
        .expect("the store");
    let now = time::OffsetDateTime::now_utc();
    for (days_ago, kind) in [
        (90, "old-1"),
        (60, "old-2"),
        (40, "old-3"),
        (1, "recent"),
        (0, "today"),
    ] {
        let at = airlock::domain::Timestamp::from(now - time::Duration::days(days_ago)).text();
        store
            .audit(&airlock::store::NewAuditEvent {
                at: &at,
                kind,
                actor: "system",
                via: "system",
                upstream: None,
                tool: None,
                call_id: None,
                args_digest: None,
                detail: None,
            })
            .await
            .expect("append");
    }
    let third = store.audit_events_after(2, 1).await.expect("events")[0]
        .hash
        .clone();

    let removed = airlock::audit::retention::prune_once(&store, 30)
        .await
        .expect("prune");
    assert_eq!(removed, 3);
    assert_eq!(store.audit_pruned().await.expect("start"), (3, third));
    let kept: Vec<String> = store
        .audit_events_after(0, 10)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kept, ["recent", "today", "pruned"]);
    let verified = airlock::audit::verify(&store).await.expect("still intact");
    assert_eq!(verified.events, 3);
    assert_eq!(
        airlock::audit::retention::prune_once(&store, 30)
            .await
            .expect("prune"),
        0,
        "nothing more is old enough"
    );

    // A whole export of what is kept verifies from where the log now starts.
    let mut file = Vec::new();
    airlock::audit::export::export(
        &store,
        airlock::store::AuditFilter::default(),
        airlock::audit::export::Format::Jsonl,
        Some(&airlock::audit::SigningKey::from_hex(&"42".repeat(32)).expect("a key")),
        &mut file,
    )
    .await
    .expect("export");
    let key = airlock::audit::SigningKey::from_hex(&"42".repeat(32)).expect("a key");
    let checked =
        airlock::audit::verify_export(file.as_slice(), &key.public_key(), false).expect("intact");
    assert_eq!((checked.events, checked.checkpoint.pruned_seq), (3, 3));

    // Removing a kept event is still found.
    db.execute("DELETE FROM audit_events WHERE seq = 4", &[])
        .await;
    let broken = airlock::audit::verify(&store).await.expect_err("broken");
    assert!(
        broken.to_string().contains("audit event 4 is missing"),
        "{broken}"
    );
}

#[tokio::test]
async fn the_dashboard_lists_filters_and_downloads_the_audit_log() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    assert!(!common::is_error(&agent.call("get_chats", json!({})).await));
    let hostile = "<script>alert(1)</script>";
    assert!(common::is_error(&agent.call(hostile, json!({})).await));
    wait_events(&app, 3).await;
    let mut viewer = app.signed_in("vera@example.org", "viewer").await;

    let page = viewer.get("/history/events").await;
    assert_eq!(page.status, 200);
    for shown in ["allowed", "completed", "denied", "agent:test-agent"] {
        assert!(page.body.contains(shown), "{shown} on the page");
    }
    assert!(
        !page.body.contains("<code>policy_loaded</code>")
            && !page.body.contains("<code>sign_in</code>"),
        "a viewer sees the events of calls only"
    );
    assert!(!page.body.contains(hostile), "the tool name is escaped");
    assert!(
        page.body.contains("&#60;script&#62;alert(1)"),
        "shown as text"
    );
    let denied = viewer.get("/history/events?kind=denied").await;
    assert_eq!(denied.body.matches("data-seq=").count(), 1);
    let by_agent = viewer.get("/history/events?agent=test-agent").await;
    assert_eq!(
        by_agent.body.matches("data-seq=").count(),
        3,
        "the agent's calls"
    );
    assert_eq!(
        viewer.get("/history/events?since=tomorrow").await.status,
        400
    );

    let jsonl = viewer
        .get("/history/events/export?kind=denied&format=jsonl")
        .await;
    assert_eq!(jsonl.status, 200);
    let lines: Vec<&str> = jsonl.body.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one event and the checkpoint: {}",
        jsonl.body
    );
    assert!(lines[1].starts_with("{\"checkpoint\""));
    let csv = viewer.get("/history/events/export?format=csv").await;
    assert!(csv.body.starts_with("seq,at,kind,actor"));
    assert_eq!(csv.body.lines().count(), 4, "the header and 3 call events");
    assert!(
        csv.headers[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap_or_default()
            .contains("airlock-audit.csv")
    );

    let mut admin = app.signed_in("root@example.org", "admin").await;
    let everything = admin.get("/history/events").await;
    for shown in [
        "<code>policy_loaded</code>",
        "<code>sign_in</code>",
        "vera@example.org",
    ] {
        assert!(everything.body.contains(shown), "{shown} for an admin");
    }
    let mut stranger = common::dashboard::Dashboard::new(&app.url(""));
    let refused = stranger.get("/history/events/export").await;
    assert_eq!(refused.status, 303, "sign in first");
}

#[tokio::test]
async fn a_hostile_tool_name_is_recorded_cleaned_and_does_not_stop_the_log() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    // PostgreSQL refuses NUL in text: stored as sent, it would fail the writer's batch forever.
    // (Longer names are refused before the policy: tests/security.rs.)
    let hostile = format!("evil\u{0}{}", "x".repeat(200));
    let refused = agent.call(&hostile, json!({})).await;
    assert!(common::is_error(&refused));
    assert!(!common::is_error(&agent.call("get_chats", json!({})).await));
    let events = wait_events(&app, 3).await;
    assert_eq!(events[0].kind, "denied");
    let tool = events[0].tool.clone().unwrap_or_default();
    assert!(
        tool.starts_with("evilxxx") && !tool.contains('\0'),
        "{tool:.20}"
    );
    assert_eq!(events[1].kind, "allowed", "later events still land");
    let (intact, said) = verify(&app).await;
    assert!(intact, "{said}");
}

#[tokio::test]
async fn calls_stored_before_masked_copies_existed_are_masked_and_scrubbed_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = common::TestDatabase::new(dir.path()).await;
    let setup = || common::Setup {
        database: Some(db.url.clone()),
        ..common::Setup::default()
    };
    let app = TestApp::spawn_with(setup()).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({"x": 1}));
    let id = alice.wait_one_pending().await;
    assert_eq!(alice.reject(&id, "no").await.0, 200);
    result_of(call).await;
    // As an older Airlock left it: the real arguments, no masked copy.
    app.db
        .execute(
            "UPDATE tool_calls SET args_shown = NULL, \
             args_json = '{\"password\": \"hunter2-old-secret\", \"x\": 1}' WHERE id = $1",
            &[&id],
        )
        .await;
    drop(agent);
    let _ = app.stop().await;

    let app = TestApp::spawn_with(setup()).await;
    let holding = "SELECT COUNT(*) FROM tool_calls WHERE args_json LIKE '%hunter2-old-secret%' \
                   OR args_shown LIKE '%hunter2-old-secret%'";
    assert_eq!(app.db.count(holding).await, 0, "scrubbed at start");
    let alice = app.reviewer("alice2@example.org", "approver").await;
    assert_eq!(
        alice.call(&id).await["arguments"],
        json!({"password": "•••• (redacted)", "x": 1})
    );
}

#[tokio::test]
async fn an_event_the_store_refuses_is_replaced_and_the_log_goes_on() {
    let app = TestApp::spawn().await;
    // The store refuses any `denied` event, as it might refuse a value it cannot hold.
    if app.db.url.starts_with("sqlite:") {
        app.db
            .execute(
                "CREATE TRIGGER refuse_denied BEFORE INSERT ON audit_events \
                 WHEN NEW.kind = 'denied' BEGIN SELECT RAISE(ABORT, 'refused'); END",
                &[],
            )
            .await;
    } else {
        app.db
            .execute(
                "CREATE FUNCTION refuse_denied() RETURNS trigger AS $$ BEGIN \
                 IF NEW.kind = 'denied' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; \
                 END $$ LANGUAGE plpgsql",
                &[],
            )
            .await;
        app.db
            .execute(
                "CREATE TRIGGER refuse_denied BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_denied()",
                &[],
            )
            .await;
    }
    let agent = app.agent().await;
    assert!(common::is_error(
        &agent.call("delete_chat", json!({"chat_id": 1})).await
    ));
    assert!(!common::is_error(&agent.call("get_chats", json!({})).await));

    let events = wait_events(&app, 3).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["unrecordable", "allowed", "completed"]);
    assert_eq!(events[0].actor, "agent:test-agent");
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("\"denied\""),
        "{:?}",
        events[0].detail
    );
    let metrics = app.metrics().await;
    for line in [
        "airlock_audit_events_unrecordable_total 1",
        "airlock_audit_events_dropped_total 0",
        "airlock_audit_backlog_events 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("airlock_audit_write_failures_total 0"),
        "{metrics}"
    );
    let (intact, said) = verify(&app).await;
    assert!(intact, "{said}");
}
