//! The official agent SDKs through approvals that take longer than their clients wait: the
//! TypeScript SDK (`@modelcontextprotocol/sdk`, pinned in `tests/clients/package.json`) with its
//! default options, and the Python SDK in both of its protocol families, each calling again after
//! Airlock's `hold`; and the TypeScript SDK's own MCP task support, polling a task through the
//! approval. These take 75 s each (the point is to outlast the SDKs' 60 s), so they run first.

use crate::common;
use crate::third_party_clients::python_sdk_available;

use common::{TestApp, outside_tool_available, runs};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

fn ts_sdk_available() -> bool {
    outside_tool_available(
        "the MCP TypeScript SDK (npm ci --prefix tests/clients)",
        std::path::Path::new(CLIENTS)
            .join("node_modules/@modelcontextprotocol/sdk/package.json")
            .exists()
            && runs("node", &["--version"]),
    )
}

/// An SDK agent process that calls one tool, then again each time it is asked.
struct Caller {
    name: &'static str,
    child: tokio::process::Child,
    answers: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Caller {
    fn start(name: &'static str, program: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(CLIENTS)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} client: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            name,
            child,
            answers: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// What the client printed about its latest call.
    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            self.answers.next_line(),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: no answer in 120 s", self.name))
        .expect("read the client's output")
        .unwrap_or_else(|| panic!("{}: the client exited", self.name));
        serde_json::from_str(&line).expect("the client prints JSON")
    }

    async fn call_again(&mut self) -> Value {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"again\n").await.expect("ask the client");
        stdin.flush().await.expect("ask the client");
        self.answer().await
    }
}

/// One test, so the 75 s are spent once: the clients run side by side, each with its own
/// arguments (so each parks its own call).
#[tokio::test(flavor = "multi_thread")]
async fn the_official_sdks_outlast_a_75_s_approval_by_calling_again_or_polling_a_task() {
    if !ts_sdk_available() || !python_sdk_available() {
        return;
    }
    // Airlock's defaults: a request is held 50 s, under the SDKs' 60 s.
    let app = TestApp::spawn().await;
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    let url = app.mcp_url("telegram");
    let started = std::time::Instant::now();
    let mut callers = vec![
        Caller::start(
            "typescript",
            "node",
            &[
                "ts_sdk_client.mjs",
                &url,
                &app.token,
                "export_session",
                r#"{"account": "ts"}"#,
            ],
        ),
        Caller::start(
            "python legacy",
            "python3",
            &[
                "python_sdk_caller.py",
                &url,
                &app.token,
                "legacy",
                "export_session",
                r#"{"account": "py-legacy"}"#,
            ],
        ),
        Caller::start(
            "python 2026-07-28",
            "python3",
            &[
                "python_sdk_caller.py",
                &url,
                &app.token,
                "2026-07-28",
                "export_session",
                r#"{"account": "py-2026"}"#,
            ],
        ),
    ];
    let mut tasks = Caller::start(
        "typescript tasks",
        "node",
        &[
            "ts_sdk_task_client.mjs",
            &url,
            &app.token,
            "export_session",
            r#"{"account": "ts-task"}"#,
        ],
    );

    let created = tasks.answer().await;
    assert_eq!(created["type"], "taskCreated", "{created}");
    assert_eq!(created["status"], "working");
    let task_id = created["taskId"].as_str().expect("a task id").to_owned();
    let mut other =
        crate::tasks::TaskSession::open(&app, &app.token_for("other-agent").await).await;
    let peek = other.request("tasks/get", json!({"taskId": task_id})).await;
    assert_eq!(
        peek["error"]["code"], -32602,
        "another agent cannot see it: {peek}"
    );
    let parked = reviewer.wait_pending(4).await;
    for caller in &mut callers {
        let first = caller.answer().await;
        let name = caller.name;
        assert_eq!(first["is_error"], true, "{name}: {first}");
        assert!(
            first["text"].as_str().is_some_and(|t| t
                .starts_with("Waiting for approval of telegram.export_session")
                && t.contains("Call export_session again with the same arguments")),
            "{name}: the waiting text, not a timeout: {first}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_secs(75).saturating_sub(started.elapsed())).await;
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    for call in &parked {
        let (status, _) = reviewer.approve(call["id"].as_str().expect("an id")).await;
        assert_eq!(status, 200);
    }

    for caller in &mut callers {
        let result = caller.call_again().await;
        let name = caller.name;
        assert_eq!(result["is_error"], false, "{name}: {result}");
        assert!(
            result["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("1BVtsOK")),
            "{name}: the session string: {result}"
        );
    }
    let mut statuses = Vec::new();
    let result = loop {
        let message = tasks.answer().await;
        match message["type"].as_str() {
            Some("taskStatus") => statuses.push(message["status"].clone()),
            _ => break message,
        }
    };
    assert_eq!(result["type"], "result", "{result} after {statuses:?}");
    assert_eq!(result["is_error"], false, "{result}");
    assert!(
        result["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1BVtsOK")),
        "{result}"
    );
    assert!(
        statuses.len() >= 10,
        "the task was polled for 75 s: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&json!("completed")));
    assert_eq!(app.call_log.calls_of("export_session"), 4, "once each");
    assert!(reviewer.calls("pending").await.is_empty());
}
