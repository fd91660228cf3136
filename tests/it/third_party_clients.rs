//! Clients nobody here wrote, used the way people will: the official MCP Python SDK in each of its
//! connection modes, and `airlock demo` followed by the very client command it prints (the MCP
//! Inspector's CLI), and the demo's printed approve command. Python's `mcp` package and `npx` are
//! needed by some; `.ci/run` installs them. (The agent SDKs through long approvals are in
//! `agent_sdks`.)

use crate::common;

use std::process::Command;

use common::{AIRLOCK, TestApp, outside_tool_available, runs};
use serde_json::Value;

const PYTHON_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/python_sdk_client.py"
);

pub fn python_sdk_available() -> bool {
    outside_tool_available(
        "the MCP Python SDK (pip install mcp)",
        runs("python3", &["-c", "import mcp.client.client, httpx2"]),
    )
}

#[tokio::test]
async fn the_python_sdk_works_through_airlock_in_every_mode() {
    if !python_sdk_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    for mode in ["legacy", "2026-07-28", "auto"] {
        let client = tokio::process::Command::new("python3")
            .args([PYTHON_CLIENT, &app.mcp_url("telegram"), &app.token, mode])
            .output();
        let client = tokio::spawn(client);
        // The client ends by calling export_session, which waits for this approval.
        let parked = reviewer.wait_pending(1).await;
        let (status, _) = reviewer
            .approve(parked[0]["id"].as_str().expect("an id"))
            .await;
        assert_eq!(status, 200);
        let output = client
            .await
            .expect("the client task")
            .expect("run the Python client");
        assert!(
            output.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let seen: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
        assert_eq!(
            seen["tools"].as_array().map(Vec::len),
            Some(6),
            "{mode}: {seen}"
        );
        assert_eq!(seen["get_chats"]["is_error"], false, "{mode}: {seen}");
        assert_eq!(seen["delete_chat"]["is_error"], true, "{mode}: {seen}");
        assert_eq!(
            seen["delete_chat"]["text"],
            "Denied by policy (telegram.delete_chat): never from an agent"
        );
        assert_eq!(seen["slow_task"], "completed 2 steps", "{mode}: {seen}");
        assert_eq!(seen["export_session"]["is_error"], false, "{mode}: {seen}");
        assert!(
            seen["export_session"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("1BVtsOK")),
            "{mode}: the approved call's real result: {seen}"
        );
    }
    assert_eq!(app.call_log.calls_of("get_chats"), 3);
    assert_eq!(app.call_log.calls_of("delete_chat"), 0);
}

#[test]
fn the_demo_prints_a_client_command_that_connects() {
    if !outside_tool_available("npx (Node.js)", runs("npx", &["--version"])) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut demo, banner) = common::start_demo(dir.path());
    let inspector = banner
        .iter()
        .find(|l| l.trim_start().starts_with("npx ") && l.contains("inspector"))
        .unwrap_or_else(|| panic!("the demo prints an Inspector command: {banner:#?}"))
        .trim()
        .to_owned();
    assert!(
        banner
            .iter()
            .any(|l| l.contains("claude mcp add --transport http")),
        "{banner:#?}"
    );

    let listed = Command::new("sh")
        .args(["-c", &inspector])
        .output()
        .expect("run the printed Inspector command");
    let denied = Command::new("sh")
        .args([
            "-c",
            &inspector.replace(
                "--method tools/list",
                "--method tools/call --tool-name delete_chat --tool-arg chat_id=777000",
            ),
        ])
        .output()
        .expect("run the Inspector for a tool call");
    let _ = demo.kill();
    let _ = demo.wait();

    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let tools: Value = serde_json::from_slice(&listed.stdout).expect("the Inspector prints JSON");
    assert_eq!(tools["tools"].as_array().map(Vec::len), Some(6), "{tools}");
    let result: Value = serde_json::from_slice(&denied.stdout).expect("the Inspector prints JSON");
    assert_eq!(result["isError"], true, "{result}");
    assert_eq!(
        result["content"][0]["text"],
        "Denied by policy (telegram.delete_chat): never from an agent"
    );
    let policy = dir.path().join("telegram-policy.json");
    assert!(policy.exists(), "the demo writes its policy for editing");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_parks_export_session_and_its_printed_commands_release_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut demo, banner) = common::start_demo(dir.path());
    let url = common::banner_value(&banner, "MCP endpoint");
    let token = common::banner_value(&banner, "agent token");
    assert!(
        banner
            .iter()
            .any(|l| l.contains("After 50 s its request is answered")),
        "the banner says what an agent sees when nobody decides: {banner:#?}"
    );
    let reviewer_token = common::banner_value(&banner, "reviewer")
        .rsplit(' ')
        .next()
        .expect("the reviewer's API token");
    let cli_config = banner
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("airlock --config "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the demo prints a CLI command: {banner:#?}"))
        .to_owned();
    let agent = common::Agent::connect(url, token).await;

    let call = agent.spawn_call("export_session", serde_json::json!({}));
    let api = url.replace("/mcp/telegram", "/api/v1/calls?status=pending");
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let id = loop {
        let page: Value = reqwest::Client::new()
            .get(&api)
            .bearer_auth(reviewer_token)
            .send()
            .await
            .expect("GET the queue")
            .json()
            .await
            .expect("JSON");
        if let Some(id) = page["calls"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never parked: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let approved = Command::new(AIRLOCK)
        .args(["--config", &cli_config, "approve", &id])
        .env("AIRLOCK_LOG", "warn")
        .output()
        .expect("run the printed approve command");
    let result = common::result_of(call).await;
    agent.close().await;
    let _ = demo.kill();
    let _ = demo.wait();

    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert!(common::text(&result).starts_with("1BVtsOK"), "{result:?}");
}
