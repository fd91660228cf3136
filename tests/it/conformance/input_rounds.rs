//! A handshake-era upstream's server requests (elicitation, sampling) reach a 2026-07-28 client
//! as input requests: an `InputRequiredResult` with Airlock's own `requestState`, and the retry
//! that answers it goes on with the same upstream call.

use serde_json::{Value, json};

use crate::common;

use super::fixture::Fixture;
use super::passthrough::in_front_of;
use super::{ALLOW_ALL, airlock_before, spawn_fixture, stdio_fixture};

/// `params` of a 2026-07-28 request from a client declaring `capabilities`.
fn declaring(capabilities: Value, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/clientCapabilities": capabilities});
    params
}

/// A 2026-07-28 `tools/call` to the `conformance` upstream as request `id`: its answer.
async fn call_as(app: &common::TestApp, id: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": common::with_meta(params.clone())});
    let response = reqwest::Client::new()
        .post(app.mcp_url("conformance"))
        .bearer_auth(&app.token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", params["name"].as_str().unwrap_or_default())
        .json(&body)
        .send()
        .await
        .expect("POST");
    common::messages(response)
        .await
        .into_iter()
        .rfind(|m| m.get("method").is_none())
        .expect("an answer")
}

/// The first text of a result.
fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_upstreams_elicitation_is_asked_as_an_input_request_and_the_retry_goes_on_with_the_call()
{
    let (app, _dir, _fixture) = in_front_of(Fixture::speaking(true), ALLOW_ALL).await;
    let call = |params| app.stateless("conformance", &app.token, "tools/call", params);
    let elicit = json!({"name": "test_elicitation", "arguments": {"message": "Your name?"}});
    let caps = json!({"elicitation": {}});

    let asked = call(declaring(caps.clone(), elicit.clone())).await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked:#}");
    let request = &result["inputRequests"]["elicitation/create"];
    assert_eq!(request["method"], "elicitation/create", "{asked:#}");
    assert_eq!(request["params"]["message"], "Your name?", "{asked:#}");
    let state = result["requestState"].as_str().expect("a requestState");

    let mut retry = declaring(caps.clone(), elicit.clone());
    retry["inputResponses"] =
        json!({"elicitation/create": {"action": "accept", "content": {"response": "Alice"}}});
    retry["requestState"] = json!(state);
    let answered = call_as(&app, "retry-1", retry.clone()).await;
    assert_eq!(answered["result"]["resultType"], "complete", "{answered:#}");
    assert_eq!(answered["id"], "retry-1", "the retry's own id");
    assert_eq!(
        text(&answered),
        r#"User response: action=accept, content={"response":"Alice"}"#,
        "{answered:#}"
    );

    // A state continues once: the same retry again is refused, not run again.
    let again = call(retry).await;
    assert_eq!(again["error"]["code"], -32602, "{again:#}");

    // One upstream call for the two rounds: allowed once, completed once.
    app.wait_audit_event("completed").await;
    let events = app
        .store
        .audit_events_after(0, 1000)
        .await
        .expect("the log");
    let kinds = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(kinds("allowed"), 1);
    assert_eq!(kinds("completed"), 1);
}

#[tokio::test]
async fn a_client_that_declared_no_elicitation_is_not_asked_and_the_upstream_hears_no() {
    let (app, _dir, _fixture) = in_front_of(Fixture::speaking(true), ALLOW_ALL).await;
    let answered = app
        .stateless(
            "conformance",
            &app.token,
            "tools/call",
            json!({"name": "test_elicitation", "arguments": {"message": "Your name?"}}),
        )
        .await;
    assert_eq!(answered["result"]["resultType"], "complete", "{answered:#}");
    assert!(
        text(&answered).starts_with("Not supported or error"),
        "the upstream was told the client cannot answer: {answered:#}"
    );
}

#[tokio::test]
async fn a_stdio_upstreams_sampling_request_is_asked_of_the_agents_2026_call_on_its_own_child() {
    let (addr, _fixture) = spawn_fixture(Fixture::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    // Over stdio nothing in a server request names its call: it goes to a 2026-07-28 call only
    // on a child of that agent's alone.
    let old = vec![airlock::config::UpstreamConfig {
        isolation: Some(airlock::config::Isolation::Agent),
        ..stdio_fixture("old", true)
    }];
    let app = airlock_before(addr, &dir, ALLOW_ALL, String::new(), old).await;
    let call = |params| app.stateless("old", &app.token, "tools/call", params);
    let sample = json!({"name": "test_sampling", "arguments": {"prompt": "2 + 2?"}});
    let caps = json!({"sampling": {}});

    let asked = call(declaring(caps.clone(), sample.clone())).await;
    let request = &asked["result"]["inputRequests"]["sampling/createMessage"];
    assert_eq!(
        request["params"]["messages"][0]["content"]["text"], "2 + 2?",
        "{asked:#}"
    );
    let mut retry = declaring(caps, sample);
    retry["inputResponses"] = json!({"sampling/createMessage": {
        "role": "assistant", "content": {"type": "text", "text": "4"}, "model": "test"}});
    retry["requestState"] = asked["result"]["requestState"].clone();
    let answered = call(retry).await;
    assert_eq!(text(&answered), "LLM response: 4", "{answered:#}");
}

#[tokio::test]
async fn the_retry_of_a_call_whose_tool_was_denied_meanwhile_is_refused() {
    let (app, dir, _fixture) = in_front_of(Fixture::speaking(true), ALLOW_ALL).await;
    let call = |params| app.stateless("conformance", &app.token, "tools/call", params);
    let elicit = json!({"name": "test_elicitation", "arguments": {"message": "Sure?"}});
    let caps = json!({"elicitation": {}});
    let asked = call(declaring(caps.clone(), elicit.clone())).await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked:#}");

    let denying = r#"{"version": "1", "default": "allow", "tools": {
        "test_elicitation": {"action": "deny", "reason": "not any more"}}}"#;
    std::fs::write(dir.path().join("conformance.json"), denying).expect("edit the policy");
    super::passthrough::wait_policy_reloaded(&app).await;

    let mut retry = declaring(caps, elicit);
    retry["inputResponses"] =
        json!({"elicitation/create": {"action": "accept", "content": {"response": "yes"}}});
    retry["requestState"] = asked["result"]["requestState"].clone();
    let refused = call(retry).await;
    assert_eq!(refused["result"]["isError"], true, "{refused:#}");
    assert_eq!(
        text(&refused),
        "Denied by policy (conformance.test_elicitation): not any more"
    );
    // The call held upstream is let go: its trail ends without a result, saying why.
    let ended = app.wait_audit_event("outcome_unknown").await;
    let detail = ended.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("cancelled on retry"), "{detail}");
}

#[tokio::test]
async fn the_python_sdks_2026_client_answers_a_handshake_era_upstreams_elicitation_through_airlock()
{
    if !crate::third_party_clients::python_sdk_available() {
        return;
    }
    let (app, _dir, _fixture) = in_front_of(Fixture::speaking(true), ALLOW_ALL).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_sdk_elicit.py"
    );
    let output = tokio::time::timeout(
        common::WAIT,
        tokio::process::Command::new("python3")
            .args([script, &app.mcp_url("conformance"), &app.token])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client ends in time")
    .expect("run the client");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    assert_eq!(seen["asked"], json!(["Your name?"]), "{seen}");
    assert_eq!(
        seen["text"], r#"User response: action=accept, content={"response":"Alice"}"#,
        "{seen}"
    );
}
