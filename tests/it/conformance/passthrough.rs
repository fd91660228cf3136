//! A 2026-07-28 client's requests through Airlock: passed through as they came to an upstream
//! that speaks 2026-07-28 (multi-round-trip results and their `requestState` both ways), and
//! translated for one that speaks only the handshake era (without the keys of the client's hop,
//! which such a server would find at odds with its session).

use serde_json::json;

use crate::common;

use super::fixture::Fixture;
use super::{ALLOW_ALL, airlock_before, spawn_fixture};

/// Airlock under `policy` in front of `fixture`, and what must live as long as it.
pub(super) async fn in_front_of(
    fixture: Fixture,
    policy: &str,
) -> (
    common::TestApp,
    tempfile::TempDir,
    tokio::task::JoinHandle<()>,
) {
    let (addr, serving) = spawn_fixture(fixture).await;
    let dir = tempfile::tempdir().expect("tmp");
    let app = airlock_before(addr, &dir, policy, String::new(), Vec::new()).await;
    (app, dir, serving)
}

#[tokio::test]
async fn a_2026_client_gets_an_upstreams_input_request_and_its_retry_with_the_state_completes() {
    let (app, _dir, _fixture) = in_front_of(Fixture::default(), ALLOW_ALL).await;
    let call = |params| app.stateless("conformance", &app.token, "tools/call", params);
    let tool = "test_input_required_result_request_state";

    let asked = call(json!({"name": tool, "arguments": {}})).await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked:#}");
    assert_eq!(
        result["inputRequests"]["confirm"]["method"], "elicitation/create",
        "{asked:#}"
    );
    let state = result["requestState"].as_str().expect("a requestState");

    let answered = call(json!({
        "name": tool,
        "arguments": {},
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}},
        "requestState": state
    }))
    .await;
    assert_eq!(answered["result"]["resultType"], "complete", "{answered:#}");
    let text = answered["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("state-ok"), "{answered:#}");

    // The state reaches the upstream unchanged: a changed one is the upstream's to refuse.
    let tampered = call(json!({
        "name": tool,
        "arguments": {},
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}},
        "requestState": format!("x{state}")
    }))
    .await;
    assert_eq!(tampered["error"]["code"], -32602, "{tampered:#}");
}

#[tokio::test]
async fn a_2026_client_reaches_a_handshake_only_http_upstream_through_translation() {
    let (app, _dir, _fixture) = in_front_of(Fixture::speaking(true), ALLOW_ALL).await;

    let called = app
        .stateless(
            "conformance",
            &app.token,
            "tools/call",
            json!({"name": "test_simple_text", "arguments": {}}),
        )
        .await;
    assert_eq!(
        called["result"]["content"][0]["text"], "This is a simple text response for testing.",
        "{called:#}"
    );
    assert_eq!(called["result"]["resultType"], "complete", "{called:#}");

    let listed = app
        .stateless("conformance", &app.token, "prompts/list", json!({}))
        .await;
    assert!(listed["result"]["prompts"].is_array(), "{listed:#}");
    assert_eq!(listed["result"]["ttlMs"], 0, "{listed:#}");
    assert_eq!(listed["result"]["cacheScope"], "private", "{listed:#}");
}

#[tokio::test]
async fn the_python_sdks_2026_client_answers_input_requests_and_an_approved_call_goes_on_after_them()
 {
    if !crate::third_party_clients::python_sdk_available() {
        return;
    }
    answers_input_requests_and_goes_on_after_an_approval("python3", &[PYTHON_MRTR]).await;
}

#[tokio::test]
async fn the_typescript_sdk_v2_answers_input_requests_and_an_approved_call_goes_on_after_them() {
    let v2 = std::path::Path::new(CLIENTS).join("node_modules/@modelcontextprotocol/client");
    let here = v2.join("package.json").exists() && common::runs("node", &["--version"]);
    if !common::outside_tool_available(
        "the MCP TypeScript SDK v2 (npm ci --prefix tests/clients)",
        here,
    ) {
        return;
    }
    answers_input_requests_and_goes_on_after_an_approval("node", &[TS_V2_MRTR]).await;
}

/// Runs an SDK agent (`program args... URL TOKEN`, printing what it saw as JSON) through Airlock
/// to the fixture: tools, a plain call, a call the upstream answers with an input request, and
/// one that needs approval first and an input request after; approves that one.
async fn answers_input_requests_and_goes_on_after_an_approval(program: &str, args: &[&str]) {
    let policy = r#"{"version": "1", "default": "allow", "tools": {
        "test_input_required_result_request_state": {"action": "require_approval"}}}"#;
    let (app, _dir, _fixture) = in_front_of(Fixture::default(), policy).await;
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    let client = tokio::process::Command::new(program)
        .args(args)
        .args([app.mcp_url("conformance"), app.token.clone()])
        .current_dir(CLIENTS)
        .kill_on_drop(true)
        .output();
    let client = tokio::spawn(client);

    let parked = reviewer.wait_pending(1).await;
    assert_eq!(
        parked[0]["tool"],
        "test_input_required_result_request_state"
    );
    let id = parked[0]["id"].as_str().expect("an id").to_owned();
    let (status, _) = reviewer.approve(&id).await;
    assert_eq!(status, 200);
    let output = tokio::time::timeout(common::WAIT, client)
        .await
        .expect("the client ends in time (the retry was not parked again)")
        .expect("the client task")
        .expect("run the client");
    assert!(
        output.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    assert!(
        seen["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t == "test_simple_text")),
        "{seen}"
    );
    assert_eq!(
        seen["simple"], "This is a simple text response for testing.",
        "{seen}"
    );
    assert_eq!(seen["greeted"], "Hello, Alice!", "{seen}");
    assert_eq!(seen["confirmed"]["is_error"], false, "{seen}");
    assert!(
        seen["confirmed"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("state-ok")),
        "the retry reached the upstream with its state: {seen}"
    );
    assert_eq!(
        seen["asked"],
        json!(["What is your name?", "Please confirm"]),
        "{seen}"
    );
    // The retry joined no queue: the one approved call is the only one there, completed.
    reviewer.wait_status(&id, "completed").await;
    assert!(reviewer.calls("pending").await.is_empty());
    let completed = reviewer.calls("completed").await;
    assert_eq!(
        completed.len(),
        1,
        "one parked call, not two: {completed:#?}"
    );
}

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
const TS_V2_MRTR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/ts_sdk_v2_mrtr.mjs"
);
const PYTHON_MRTR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/python_sdk_mrtr.py"
);

#[tokio::test]
async fn a_retry_with_its_state_is_charged_no_second_rate_limit_and_a_state_continues_once() {
    let policy = r#"{"version": "1", "default": "allow", "tools": {
        "test_input_required_result_request_state": {"rate_limit": {"max": 1, "window": 600}}}}"#;
    let (app, _dir, _fixture) = in_front_of(Fixture::default(), policy).await;
    let call = |params| app.stateless("conformance", &app.token, "tools/call", params);
    let tool = "test_input_required_result_request_state";
    let answers = json!({"confirm": {"action": "accept", "content": {"ok": true}}});

    let asked = call(json!({"name": tool, "arguments": {}})).await;
    let state = asked["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("an InputRequiredResult: {asked:#}"))
        .to_owned();
    let retry =
        json!({"name": tool, "arguments": {}, "inputResponses": answers, "requestState": state});
    let answered = call(retry.clone()).await;
    assert!(
        answered["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("state-ok")),
        "the retry continues the call the limit let through: {answered:#}"
    );

    // The same state again is no continuation: judged afresh, the limit (used once) refuses it.
    let replayed = call(retry).await;
    assert_eq!(replayed["result"]["isError"], true, "{replayed:#}");
    let text = replayed["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("Rate limit"), "{replayed:#}");
}

#[tokio::test]
async fn a_retry_of_a_tool_denied_since_its_first_round_is_refused() {
    let (app, dir, _fixture) = in_front_of(Fixture::default(), ALLOW_ALL).await;
    let call = |params| app.stateless("conformance", &app.token, "tools/call", params);
    let tool = "test_input_required_result_request_state";

    let asked = call(json!({"name": tool, "arguments": {}})).await;
    let state = asked["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("an InputRequiredResult: {asked:#}"))
        .to_owned();
    let denying = format!(
        r#"{{"version": "1", "default": "allow", "tools": {{"{tool}": {{"action": "deny", "reason": "not any more"}}}}}}"#
    );
    std::fs::write(dir.path().join("conformance.json"), denying).expect("edit the policy");
    wait_policy_reloaded(&app).await;

    let retried = call(json!({"name": tool, "arguments": {},
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}},
        "requestState": state}))
    .await;
    assert_eq!(retried["result"]["isError"], true, "{retried:#}");
    assert_eq!(
        retried["result"]["content"][0]["text"],
        format!("Denied by policy (conformance.{tool}): not any more"),
        "{retried:#}"
    );
}

/// Waits until `app` has reloaded its policy after an edit.
pub(super) async fn wait_policy_reloaded(app: &common::TestApp) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !app
        .store
        .audit_events_after(0, 1000)
        .await
        .expect("the log")
        .iter()
        .any(|event| event.kind == "policy_reloaded")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the policy was not reloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_2026_client_listens_to_a_handshake_only_upstreams_list_changes_through_airlock() {
    let (app, _dir, _fixture) = in_front_of(Fixture::speaking(true), ALLOW_ALL).await;
    listens_to_list_changes(&app, "conformance").await;
}

#[tokio::test]
async fn a_2026_stdio_upstreams_subscription_reaches_its_listener_under_the_listeners_own_id() {
    // Over stdio only the subscription id the upstream tags its notifications with says whose
    // they are; it is Airlock's id for the request, and the listener gets its own back.
    let (addr, _fixture) = spawn_fixture(Fixture::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let stdio = vec![super::stdio_fixture("stdio", false)];
    let app = airlock_before(addr, &dir, ALLOW_ALL, String::new(), stdio).await;
    listens_to_list_changes(&app, "stdio").await;
}

/// A 2026-07-28 client listens to `upstream`'s tool list: acknowledged, then told of a change
/// a call makes, each notification tagged with the listen request's own id.
async fn listens_to_list_changes(app: &common::TestApp, upstream: &str) {
    let params = common::with_meta(json!({
        "notifications": {"toolsListChanged": true, "resourcesListChanged": true}
    }));
    let body = json!({"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen", "params": params});
    let listen = |accept: &'static str| {
        reqwest::Client::new()
            .post(app.mcp_url(upstream))
            .bearer_auth(&app.token)
            .header("accept", accept)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "subscriptions/listen")
            .json(&body)
            .send()
    };
    let json_only = listen("application/json").await.expect("POST");
    assert_eq!(json_only.status(), 406, "a listen needs an event stream");
    let mut listening = listen("application/json, text/event-stream")
        .await
        .expect("POST");
    assert_eq!(listening.status(), 200);
    let mut seen = String::new();
    let mut read_until = async |needle: &str, seen: &mut String| {
        while !seen.contains(needle) {
            let chunk = tokio::time::timeout(common::WAIT, listening.chunk())
                .await
                .unwrap_or_else(|_| panic!("{needle} in time; so far: {seen}"))
                .expect("a chunk")
                .expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until("notifications/subscriptions/acknowledged", &mut seen).await;
    let ack = crate::tasks::last_message(&seen);
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "sub-1", "{ack}");
    // What was asked for and the upstream declares; nothing that was not asked for.
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourcesListChanged": true}),
        "{ack}"
    );

    let changed = app
        .stateless(
            upstream,
            &app.token,
            "tools/call",
            json!({"name": "test_trigger_tool_change", "arguments": {}}),
        )
        .await;
    assert_eq!(
        changed["result"]["content"][0]["text"],
        "The tool list changed"
    );
    read_until("notifications/tools/list_changed", &mut seen).await;
    let note = crate::tasks::last_message(&seen);
    assert_eq!(note["method"], "notifications/tools/list_changed", "{seen}");
    assert_eq!(note["params"]["_meta"][SUBSCRIPTION_ID], "sub-1", "{note}");
}

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
