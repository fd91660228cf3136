//! Parked calls that outlive the request: a `tools/call` with the same key (agent, token,
//! upstream, tool, arguments) joins the call instead of parking another; `[approval] hold` tells a
//! waiting request to call again; the next call picks up an approval (exactly once, however many
//! requests wait), or is told the rejection, the expiry or that nobody picked it up in time.
//! Every "not run" is checked against the demo upstream's call log.

use crate::common;

use common::smtp::SmtpSink;
use common::{Agent, Setup, TestApp, WAIT, is_error, result_of, text};
use serde_json::{Value, json};

/// An app where `export_session` needs approval under `rule`, with `[approval]` settings `approval`.
async fn spawn(rule: &str, approval: &str) -> TestApp {
    spawn_with(rule, approval, "").await
}

async fn spawn_with(rule: &str, approval: &str, more_toml: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        policy: format!(
            r#"{{"version": "1", "default": "deny", "tools": {{
                "get_chats": {{}}, "export_session": {rule} }}}}"#
        ),
        extra_toml: format!("[approval]\n{approval}\n{more_toml}"),
        ..Setup::default()
    })
    .await
}

const APPROVAL: &str = r#"{"action": "require_approval"}"#;

fn is_waiting_text(result: &rmcp::model::CallToolResult) -> bool {
    is_error(result) && text(result).starts_with("Waiting for approval of telegram.export_session")
}

#[tokio::test]
async fn past_the_hold_the_agent_is_told_to_call_again_and_its_next_call_gets_the_result() {
    let app = spawn(APPROVAL, "hold = 1").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    let first = agent.call("export_session", json!({})).await;

    let id = alice.wait_one_pending().await;
    assert!(is_waiting_text(&first), "{}", text(&first));
    let expires = alice.call(&id).await["expires_at"]
        .as_str()
        .map(|t| t[11..16].to_owned())
        .expect("an expiry");
    assert_eq!(
        text(&first),
        format!(
            "Waiting for approval of telegram.export_session (call {id}, expires {expires} UTC); \
             it has not run. Call export_session again with the same arguments to get its result \
             once a reviewer approves."
        )
    );
    let again = agent.call("export_session", json!({})).await;
    assert!(is_waiting_text(&again), "{}", text(&again));
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM tool_calls").await,
        1,
        "the second call joined the first"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    assert_eq!(alice.call(&id).await["status"], "approved");
    let metrics = app.metrics().await;
    for gauge in [
        "airlock_approvals_pending 0",
        "airlock_approvals_awaiting_pickup 1",
        "airlock_approval_requests_waiting 0",
    ] {
        assert!(metrics.contains(gauge), "{gauge}: {metrics}");
    }
    let result = agent.call("export_session", json!({})).await;
    assert!(text(&result).starts_with("1BVtsOK"), "{}", text(&result));
    alice.wait_status(&id, "completed").await;
    assert_eq!(app.call_log.calls_of("export_session"), 1);

    // The key is free again: the same call now parks anew.
    let fresh = agent.call("export_session", json!({})).await;
    assert!(is_waiting_text(&fresh), "{}", text(&fresh));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM tool_calls").await, 2);
    agent.close().await;
}

#[tokio::test]
async fn twenty_requests_waiting_on_one_approval_run_it_once() {
    let app = spawn(APPROVAL, "hold = 0").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let waits: Vec<_> = (0..20)
        .map(|_| agent.spawn_call("export_session", json!({"account": "main"})))
        .collect();
    let id = alice.wait_one_pending().await;
    alice.wait_requests(&id, 20).await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM tool_calls").await, 1);

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);

    let mut results = Vec::new();
    for wait in waits {
        results.push(result_of(wait).await);
    }
    let got: Vec<_> = results
        .iter()
        .filter(|r| text(r).starts_with("1BVtsOK"))
        .collect();
    assert_eq!(got.len(), 1, "exactly one request gets the result");
    let picked_up = format!("Call {id} was picked up by another request; not run again");
    let others: Vec<_> = results
        .iter()
        .filter(|r| is_error(r) && text(r) == picked_up)
        .collect();
    assert_eq!(
        others.len(),
        19,
        "{:#?}",
        results.iter().map(text).collect::<Vec<_>>()
    );
    alice.wait_status(&id, "completed").await;
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    agent.close().await;
}

#[tokio::test]
async fn a_rejection_reaches_the_next_call_once_and_nothing_runs() {
    let app = spawn(APPROVAL, "hold = 1").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let waiting = agent.call("export_session", json!({})).await;
    assert!(is_waiting_text(&waiting), "{}", text(&waiting));
    let id = alice.wait_one_pending().await;

    let (status, _) = alice.reject(&id, "not this week").await;
    assert_eq!(status, 200);

    let told = agent.call("export_session", json!({})).await;
    assert!(is_error(&told));
    assert_eq!(text(&told), "Rejected by alice@example.org: not this week");
    let fresh = agent.call("export_session", json!({})).await;
    assert!(
        is_waiting_text(&fresh),
        "told once, then the key is free: {}",
        text(&fresh)
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM tool_calls").await, 2);
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    agent.close().await;
}

#[tokio::test]
async fn an_expiry_reaches_the_next_call_and_nothing_runs() {
    let app = spawn(
        r#"{"action": "require_approval", "timeout": 2}"#,
        "hold = 1",
    )
    .await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let mut answer = agent.call("export_session", json!({})).await;
    let id = alice.wait_one_pending().await;
    // Each call holds a second, then says it still waits; once the 2 s pass, the next is told.
    let deadline = tokio::time::Instant::now() + WAIT;
    while is_waiting_text(&answer) {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        answer = agent.call("export_session", json!({})).await;
    }
    assert!(is_error(&answer));
    assert_eq!(text(&answer), "Not approved within 2 s; not run");
    assert_eq!(alice.call(&id).await["status"], "expired");
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 409, "too late");
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    agent.close().await;
}

#[tokio::test]
async fn an_approval_nobody_picks_up_in_time_ends_unclaimed_and_never_runs() {
    let app = spawn(APPROVAL, "hold = 1\npickup = 1").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let waiting = agent.call("export_session", json!({})).await;
    assert!(is_waiting_text(&waiting), "{}", text(&waiting));
    let id = alice.wait_one_pending().await;

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);

    let call = alice.wait_status(&id, "unclaimed").await;
    assert_eq!(
        call["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| e["detail"].clone()),
        Some(json!("Approved, but not picked up within 1 s; not run")),
        "{call:#}"
    );
    let (code, listed) = alice.get("/api/v1/calls?status=unclaimed").await;
    assert_eq!(code, 200);
    assert_eq!(listed["calls"][0]["id"], id.as_str());
    let told = agent.call("export_session", json!({})).await;
    assert_eq!(
        text(&told),
        "Approved, but not picked up within 1 s; not run"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    assert!(
        app.metrics()
            .await
            .contains("airlock_approval_decisions_total{outcome=\"unclaimed\"} 1"),
        "{}",
        app.metrics().await
    );
    agent.close().await;
}

#[tokio::test]
async fn calls_that_join_send_no_second_email() {
    let sink = SmtpSink::start().await;
    let app = spawn_with(
        r#"{"action": "require_approval", "notify": ["alice@example.org"]}"#,
        "hold = 1",
        &format!(
            "[email]\nsmtp_url = \"{}\"\nfrom = \"airlock@example.org\"\n",
            sink.url()
        ),
    )
    .await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    for _ in 0..3 {
        let answer = agent.call("export_session", json!({})).await;
        assert!(is_waiting_text(&answer), "{}", text(&answer));
    }
    let id = alice.wait_one_pending().await;
    let joined = agent.spawn_call("export_session", json!({}));
    alice.wait_requests(&id, 1).await;
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    assert!(text(&result_of(joined).await).starts_with("1BVtsOK"));

    app.db
        .wait_count(
            "messages the outbox has not sent",
            "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'",
            0,
        )
        .await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 1);
    assert_eq!(sink.mails().len(), 1, "one email for four requests");
    agent.close().await;
}

#[tokio::test]
async fn another_token_of_the_same_agent_does_not_join_its_call() {
    let app = spawn(APPROVAL, "hold = 1").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let first = agent.call("export_session", json!({})).await;
    assert!(is_waiting_text(&first), "{}", text(&first));
    let token = app.token_for("test-agent").await;
    let other = Agent::connect(&app.mcp_url("telegram"), &token).await;

    let second = other.call("export_session", json!({})).await;

    assert!(is_waiting_text(&second), "{}", text(&second));
    let pending: Vec<Value> = alice.calls("pending").await;
    assert_eq!(pending.len(), 2, "a call of its own");
    other.close().await;
    agent.close().await;
}

#[tokio::test]
async fn the_call_page_says_whether_the_agent_waits_now_or_picks_the_result_up_later() {
    let app = spawn(APPROVAL, "hold = 1").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut page = app.signed_in("bob@example.org", "approver").await;
    let agent = app.agent().await;
    let told = agent.call("export_session", json!({})).await;
    assert!(is_waiting_text(&told), "{}", text(&told));
    let id = alice.wait_one_pending().await;
    let later = "The agent is not waiting right now: it gets the result when it calls \
                 export_session again with the same arguments";

    let body = page.get(&format!("/calls/{id}")).await.body;
    assert!(body.contains(later), "{body}");

    let waiting = agent.spawn_call("export_session", json!({}));
    alice.wait_requests(&id, 1).await;
    let body = page.get(&format!("/calls/{id}")).await.body;
    assert!(
        body.contains("The agent is waiting for this call now."),
        "{body}"
    );
    assert!(is_waiting_text(&result_of(waiting).await));
    alice.wait_requests(&id, 0).await;
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    let body = page.get(&format!("/calls/{id}")).await.body;
    assert!(body.contains(later) && body.contains("(until "), "{body}");
    agent.close().await;
}

#[tokio::test]
async fn a_cut_parked_stream_resumes_with_last_event_id_and_delivers_the_result() {
    let app = spawn(APPROVAL, "hold = 0").await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let session = crate::tasks::TaskSession::open(&app, &app.token).await;
    let call = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
        "params": {"name": "export_session", "arguments": {}}});
    let (event_id, head) = session.cut_after_priming(&call).await;
    assert!(event_id.ends_with(":0"), "{event_id}");
    assert!(
        head.contains("retry:"),
        "the priming event asks for a retry: {head:?}"
    );
    let id = alice.wait_one_pending().await;

    alice.wait_requests(&id, 0).await;
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.call_log.calls_of("export_session"),
        0,
        "nobody to send it for yet"
    );
    let body = session.resumed_body(&event_id).await;
    let stream = event_id.trim_end_matches(":0");
    assert!(body.contains(&format!("id: {stream}:1")), "{body}");
    let answer = crate::tasks::last_message(&body);
    assert_eq!(answer["id"], 41, "the answer to the cut request: {answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{answer}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 1);
}
