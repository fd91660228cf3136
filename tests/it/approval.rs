//! The approval queue, end to end: an rmcp agent through Airlock to the demo upstream, reviewers on
//! the JSON API and the CLI. Every "not run" is checked against the demo upstream's call log.

use crate::common;

use std::time::Duration;

use common::{Reviewer, Setup, TestApp, is_error, result_of, text};
use serde_json::{Value, json};

/// `export_session` needs approval under these settings; everything else as in TEST_POLICY.
fn policy(export_session: &str) -> String {
    format!(
        r#"{{"version": "1", "default": "deny", "tools": {{
            "get_chats": {{}}, "get_messages": {{}},
            "send_message": {{"action": "require_approval", "timeout": 60}},
            "export_session": {export_session} }}}}"#
    )
}

async fn spawn(export_session: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        policy: policy(export_session),
        extra_toml: "[groups]\nsecurity = [\"sec@example.org\", \"sec2@example.org\"]\n".to_owned(),
        ..Setup::default()
    })
    .await
}

fn id_of(call: &Value) -> String {
    call["id"].as_str().expect("a call id").to_owned()
}

fn kinds(call: &Value) -> Vec<String> {
    call["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_parked_call_waits_for_approval_then_gets_the_upstreams_real_result() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let pending = alice.wait_pending(1).await;

    let parked = &pending[0];
    assert_eq!(parked["tool"], "export_session");
    assert_eq!(parked["upstream"], "telegram");
    assert_eq!(parked["agent"], "test-agent");
    assert_eq!(parked["arguments"], json!({}));
    assert_eq!(
        parked["args_digest"],
        airlock::secrets::sha256_hex(b"{}"),
        "the digest of the canonical arguments"
    );
    let progress = agent.next_progress().await;
    assert!(
        progress
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Waiting for approval of telegram.export_session")),
        "{progress:?}"
    );
    assert_eq!(
        app.call_log.calls_of("export_session"),
        0,
        "parked, not forwarded"
    );
    assert!(!call.is_finished(), "the agent is still waiting");
    let listed = app.cli(&["pending"]).await;
    assert!(listed.status.success());
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains(&id_of(parked)), "{table}");
    assert!(table.contains("telegram.export_session"), "{table}");

    assert!(
        app.metrics().await.contains("airlock_approvals_pending 1"),
        "the gauge counts the waiting call"
    );

    let (status, answer) = alice.approve(&id_of(parked)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["released"], true);

    let result = result_of(call).await;
    assert!(!is_error(&result), "{result:?}");
    assert!(text(&result).starts_with("1BVtsOK"), "{}", text(&result));
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    let done = alice.wait_status(&id_of(parked), "completed").await;
    assert_eq!(done["decided_by"], "alice@example.org");
    assert_eq!(
        done["result"]["bytes"].as_i64().map(|b| b > 353),
        Some(true),
        "{done:#}"
    );
    assert_eq!(
        kinds(&done),
        ["pending", "approval", "approved", "forwarding", "completed"]
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("airlock_approval_decisions_total{outcome=\"approved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("airlock_approval_decision_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("airlock_approvals_pending 0"), "{metrics}");
    agent.close().await;
}

#[tokio::test]
async fn rejecting_tells_the_agent_the_reviewers_reason_and_the_upstream_never_sees_it() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "admin").await;
    let agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&alice.wait_pending(1).await[0]);
    let (status, answer) = alice.reject(&id, "no session exports this week").await;
    assert_eq!(status, 200, "{answer}");

    let result = result_of(call).await;
    assert!(is_error(&result));
    assert_eq!(
        text(&result),
        "Rejected by alice@example.org: no session exports this week"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    let call = alice.call(&id).await;
    assert_eq!(call["status"], "rejected");
    assert_eq!(call["reason"], "no session exports this week");
    assert_eq!(kinds(&call), ["pending", "rejected"]);

    let (status, body) = alice.approve(&id).await;
    assert_eq!(status, 409, "a decided call stays decided: {body}");
    assert_eq!(body["error"], format!("call {id} is not pending: rejected"));
    agent.close().await;
}

#[tokio::test]
async fn a_rejection_needs_a_reason() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let _call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&alice.wait_pending(1).await[0]);

    for reason in [None, Some("   ")] {
        let (status, body) = alice.decide(&id, "reject", reason).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("reason")
        );
    }
    assert_eq!(alice.call(&id).await["status"], "pending");
    agent.close().await;
}

#[tokio::test]
async fn a_call_nobody_decides_expires_and_a_late_approval_is_refused() {
    let app = spawn(r#"{"action": "require_approval", "timeout": 2}"#).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&alice.wait_pending(1).await[0]);
    let result = result_of(call).await;

    assert!(is_error(&result));
    assert_eq!(text(&result), "Not approved within 2 s; not run");
    let (status, body) = alice.approve(&id).await;
    assert_eq!(status, 409, "{body}");
    let call = alice.call(&id).await;
    assert_eq!(call["status"], "expired");
    assert_eq!(call["decided_by"], "system", "an expiry is no reviewer's");
    assert!(call["approvals"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    agent.close().await;
}

#[tokio::test]
async fn the_pending_lists_show_each_call_with_its_own_approvals() {
    // The API's list and `airlock pending` read the approvals of a whole page at once.
    let app = spawn(r#"{"action": "require_approval", "approvals": 2}"#).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let _first = agent.spawn_call("export_session", json!({"n": 1}));
    alice.wait_pending(1).await;
    let _second = agent.spawn_call("export_session", json!({"n": 2}));
    let listed = alice.wait_pending(2).await;
    let voted = id_of(&listed[0]);
    let (status, approved) = alice.approve(&voted).await;
    assert_eq!(status, 200, "{approved}");

    let reviewers = |calls: &[Value]| -> Vec<(String, Vec<String>)> {
        calls
            .iter()
            .map(|call| {
                let who = call["approvals"]
                    .as_array()
                    .expect("approvals")
                    .iter()
                    .filter_map(|a| a["reviewer"].as_str().map(str::to_owned))
                    .collect();
                (id_of(call), who)
            })
            .collect()
    };
    let other = id_of(&listed[1]);
    let expected = vec![
        (voted, vec!["alice@example.org".to_owned()]),
        (other, Vec::new()),
    ];
    assert_eq!(reviewers(&alice.calls("pending").await), expected);
    assert_eq!(reviewers(&common::pending_in(app.dir.path())), expected);
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_different_reviewers() {
    let app = spawn(r#"{"action": "require_approval", "approvals": 2}"#).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let bob = app.reviewer("bob@example.org", "admin").await;
    let agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&alice.wait_pending(1).await[0]);

    let (status, first) = alice.approve(&id).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["released"], false);
    assert_eq!(first["approvals"], 1);
    assert_eq!(first["call"]["status"], "pending");
    let (status, again) = alice.approve(&id).await;
    assert_eq!(
        status, 409,
        "the same reviewer does not count twice: {again}"
    );
    assert!(
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains("already approved") && e.contains("1 more")),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!call.is_finished());
    assert_eq!(app.call_log.calls_of("export_session"), 0);

    let (status, second) = bob.approve(&id).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["released"], true);
    let result = result_of(call).await;
    assert!(!is_error(&result), "{result:?}");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    let call = alice.wait_status(&id, "completed").await;
    let voters: Vec<&str> = call["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["reviewer"].as_str())
        .collect();
    assert_eq!(voters, ["alice@example.org", "bob@example.org"]);
    // The history finds the call by either reviewer: the one who voted first, the one who decided.
    let mut browser = app.signed_in("carol@example.org", "viewer").await;
    for (reviewer, rows) in [
        ("alice@example.org", 1),
        ("bob@example.org", 1),
        ("carol@example.org", 0),
    ] {
        let page = browser.get(&format!("/history?reviewer={reviewer}")).await;
        assert_eq!(
            page.body.matches("<tr data-call-id=").count(),
            rows,
            "{reviewer}"
        );
    }
    agent.close().await;
}

#[tokio::test]
async fn fifty_concurrent_decisions_on_one_call_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let mut reviewers = Vec::new();
    for n in 0..5 {
        reviewers.push(app.reviewer(&format!("r{n}@example.org"), "approver").await);
    }
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&reviewers[0].wait_pending(1).await[0]);

    let reviewers = std::sync::Arc::new(reviewers);
    let mut decisions = Vec::new();
    for n in 0..50 {
        let reviewers = reviewers.clone();
        let id = id.clone();
        decisions.push(tokio::spawn(async move {
            let reviewer: &Reviewer = &reviewers[n % 5];
            let (status, body) = if n % 2 == 0 {
                reviewer.approve(&id).await
            } else {
                reviewer.reject(&id, &format!("rejection {n}")).await
            };
            (n, status, body)
        }));
    }
    let mut winners = Vec::new();
    for decision in decisions {
        let (n, status, body) = decision.await.expect("a decision task");
        match status {
            200 => winners.push(n),
            409 => {}
            other => panic!("decision {n}: unexpected {other}: {body}"),
        }
    }

    assert_eq!(winners.len(), 1, "exactly one decision wins: {winners:?}");
    let result = result_of(call).await;
    let final_call = reviewers[0].call(&id).await;
    if winners[0] % 2 == 0 {
        assert!(!is_error(&result), "{result:?}");
        assert_eq!(app.call_log.calls_of("export_session"), 1);
    } else {
        assert_eq!(
            text(&result),
            format!(
                "Rejected by r{}@example.org: rejection {}",
                winners[0] % 5,
                winners[0]
            )
        );
        assert_eq!(final_call["status"], "rejected");
        assert_eq!(app.call_log.calls_of("export_session"), 0);
    }
    let approvals = final_call["approvals"].as_array().map_or(0, Vec::len);
    assert!(approvals <= 1, "{final_call:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.call_log.calls_of("export_session") <= 1);
    agent.close().await;
}

#[tokio::test]
async fn a_cancelled_request_ends_only_its_wait_and_the_next_call_picks_the_approval_up() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
        common::call_params("export_session", json!({})),
    ));
    let handle = agent
        .client
        .peer()
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .expect("the request is sent");
    let id = id_of(&alice.wait_pending(1).await[0]);
    assert_eq!(alice.call(&id).await["requests_waiting"], 1);

    handle
        .cancel(Some("the user changed their mind".to_owned()))
        .await
        .expect("the cancellation is sent");

    let call = alice.wait_requests(&id, 0).await;
    assert_eq!(call["status"], "pending", "the call stays in the queue");
    assert_eq!(kinds(&call), ["pending"]);
    let (status, body) = alice.approve(&id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["released"], true);
    let call = alice.call(&id).await;
    assert_eq!(call["status"], "approved", "nobody to send it for yet");
    assert!(call["pickup_by"].is_string(), "{call:#}");
    assert_eq!(app.call_log.calls_of("export_session"), 0);

    let result = agent.call("export_session", json!({})).await;
    assert!(!is_error(&result), "{}", text(&result));
    assert!(text(&result).starts_with("1BVtsOK"), "{}", text(&result));
    assert_eq!(alice.wait_status(&id, "completed").await["id"], id.as_str());
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    assert_eq!(alice.calls("pending").await.len(), 0, "no second row");
    agent.close().await;
}

#[tokio::test]
async fn deleting_the_session_ends_its_waits_and_the_call_stays_decidable() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let session = app.raw_session("2025-06-18").await;
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"export_session","arguments":{}}}"#;
    let response = app.post_in_session(&session, body).await;
    let waiting = tokio::spawn(common::messages(response));
    let id = id_of(&alice.wait_pending(1).await[0]);

    assert_eq!(app.delete_session(&session).await.status(), 200);

    let _ = tokio::time::timeout(common::WAIT, waiting).await;
    let call = alice.wait_requests(&id, 0).await;
    assert_eq!(call["status"], "pending");
    let (status, _) = alice.reject(&id, "not from a deleted session").await;
    assert_eq!(status, 200, "still decidable");

    let agent = app.agent().await;
    let told = agent.call("export_session", json!({})).await;
    assert!(is_error(&told));
    assert_eq!(
        text(&told),
        "Rejected by alice@example.org: not from a deleted session"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    agent.close().await;
}

#[tokio::test]
async fn a_stateless_client_that_closes_its_stream_gets_the_approved_result_when_it_calls_again() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"export_session","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let stateless = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "export_session"),
    ];
    let response = app.post("telegram", &stateless, body).await;
    assert_eq!(response.status(), 200);
    let id = id_of(&alice.wait_pending(1).await[0]);

    drop(response);

    let call = alice.wait_requests(&id, 0).await;
    assert_eq!(call["status"], "pending", "{call:#}");
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    assert_eq!(app.call_log.calls_of("export_session"), 0);

    let again = common::messages(app.post("telegram", &stateless, body).await).await;
    let answer = again.last().expect("an answer");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{answer}"
    );
    alice.wait_status(&id, "completed").await;
    assert_eq!(app.call_log.calls_of("export_session"), 1);
}

#[tokio::test]
async fn only_allowed_reviewers_decide_and_others_change_nothing() {
    let app = spawn(r#"{"action": "require_approval", "reviewers": ["security"]}"#).await;
    let viewer = app.reviewer("viewer@example.org", "viewer").await;
    let outsider = app.reviewer("outsider@example.org", "approver").await;
    let sec = app.reviewer("sec@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&viewer.wait_pending(1).await[0]);

    let (status, body) = viewer.approve(&id).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("viewer")));
    let (status, body) = outsider.reject(&id, "mine now").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not among the reviewers")),
        "{body}"
    );
    let anonymous = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/calls/{id}/approve")))
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), 401);
    let agent_token = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/calls/{id}/approve")))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("POST");
    assert_eq!(agent_token.status(), 401, "an agent cannot approve itself");
    let call_now = viewer.call(&id).await;
    assert_eq!(call_now["status"], "pending");
    assert!(call_now["approvals"].as_array().is_some_and(Vec::is_empty));

    let (status, body) = sec.approve(&id).await;
    assert_eq!(status, 200, "{body}");
    assert!(!is_error(&result_of(call).await));
    agent.close().await;
}

#[tokio::test]
async fn the_cli_lists_approves_and_rejects_parked_calls() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let first = agent.spawn_call("export_session", json!({}));
    let second = agent.spawn_call("send_message", json!({"chat_id": 1297381004, "text": "hi"}));
    let _ = alice.wait_pending(1).await;

    let listed = app.cli(&["pending", "--json"]).await;
    assert!(listed.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).expect("a JSON array");
    assert_eq!(rows.len(), 1, "only export_session needs approval here");
    for key in [
        "id",
        "upstream",
        "tool",
        "agent",
        "status",
        "created_at",
        "expires_at",
        "args_digest",
    ] {
        assert!(rows[0].get(key).is_some(), "{key} in {:#}", rows[0]);
    }
    let id = id_of(&rows[0]);
    assert!(
        second.await.is_ok(),
        "send_message is not parked in TEST_POLICY"
    );

    let approved = app.cli(&["approve", &id, "--reason", "ok by ops"]).await;
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let result = result_of(first).await;
    assert!(!is_error(&result), "{result:?}");
    let call = alice.wait_status(&id, "completed").await;
    assert_eq!(call["decided_by"], "cli");
    assert_eq!(call["approvals"][0]["via"], "cli");

    let again = app.cli(&["reject", &id, "--reason", "too late"]).await;
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!("call {id} is not pending: completed")),
        "{stderr}"
    );

    let third = agent.spawn_call("export_session", json!({}));
    let pending = alice.wait_pending(1).await;
    let id = id_of(&pending[0]);
    let rejected = app
        .cli(&[
            "reject",
            &id,
            "--reason",
            "not today",
            "--as",
            "alice@example.org",
        ])
        .await;
    assert!(rejected.status.success());
    let result = result_of(third).await;
    assert_eq!(text(&result), "Rejected by alice@example.org: not today");
    assert_eq!(app.call_log.calls_of("export_session"), 1);
    agent.close().await;
}

#[tokio::test]
async fn arguments_edited_in_the_store_after_parking_are_never_forwarded() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&alice.wait_pending(1).await[0]);

    // Someone with database access swaps the arguments behind the reviewer's back.
    let tampered = app
        .db
        .execute(
            "UPDATE tool_calls SET args_json = '{\"all\":true}' WHERE id = $1",
            &[&id],
        )
        .await;
    assert_eq!(tampered, 1);

    let (status, body) = alice.approve(&id).await;
    assert_eq!(status, 200, "{body}");
    let result = result_of(call).await;
    assert!(is_error(&result));
    assert!(text(&result).contains("not run"), "{}", text(&result));
    let call = alice.wait_status(&id, "failed").await;
    assert!(
        call["events"]
            .as_array()
            .and_then(|e| e.last())
            .is_some_and(|e| e["detail"].as_str().is_some_and(|d| d.contains("digest"))),
        "{call:#}"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    agent.close().await;
}

#[tokio::test]
async fn a_thousand_parked_calls_are_all_decided_and_delivered_to_their_own_requests() {
    const AGENTS: usize = 10;
    const PER_AGENT: usize = 100;
    // The agents share one token (one agent name) and one address (a thousand connections, each
    // holding a waiting call): the queue's and the listener's limits are raised to fit. A
    // thousand decisions at once queue for the pool's connections on a shared 2-core machine:
    // they may wait longer than the default 5 s, which is not what this test is about.
    let app = TestApp::spawn_with(Setup {
        policy: policy(r#"{"action": "require_approval"}"#),
        extra_toml: "max_connections_per_client = 2048\n\
                     [approval]\nmax_pending_per_agent = 1000\nmax_pending = 1000\n"
            .to_owned(),
        database_toml: "acquire_timeout = 60\n".to_owned(),
        ..Setup::default()
    })
    .await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let mut agents = Vec::new();
    for _ in 0..AGENTS {
        agents.push(app.agent().await);
    }
    // send_message needs approval in this policy; each call carries its own text.
    let mut calls = Vec::new();
    for (a, agent) in agents.iter().enumerate() {
        for n in 0..PER_AGENT {
            let text = format!("agent {a} message {n}");
            let call =
                agent.spawn_call("send_message", json!({"chat_id": 1297381004, "text": text}));
            calls.push((text, call));
        }
    }
    let total = AGENTS * PER_AGENT;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut pending = Vec::new();
    while pending.len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} parked",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut page = alice.calls("pending").await;
        let mut before = page.last().map(id_of);
        let mut all = std::mem::take(&mut page);
        while let Some(cursor) = before.take() {
            let (_, next) = alice
                .get(&format!(
                    "/api/v1/calls?status=pending&limit=500&before={cursor}"
                ))
                .await;
            let next = next["calls"].as_array().cloned().unwrap_or_default();
            before = next.last().map(id_of);
            all.extend(next);
        }
        pending = all;
    }
    assert_eq!(app.call_log.calls_of("send_message"), 0);

    // Approve all but every tenth, which is rejected with a reason naming its text.
    let alice = std::sync::Arc::new(alice);
    let mut decisions = Vec::new();
    for (i, call) in pending.iter().enumerate() {
        let alice = alice.clone();
        let id = id_of(call);
        let text = call["arguments"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        decisions.push(tokio::spawn(async move {
            let (status, body) = if i % 10 == 0 {
                alice.reject(&id, &format!("not {text}")).await
            } else {
                alice.approve(&id).await
            };
            assert_eq!(status, 200, "{body}");
        }));
        if decisions.len() >= 32 {
            for d in decisions.drain(..) {
                d.await.expect("a decision");
            }
        }
    }
    for d in decisions {
        d.await.expect("a decision");
    }

    let mut delivered = 0;
    let mut rejected = 0;
    let mut message_ids = std::collections::HashMap::new();
    for (text, call) in calls {
        let result = tokio::time::timeout(Duration::from_secs(120), call)
            .await
            .expect("every call is answered")
            .expect("the task ran")
            .expect("no protocol error");
        if is_error(&result) {
            assert_eq!(
                common::text(&result),
                format!("Rejected by alice@example.org: not {text}")
            );
            rejected += 1;
        } else {
            let sent = result
                .structured_content
                .clone()
                .expect("structured result");
            message_ids.insert(sent["message_id"].as_i64().expect("a message id"), text);
            delivered += 1;
        }
    }
    assert_eq!(rejected, total / 10);
    assert_eq!(delivered, total - total / 10);
    assert_eq!(app.call_log.calls_of("send_message"), delivered);
    // Each result went to its own request: the upstream's message with that id has its text.
    for (text, logged) in app.upstream_calls().iter().map(|c| {
        (
            c["arguments"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            c,
        )
    }) {
        assert!(message_ids.values().any(|t| *t == text), "{logged}");
    }
    let history = agents[0]
        .call(
            "get_messages",
            json!({"chat_id": 1297381004, "limit": 2000}),
        )
        .await;
    let messages = history.structured_content.expect("structured messages");
    let by_id: std::collections::HashMap<i64, String> = messages["messages"]
        .as_array()
        .expect("a message list")
        .iter()
        .filter_map(|m| Some((m["id"].as_i64()?, m["text"].as_str()?.to_owned())))
        .collect();
    for (id, text) in &message_ids {
        assert_eq!(by_id.get(id), Some(text), "message {id}");
    }
    for agent in agents {
        agent.close().await;
    }
}

#[tokio::test]
async fn a_call_that_cannot_be_recorded_for_review_is_refused_and_not_run() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    // Break the queue's history table: parking must fail, and fail closed.
    app.db.execute("DROP TABLE call_events", &[]).await;

    let result = agent.call("export_session", json!({})).await;

    assert!(is_error(&result));
    assert_eq!(
        text(&result),
        "Approval required by policy (telegram.export_session), but the approval queue cannot record the call right now; not run"
    );
    let count = app.db.count("SELECT COUNT(*) FROM tool_calls").await;
    assert_eq!(count, 0, "the half-written call was rolled back");
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    assert!(
        !is_error(&agent.call("get_chats", json!({})).await),
        "allowed calls still run"
    );
    agent.close().await;
}

#[tokio::test]
async fn a_client_that_takes_only_json_gets_the_released_result_as_one_body() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let session = app.raw_session("2025-06-18").await;
    let body = r#"{"jsonrpc":"2.0","id":"j1","method":"tools/call","params":{"name":"export_session","arguments":{}}}"#;
    let post = {
        let request = reqwest::Client::new()
            .post(app.mcp_url("telegram"))
            .bearer_auth(&app.token)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("mcp-session-id", &session)
            .body(body);
        tokio::spawn(async move { request.send().await })
    };
    let id = id_of(&alice.wait_pending(1).await[0]);
    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);

    let response = post.await.expect("the request task").expect("a response");
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    let answer: Value = response.json().await.expect("a JSON body");
    assert_eq!(answer["id"], "j1");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{answer}"
    );
}

#[tokio::test]
async fn stopping_airlock_tells_waiting_agents_to_call_again_and_keeps_their_calls() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&alice.wait_pending(1).await[0]);
    let store = app.store.clone();

    let _db = app.stop().await;

    let result = result_of(call).await;
    assert!(is_error(&result));
    assert!(
        text(&result).starts_with(&format!(
            "Waiting for approval of telegram.export_session (call {id}, expires "
        )) && text(&result).ends_with(
            " UTC); it has not run. Call export_session again with the same arguments to get \
             its result once a reviewer approves."
        ),
        "{}",
        text(&result)
    );
    let id = airlock::domain::CallId::parse(&id).expect("a call id");
    let row = store.call(&id).await.expect("read").expect("a row");
    assert_eq!(row.status, airlock::domain::CallStatus::Pending);
}

#[tokio::test]
async fn long_decimal_arguments_survive_the_round_trip_through_the_store() {
    let app = TestApp::spawn().await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let session = app.raw_session("2025-06-18").await;
    // More digits than an f64 holds: parsing, storing and parsing again must agree on the digest.
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"export_session","arguments":{"amount":27.039432827912286232,"n":[1e-7,0.1]}}}"#;
    let response = app.post_in_session(&session, body).await;
    let waiting = tokio::spawn(common::messages(response));
    let id = id_of(&alice.wait_pending(1).await[0]);

    let (status, _) = alice.approve(&id).await;
    assert_eq!(status, 200);
    let messages = tokio::time::timeout(common::WAIT, waiting)
        .await
        .expect("answered in time")
        .expect("the reader task");
    let answer = messages.last().expect("an answer");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{answer}"
    );
    alice.wait_status(&id, "completed").await;
}

#[tokio::test]
async fn the_cli_shows_agent_supplied_control_characters_escaped() {
    let app =
        TestApp::spawn_with_policy(r#"{"version": "1", "default": "require_approval"}"#).await;
    let alice = app.reviewer("alice@example.org", "approver").await;
    let session = app.raw_session("2025-06-18").await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_chats\r\u001b[2Kexport_session","arguments":{"note":"\u001b]0;owned\u0007"}}}"#;
    let response = app.post_in_session(&session, body).await;
    let _waiting = tokio::spawn(common::messages(response));
    alice.wait_pending(1).await;

    let listed = app.cli(&["pending"]).await;
    assert!(listed.status.success());
    let table = String::from_utf8(listed.stdout).expect("UTF-8");
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "no raw control characters reach the terminal: {table:?}"
    );
    assert!(
        table.contains("get_chats\\r\\u{1b}[2Kexport_session"),
        "{table}"
    );
}
