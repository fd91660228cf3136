//! The proxy is faithful: an rmcp client sees the same catalogue, results, progress and
//! cancellation through Airlock as when it talks to the demo upstream directly. Covers a stdio
//! upstream (shared and per-session children), a Streamable HTTP upstream, a 2026-07-28 client,
//! and an upstream that crashes mid-call.

use crate::common;

use std::time::Duration;

use airlock::config::Isolation;
use common::{AIRLOCK, Agent, ProgressRecorder, Setup, TestApp, WAIT, call_params, is_error, text};
use rmcp::model::{
    ClientRequest, GetPromptRequestParams, ProtocolVersion, ReadResourceRequestParams, Request,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, PeerRequestOptions};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const ALICE: i64 = 1_297_381_004;

/// The demo upstream as a direct stdio child of the test, for comparison.
async fn direct() -> rmcp::service::RunningService<RoleClient, ProgressRecorder> {
    let mut command = tokio::process::Command::new(AIRLOCK);
    command.arg("demo-upstream").env("AIRLOCK_LOG", "warn");
    let transport = TokioChildProcess::new(command).expect("spawn the demo upstream");
    let (handler, _) = ProgressRecorder::new();
    handler.serve(transport).await.expect("a direct handshake")
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

#[tokio::test]
async fn catalogue_resources_prompts_and_results_match_a_direct_connection() {
    let app = TestApp::spawn().await;
    let proxied = app.agent().await;
    let direct = direct().await;

    let via = proxied
        .client
        .peer_info()
        .expect("initialize result via airlock");
    let straight = direct.peer_info().expect("initialize result directly");
    assert_eq!(to_json(&via.server_info), to_json(&straight.server_info));
    assert_eq!(to_json(&via.capabilities), to_json(&straight.capabilities));
    assert_eq!(via.instructions, straight.instructions);

    let tools_via = proxied
        .client
        .list_all_tools()
        .await
        .expect("tools/list via airlock");
    let tools_direct = direct.list_all_tools().await.expect("tools/list directly");
    assert_eq!(to_json(&tools_via), to_json(&tools_direct));
    let export = tools_via
        .iter()
        .find(|t| t.name == "export_session")
        .expect("listed");
    assert_eq!(
        export.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );

    let resources_via = proxied
        .client
        .list_all_resources()
        .await
        .expect("resources/list");
    assert_eq!(
        to_json(&resources_via),
        to_json(
            &direct
                .list_all_resources()
                .await
                .expect("resources/list directly")
        )
    );
    let uri = resources_via[0].uri.clone();
    assert_eq!(
        to_json(
            &proxied
                .client
                .read_resource(ReadResourceRequestParams::new(uri.clone()))
                .await
                .expect("read")
        ),
        to_json(
            &direct
                .read_resource(ReadResourceRequestParams::new(uri))
                .await
                .expect("read directly")
        )
    );

    let prompts = proxied
        .client
        .list_all_prompts()
        .await
        .expect("prompts/list");
    assert_eq!(
        to_json(&prompts),
        to_json(
            &direct
                .list_all_prompts()
                .await
                .expect("prompts/list directly")
        )
    );
    let mut args = serde_json::Map::new();
    args.insert("chat_id".to_owned(), json!(ALICE.to_string()));
    let get = || GetPromptRequestParams::new(prompts[0].name.clone()).with_arguments(args.clone());
    assert_eq!(
        to_json(&proxied.client.get_prompt(get()).await.expect("prompts/get")),
        to_json(
            &direct
                .get_prompt(get())
                .await
                .expect("prompts/get directly")
        )
    );

    let chats_via = proxied.call("get_chats", json!({})).await;
    let chats_direct = direct
        .call_tool(call_params("get_chats", json!({})))
        .await
        .expect("get_chats directly");
    assert_eq!(to_json(&chats_via), to_json(&chats_direct));

    // An upstream error passes through as the upstream's own error.
    let bad = proxied
        .client
        .call_tool(call_params(
            "get_messages",
            json!({"chat_id": "not a number"}),
        ))
        .await;
    let bad_direct = direct
        .call_tool(call_params(
            "get_messages",
            json!({"chat_id": "not a number"}),
        ))
        .await;
    assert_eq!(format!("{bad:?}"), format!("{bad_direct:?}"));

    proxied.close().await;
    let _ = direct.cancel().await;
}

#[tokio::test]
async fn progress_notifications_reach_the_agent_in_order() {
    let app = TestApp::spawn().await;
    let mut agent = app.agent().await;
    let call = tokio::spawn({
        let peer = agent.client.peer().clone();
        async move {
            peer.call_tool(call_params("slow_task", json!({"steps": 4, "step_ms": 50})))
                .await
        }
    });
    // rmcp's call_tool attaches a progress token; each step arrives as a notification.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(agent.next_progress().await.progress);
    }
    assert_eq!(seen, [1.0, 2.0, 3.0, 4.0]);
    let result = tokio::time::timeout(WAIT, call)
        .await
        .expect("slow_task ends")
        .expect("task")
        .expect("slow_task result");
    assert_eq!(text(&result), "completed 4 steps");
    agent.close().await;
}

#[tokio::test]
async fn cancelling_a_call_reaches_the_upstream() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    let request = ClientRequest::CallToolRequest(Request::new(call_params(
        "slow_task",
        json!({"steps": 200, "step_ms": 50}),
    )));
    let handle = agent
        .client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("slow_task sent");
    app.call_log
        .wait_for("slow_task starting", |e| e["tool"] == "slow_task")
        .await;

    handle
        .cancel(Some("the agent changed its mind".into()))
        .await
        .expect("notifications/cancelled sent");

    let cancelled = app
        .call_log
        .wait_for("the cancellation", |e| e["event"] == "cancelled")
        .await;
    assert_eq!(cancelled["tool"], "slow_task");
    // The session still works after the cancellation.
    assert!(!is_error(&agent.call("get_chats", json!({})).await));
    agent.close().await;
}

#[tokio::test]
async fn sessions_on_a_shared_child_do_not_see_each_others_answers() {
    let app = TestApp::spawn().await;
    let a = app.agent().await;
    let b = app.agent().await;
    // Both clients number their requests the same way and their calls overlap on the one child;
    // the rewritten ids must not collide, and each gets its own answer.
    let (ra, rb) = tokio::join!(
        a.call("slow_task", json!({"steps": 3, "step_ms": 60})),
        b.call("slow_task", json!({"steps": 5, "step_ms": 30})),
    );
    assert_eq!(text(&ra), "completed 3 steps");
    assert_eq!(text(&rb), "completed 5 steps");
    let pids: std::collections::BTreeSet<_> = app
        .upstream_calls()
        .iter()
        .filter_map(|c| c["pid"].as_i64())
        .collect();
    assert_eq!(pids.len(), 1, "one shared child served both sessions");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn session_isolation_gives_each_session_its_own_child() {
    let app = TestApp::spawn_with(Setup {
        isolation: Some(Isolation::Session),
        ..Setup::default()
    })
    .await;
    let a = app.agent().await;
    let b = app.agent().await;
    a.call("get_chats", json!({})).await;
    b.call("get_chats", json!({})).await;
    let pids: std::collections::BTreeSet<_> = app
        .upstream_calls()
        .iter()
        .filter_map(|c| c["pid"].as_i64())
        .collect();
    assert_eq!(pids.len(), 2, "{:?}", app.upstream_calls());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_streamable_http_upstream_works_like_a_stdio_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let upstream_addr = listener.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tmp");
    let http_log = common::CallLog(dir.path().join("http-calls.jsonl"));
    let opts = airlock::demo_upstream::DemoOptions {
        call_log: Some(http_log.0.clone()),
        ..Default::default()
    };
    let server = tokio::spawn(airlock::demo_upstream::serve_http(listener, opts));
    let policy = dir.path().join("files.json");
    std::fs::write(
        &policy,
        r#"{"version":"1","default":"deny","tools":{"get_chats":{},"slow_task":{},"delete_chat":{"action":"deny","reason":"no"}}}"#,
    )
    .expect("policy");
    let app = TestApp::spawn_with(Setup {
        upstreams: vec![common::http_upstream(
            "remote",
            format!("http://{upstream_addr}/mcp"),
            policy,
        )],
        ..Setup::default()
    })
    .await;

    let mut agent = Agent::connect(&app.mcp_url("remote"), &app.token).await;
    let tools = agent
        .client
        .list_all_tools()
        .await
        .expect("tools/list over http");
    assert_eq!(tools.len(), 6);
    assert!(!is_error(&agent.call("get_chats", json!({})).await));
    let denied = agent.call("delete_chat", json!({"chat_id": 1})).await;
    assert_eq!(text(&denied), "Denied by policy (remote.delete_chat): no");

    let call = tokio::spawn({
        let peer = agent.client.peer().clone();
        async move {
            peer.call_tool(call_params("slow_task", json!({"steps": 3, "step_ms": 30})))
                .await
        }
    });
    for expected in [1.0, 2.0, 3.0] {
        assert_eq!(agent.next_progress().await.progress, expected);
    }
    assert!(call.await.expect("task").is_ok());

    let tools_seen: Vec<_> = http_log
        .tool_calls()
        .iter()
        .map(|c| c["tool"].clone())
        .collect();
    assert_eq!(tools_seen, [json!("get_chats"), json!("slow_task")]);
    agent.close().await;
    server.abort();
}

#[tokio::test]
async fn a_2026_07_28_client_discovers_and_calls_without_a_session() {
    let app = TestApp::spawn().await;
    let (handler, _) = ProgressRecorder::new();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.mcp_url("telegram"))
            .auth_header(&app.token),
    );
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let client = tokio::time::timeout(WAIT, handler.serve_with_lifecycle(transport, lifecycle))
        .await
        .expect("discovery in time")
        .expect("server/discover through airlock");

    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), 6);
    let chats = client
        .call_tool(call_params("get_chats", json!({})))
        .await
        .expect("get_chats");
    assert_ne!(chats.is_error, Some(true));
    let denied = client
        .call_tool(call_params("delete_chat", json!({"chat_id": 1})))
        .await
        .expect("a result");
    assert_eq!(
        text(&denied),
        "Denied by policy (telegram.delete_chat): never from an agent"
    );
    assert_eq!(app.call_log.calls_of("get_chats"), 1);
    assert_eq!(app.call_log.calls_of("delete_chat"), 0);
    let _ = client.cancel().await;
}

#[tokio::test]
async fn an_upstream_that_crashes_mid_call_gives_an_error_and_comes_back() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    let call = tokio::spawn({
        let peer = agent.client.peer().clone();
        async move {
            peer.call_tool(call_params(
                "slow_task",
                json!({"steps": 200, "step_ms": 50}),
            ))
            .await
        }
    });
    let started = app
        .call_log
        .wait_for("slow_task starting", |e| e["tool"] == "slow_task")
        .await;
    let pid = started["pid"].as_i64().expect("a pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    let result = tokio::time::timeout(WAIT, call)
        .await
        .expect("an answer despite the crash")
        .expect("task")
        .expect("a tool result, not a protocol failure");
    assert!(is_error(&result));
    assert!(
        text(&result).starts_with("Upstream telegram unavailable: process exited"),
        "{}",
        text(&result)
    );

    // The supervisor restarts the child; the same session works again.
    app.wait_ready().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let again = agent.call("get_chats", json!({})).await;
        if !is_error(&again) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new_pid = app
        .call_log
        .wait_for("the new child", |e| e["event"] == "started")
        .await["pid"]
        .clone();
    assert_ne!(new_pid.to_string(), pid);
    agent.close().await;
}
