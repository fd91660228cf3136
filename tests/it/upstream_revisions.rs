//! Which protocol revision reaches a stdio upstream: a 2026-07-28 client's requests pass through
//! in that revision to a server that speaks it (a child of its own, opened with
//! `server/discover`), and are translated into the handshake era for one that does not. The demo
//! upstream's call log says which revision each call came in and which process ran it.

use serde_json::{Value, json};

use crate::common::{AIRLOCK, CallLog, Setup, TestApp};
use airlock::config::{Isolation, UpstreamConfig};

/// The pid of the process that ran the only call of `tool` in `log`, and the revision it came in.
fn ran(log: &CallLog, tool: &str) -> (u64, String) {
    let calls: Vec<Value> = log
        .tool_calls()
        .into_iter()
        .filter(|c| c["tool"] == tool)
        .collect();
    assert_eq!(calls.len(), 1, "one call of {tool}: {calls:#?}");
    let pid = calls[0]["pid"].as_u64().expect("a pid");
    let revision = calls[0]["revision"].as_str().unwrap_or("none").to_owned();
    (pid, revision)
}

/// A chat of the demo account.
const ALICE: i64 = 1_297_381_004;

/// Arguments each demo tool these tests call runs with.
fn arguments(tool: &str) -> Value {
    match tool {
        "get_messages" => json!({"chat_id": ALICE, "limit": 1}),
        "send_message" => json!({"chat_id": ALICE, "text": "hi"}),
        "slow_task" => json!({"steps": 1, "step_ms": 1}),
        _ => json!({}),
    }
}

/// A 2026-07-28 `tools/call` of `tool` by the agent with `token`; its result.
async fn call_2026(app: &TestApp, upstream: &str, token: &str, tool: &str) -> Value {
    let answer = app
        .stateless(
            upstream,
            token,
            "tools/call",
            json!({"name": tool, "arguments": arguments(tool)}),
        )
        .await;
    let result = answer["result"].clone();
    assert_eq!(result["resultType"], "complete", "{answer}");
    assert_ne!(result["isError"], true, "{answer}");
    result
}

#[tokio::test]
async fn a_2026_client_reaches_a_stdio_upstream_that_speaks_it_in_its_own_revision() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    agent.call("get_chats", json!({})).await;
    let (shared_child, revision) = ran(&app.call_log, "get_chats");
    assert_eq!(revision, "2025-11-25", "a session's call, in its revision");

    call_2026(&app, "telegram", &app.token, "get_messages").await;
    let (child, revision) = ran(&app.call_log, "get_messages");
    assert_eq!(revision, "2026-07-28", "passed through, not translated");
    assert_ne!(
        child, shared_child,
        "the handshake-era child cannot take 2026-07-28 requests"
    );

    // Sessions keep their child, and 2026-07-28 clients share theirs.
    agent.call("slow_task", arguments("slow_task")).await;
    assert_eq!(ran(&app.call_log, "slow_task").0, shared_child);
    let other = app.token_for("other-agent").await;
    call_2026(&app, "telegram", &other, "send_message").await;
    assert_eq!(
        ran(&app.call_log, "send_message"),
        (child, "2026-07-28".to_owned())
    );
    agent.close().await;
}

#[tokio::test]
async fn a_handshake_only_stdio_upstream_gets_2026_clients_translated_on_its_one_child() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = CallLog(dir.path().join("old-calls.jsonl"));
    let policy = dir.path().join("old.json");
    std::fs::write(&policy, r#"{"version":"1","default":"allow"}"#).expect("policy");
    let old = UpstreamConfig {
        name: "old".to_owned(),
        command: Some(vec![
            AIRLOCK.to_owned(),
            "demo-upstream".to_owned(),
            "--handshake-only".to_owned(),
            "--call-log".to_owned(),
            log.0.display().to_string(),
        ]),
        env: Default::default(),
        url: None,
        headers: Default::default(),
        policy: Some(policy),
        isolation: None,
        new_tools: Default::default(),
    };
    let app = TestApp::spawn_with(Setup {
        upstreams: vec![old],
        ..Setup::default()
    })
    .await;
    let shared_child = log
        .wait_for("the shared child's start", |e| e["event"] == "started")
        .await["pid"]
        .as_u64();

    call_2026(&app, "old", &app.token, "get_messages").await;
    let (child, revision) = ran(&log, "get_messages");
    assert_eq!(revision, "2025-11-25", "translated into the handshake era");
    assert_eq!(Some(child), shared_child, "on the one shared child");
    // The probe asked a second child once and let it go; later calls ask nobody.
    call_2026(&app, "old", &app.token, "get_chats").await;
    assert_eq!(ran(&log, "get_chats").0, child);
    let started = log
        .entries()
        .iter()
        .filter(|e| e["event"] == "started")
        .count();
    assert_eq!(
        started,
        2,
        "the shared child and one probe: {:#?}",
        log.entries()
    );
}

#[tokio::test]
async fn with_isolation_agent_each_agents_2026_requests_get_a_child_of_their_own() {
    let app = TestApp::spawn_with(Setup {
        isolation: Some(Isolation::Agent),
        ..Setup::default()
    })
    .await;
    let bob = app.token_for("bob").await;
    call_2026(&app, "telegram", &app.token, "get_chats").await;
    call_2026(&app, "telegram", &bob, "get_messages").await;
    call_2026(&app, "telegram", &app.token, "slow_task").await;
    let (first, revision) = ran(&app.call_log, "get_chats");
    assert_eq!(revision, "2026-07-28");
    let (bobs, revision) = ran(&app.call_log, "get_messages");
    assert_eq!(revision, "2026-07-28");
    assert_ne!(first, bobs, "two agents never share a child");
    assert_eq!(ran(&app.call_log, "slow_task").0, first);
}
