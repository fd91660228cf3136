//! Policy on `tools/call`, end to end: an rmcp agent through Airlock to the demo upstream. Every
//! refusal is checked twice: the agent reads why, and the upstream's call log shows it never saw
//! the call.

use crate::common;

use std::time::Duration;

use common::{TestApp, is_error, text};
use serde_json::json;

#[tokio::test]
async fn an_allowed_call_reaches_the_upstream_and_its_result_comes_back() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;

    let result = agent
        .call("get_messages", json!({"chat_id": 1297381004, "limit": 2}))
        .await;

    assert!(!is_error(&result), "{result:?}");
    let calls = app.upstream_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["tool"], "get_messages");
    assert_eq!(
        calls[0]["arguments"],
        json!({"chat_id": 1297381004, "limit": 2})
    );
    agent.close().await;
}

#[tokio::test]
async fn a_denied_tool_is_refused_with_its_reason_and_never_forwarded() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;

    let result = agent.call("delete_chat", json!({"chat_id": 777000})).await;

    assert!(is_error(&result));
    assert_eq!(
        text(&result),
        "Denied by policy (telegram.delete_chat): never from an agent"
    );
    assert_eq!(app.call_log.calls_of("delete_chat"), 0);
    agent.close().await;
}

#[tokio::test]
async fn a_deny_rule_without_reason_still_says_which_rule() {
    let app = TestApp::spawn_with_policy(
        r#"{"version":"1","default":"allow","tools":{"send_message":{"action":"deny"}}}"#,
    )
    .await;
    let agent = app.agent().await;

    let result = agent
        .call("send_message", json!({"chat_id": 1, "text": "hi"}))
        .await;

    assert!(is_error(&result));
    assert!(
        text(&result).starts_with("Denied by policy (telegram.send_message): "),
        "{}",
        text(&result)
    );
    assert_eq!(app.call_log.calls_of("send_message"), 0);
    agent.close().await;
}

#[tokio::test]
async fn an_unlisted_tool_under_default_deny_is_denied_before_the_upstream() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;

    // Neither is listed; the second does not even exist upstream.
    for tool in ["get_secret_chats", "rm_rf"] {
        let result = agent.call(tool, json!({})).await;
        assert!(is_error(&result));
        assert_eq!(
            text(&result),
            format!("Denied by policy (telegram.{tool}): not listed in the policy (default: deny)")
        );
    }
    assert!(
        app.upstream_calls().is_empty(),
        "{:?}",
        app.upstream_calls()
    );
    agent.close().await;
}

#[tokio::test]
async fn the_rate_limit_refuses_the_extra_call_in_the_window_and_allows_it_after() {
    // TEST_POLICY: send_message at most 2 calls per 3 s.
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    let send = |n: u32| json!({"chat_id": 1297381004, "text": format!("message {n}")});

    assert!(!is_error(&agent.call("send_message", send(1)).await));
    assert!(!is_error(&agent.call("send_message", send(2)).await));
    let refused = agent.call("send_message", send(3)).await;

    assert!(is_error(&refused));
    let message = text(&refused);
    assert!(
        message.starts_with("Rate limit for telegram.send_message: 2 calls per 3 s; retry after "),
        "{message}"
    );
    assert_eq!(app.call_log.calls_of("send_message"), 2);

    // The window slides: once the first calls are older than 3 s, a call goes through again.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let again = agent.call("send_message", send(4)).await;
    assert!(!is_error(&again), "{again:?}");
    let texts: Vec<_> = app
        .upstream_calls()
        .iter()
        .map(|c| {
            c["arguments"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["message 1", "message 2", "message 4"]);
    agent.close().await;
}

#[tokio::test]
async fn rate_limits_count_per_session_when_the_rule_says_so() {
    // By default a limit counts per agent, across sessions (tests/security.rs).
    let policy = common::TEST_POLICY.replace(
        r#""rate_limit": { "max": 2, "window": 3 } }"#,
        r#""rate_limit": { "max": 2, "window": 3 }, "per": "session" }"#,
    );
    let app = TestApp::spawn_with_policy(&policy).await;
    let first = app.agent().await;
    let second = app.agent().await;
    let send = json!({"chat_id": 1297381004, "text": "hi"});

    for _ in 0..2 {
        assert!(!is_error(&first.call("send_message", send.clone()).await));
    }
    assert!(is_error(&first.call("send_message", send.clone()).await));
    assert!(!is_error(&second.call("send_message", send).await));
    assert_eq!(app.call_log.calls_of("send_message"), 3);
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn a_policy_edit_applies_without_restart_and_a_broken_edit_keeps_the_last_good() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    assert!(!is_error(&agent.call("get_chats", json!({})).await));

    std::fs::write(
        &app.policy_path,
        r#"{"version":"1","default":"deny","tools":{"get_chats":{"action":"deny","reason":"frozen"}}}"#,
    )
    .expect("edit the policy");
    let denied = wait_until_text(&agent, "Denied by policy (telegram.get_chats): frozen").await;
    assert!(denied);
    let forwarded_before_the_edit_applied = app.call_log.calls_of("get_chats");

    std::fs::write(
        &app.policy_path,
        r#"{"version":"1","default":"deny","tools":{"#,
    )
    .expect("break the policy");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, body) = app.readyz().await;
        if status == 503 {
            let policy = body["upstreams"]["telegram"]["policy"]
                .as_str()
                .unwrap_or_default();
            assert!(policy.starts_with("stale"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never reported the broken policy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still = agent.call("get_chats", json!({})).await;
    assert_eq!(
        text(&still),
        "Denied by policy (telegram.get_chats): frozen"
    );
    assert_eq!(
        app.call_log.calls_of("get_chats"),
        forwarded_before_the_edit_applied
    );
    agent.close().await;
}

/// Calls get_chats until its answer is `expected` (the policy watcher polls once a second).
async fn wait_until_text(agent: &common::Agent, expected: &str) -> bool {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while tokio::time::Instant::now() < deadline {
        let result = agent.call("get_chats", json!({})).await;
        if result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.as_str())
            == Some(expected)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
