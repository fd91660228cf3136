//! A 2026-07-28 client's requests through Airlock: passed through as they came to an upstream
//! that speaks 2026-07-28 (multi-round-trip results and their `requestState` both ways), and
//! translated for one that speaks only the handshake era (without the keys of the client's hop,
//! which such a server would find at odds with its session).

use serde_json::json;

use super::fixture::Fixture;
use super::{airlock_before, spawn_fixture};

#[tokio::test]
async fn a_2026_client_gets_an_upstreams_input_request_and_its_retry_with_the_state_completes() {
    let (addr, _fixture) = spawn_fixture(Fixture::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let app = airlock_before(addr, &dir, String::new()).await;
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
    let (addr, _fixture) = spawn_fixture(Fixture {
        handshake_only: true,
    })
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let app = airlock_before(addr, &dir, String::new()).await;

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
