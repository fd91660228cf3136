//! Policy depth through the real proxy: `[policy] sensitive` parks what a catalogue's policy
//! allows, and an Intercept YAML policy's conditions, counters and `hide` hold end to end.

use crate::common;

use common::{Setup, TestApp, is_error, result_of, text};
use serde_json::json;

/// The policy a catalogue recommends for the Telegram server: it allows `export_session`.
const SEED: &str = r#"{"version":"1","default":"deny","tools":{"export_session":{}}}"#;

fn seed(extra_toml: &str) -> Setup {
    Setup {
        policy: SEED.to_owned(),
        extra_toml: extra_toml.to_owned(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn the_seed_policy_parks_export_session_until_a_human_approves() {
    let app = TestApp::spawn_with(seed("")).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let id = alice.wait_one_pending().await;
    let parked = alice.call(&id).await;
    let reason = parked["rule"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("looks credential-exporting: name `export_session`"),
        "{parked:#}"
    );
    assert!(
        reason.ends_with("allowed by its rule, parked by [policy] sensitive"),
        "{reason}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);

    let (status, body) = alice.approve(&id).await;
    assert_eq!(status, 200, "{body}");
    let result = result_of(call).await;
    assert!(!is_error(&result), "{result:?}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    agent.close().await;
}

#[tokio::test]
async fn sensitive_allow_restores_the_rule_and_accept_risk_does_so_for_one_tool() {
    let app = TestApp::spawn_with(seed("[policy]\nsensitive = \"allow\"\n")).await;
    let agent = app.agent().await;
    let result = agent.call("export_session", json!({})).await;
    assert!(!is_error(&result), "{result:?}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    agent.close().await;

    let accepted =
        r#"{"version":"1","default":"deny","tools":{"export_session":{"accept_risk":true}}}"#;
    let app = TestApp::spawn_with_policy(accepted).await;
    let agent = app.agent().await;
    let result = agent.call("export_session", json!({})).await;
    assert!(!is_error(&result), "{result:?}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    agent.close().await;
}

const YAML: &str = r#"
version: "1"
description: "demo upstream, Intercept format"
default: deny
hide:
  - delete_chat
tools:
  get_chats:
    rules: []
  get_messages:
    rules:
      - name: "one read a day"
        rate_limit: 1/day
  no_such_tool:
    rules:
      - name: "one try a day"
        rate_limit: 1/day
  slow_task:
    rules:
      - name: "five steps a day"
        conditions:
          - path: "state.slow_task.steps_today"
            op: "lte"
            value: 5
        on_deny: "five steps a day"
        state:
          counter: steps_today
          window: day
          increment_from: "args.steps"
  send_message:
    rules:
      - name: "groups need a human"
        action: require_approval
        reason: "messages that many people read"
        conditions:
          - path: "args.chat_id"
            op: "gte"
            value: 0
      - name: "polite"
        conditions:
          - path: "args.text"
            op: "regex"
            value: "^[^!]*$"
        on_deny: "no shouting"
"#;

#[tokio::test]
async fn an_intercept_yaml_policy_holds_through_the_proxy() {
    let app = TestApp::spawn_with(Setup {
        policy: YAML.to_owned(),
        policy_file: "telegram.yaml",
        ..Setup::default()
    })
    .await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    // hide: gone from tools/list, and refused if called anyway.
    let tools = agent.list_tool_names().await;
    assert!(tools.contains(&"get_chats".to_owned()), "{tools:?}");
    assert!(!tools.contains(&"delete_chat".to_owned()), "{tools:?}");
    let hidden = agent.call("delete_chat", json!({"chat_id": 1})).await;
    assert_eq!(
        text(&hidden),
        "Denied by policy (telegram.delete_chat): hidden by the policy"
    );

    // A private chat passes; a failed condition of an evaluate rule denies.
    let small = agent
        .call("send_message", json!({"chat_id": 777000, "text": "hello"}))
        .await;
    assert!(!is_error(&small), "{small:?}");
    let loud = agent
        .call("send_message", json!({"chat_id": 777000, "text": "hello!"}))
        .await;
    assert_eq!(
        text(&loud),
        "Denied by policy (telegram.send_message): no shouting"
    );

    // A group's waits for a human, who sees the condition that failed.
    let big = agent.spawn_call(
        "send_message",
        json!({"chat_id": -1001846223907_i64, "text": "news"}),
    );
    let id = alice.wait_one_pending().await;
    let parked = alice.call(&id).await;
    assert_eq!(
        parked["rule"]["reason"],
        "messages that many people read; rule \"groups need a human\": args.chat_id gte 0 does not hold"
    );
    let (status, body) = alice.approve(&id).await;
    assert_eq!(status, 200, "{body}");
    assert!(!is_error(&result_of(big).await));
    assert_eq!(app.call_log.calls_of("send_message"), 2);

    // A counter: an upstream JSON-RPC error (a tool it lacks) gives the reservation back, so
    // the second try of "one try a day" reaches the upstream too.
    for _ in 0..2 {
        let missing = agent.client_call_raw("no_such_tool", json!({})).await;
        assert!(missing.is_err(), "the upstream's own error: {missing:?}");
    }
    // Counted calls that succeed keep their reservation: the second read is refused. (Windows
    // are calendar days in UTC: a test that runs across midnight starts a new one, and then the
    // refusal is not to be had.)
    let day = || time::OffsetDateTime::now_utc().unix_timestamp() / 86_400;
    let started = day();
    let read = agent
        .call("get_messages", json!({"chat_id": 1297381004}))
        .await;
    assert!(!is_error(&read), "{read:?}");
    let again = agent
        .call("get_messages", json!({"chat_id": 1297381004}))
        .await;
    if day() == started {
        assert!(
            text(&again)
                .starts_with("Rate limit for telegram.get_messages: 1 call per day; retry after "),
            "{}",
            text(&again)
        );
        assert_eq!(app.call_log.calls_of("get_messages"), 1);
    }

    // increment_from: each call adds its own `steps`; 3 + 3 would pass the 5 a day.
    let started = day();
    let first = agent
        .call("slow_task", json!({"steps": 3, "step_ms": 1}))
        .await;
    assert!(!is_error(&first), "{first:?}");
    let second = agent
        .call("slow_task", json!({"steps": 3, "step_ms": 1}))
        .await;
    let small = agent
        .call("slow_task", json!({"steps": 2, "step_ms": 1}))
        .await;
    if day() == started {
        assert!(
            text(&second)
                .starts_with("Rate limit for telegram.slow_task: five steps a day; retry after "),
            "{}",
            text(&second)
        );
        assert!(!is_error(&small), "2 more fit: {small:?}");
        assert_eq!(app.call_log.calls_of("slow_task"), 2);
    }
    agent.close().await;
}

#[tokio::test]
async fn rules_for_one_agent_leave_the_other_to_the_default() {
    let policy = r#"{"version":"1","default":"deny","tools":{
        "send_message":{"rules":[{"name":"ci only","agents":["ci-*"],
            "conditions":[{"path":"args.chat_id","op":"eq","value":777000}]}]}}}"#;
    let app = TestApp::spawn_with_policy(policy).await;
    let claude = app.agent().await;
    let ci = common::Agent::connect(&app.mcp_url("telegram"), &app.token_for("ci-bot").await).await;

    let sent = ci
        .call(
            "send_message",
            json!({"chat_id": 777000, "text": "build ok"}),
        )
        .await;
    assert!(!is_error(&sent), "{sent:?}");
    let elsewhere = ci
        .call("send_message", json!({"chat_id": 1297381004, "text": "x"}))
        .await;
    assert!(
        text(&elsewhere).contains("args.chat_id eq 777000 does not hold"),
        "{}",
        text(&elsewhere)
    );
    let refused = claude
        .call("send_message", json!({"chat_id": 777000, "text": "hi"}))
        .await;
    assert_eq!(
        text(&refused),
        "Denied by policy (telegram.send_message): not listed in the policy (default: deny)"
    );
    assert_eq!(app.call_log.calls_of("send_message"), 1);
    ci.close().await;
    claude.close().await;
}

#[tokio::test]
async fn shadow_mode_lets_a_would_be_denied_call_through_and_records_it() {
    let policy = r#"{"version":"1","default":"allow","mode":"audit","tools":{
        "delete_chat":{"action":"deny","reason":"never from an agent"},
        "get_chats":{"rules":[{"name":"nothing older","conditions":[{"path":"args.limit","op":"lte","value":5}]}]}}}"#;
    let app = TestApp::spawn_with_policy(policy).await;
    let agent = app.agent().await;
    let deleted = agent.call("delete_chat", json!({"chat_id": 777000})).await;
    assert!(!is_error(&deleted), "{deleted:?}");
    assert_eq!(app.call_log.calls_of("delete_chat"), 1);
    let listed = agent.call("get_chats", json!({"limit": 50})).await;
    assert!(!is_error(&listed), "{listed:?}");

    let events = app
        .store
        .audit_events_after(0, 1000)
        .await
        .expect("the log");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let mut shadowed: Vec<String> = Vec::new();
    while shadowed.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        shadowed = app
            .store
            .audit_events_after(0, 1000)
            .await
            .expect("the log")
            .into_iter()
            .filter(|e| e.kind == "shadowed")
            .filter_map(|e| e.detail)
            .collect();
    }
    assert_eq!(
        shadowed,
        [
            "would have been denied: never from an agent",
            "would have been denied: rule \"nothing older\": args.limit lte 5 does not hold"
        ]
    );
    agent.close().await;
}
