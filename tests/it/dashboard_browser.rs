//! The dashboard in a real headless Chromium: a reviewer signs in, watches a call made by a real
//! rmcp agent appear on the open queue page without a reload, opens it, and decides with a reason;
//! the waiting agent gets the result and the history shows the decision.
//!
//! These tests skip on a machine without `chromedriver` and fail under `CI=true` (see
//! `common::browser`). With `AIRLOCK_SCREENSHOTS=DIR` they also save the README's screenshots.

use crate::common;

use common::browser::Browser;
use common::{TestApp, result_of, text};
use serde_json::json;

/// Saves a screenshot named `name` when `AIRLOCK_SCREENSHOTS` names a directory.
async fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("AIRLOCK_SCREENSHOTS") {
        browser
            .screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")))
            .await;
    }
}

/// Signs in, opens the queue, and has the agent park `export_session` while the page is open.
/// Returns the browser on the call's page, the agent's pending call, and the call id.
async fn open_a_parked_call_from_the_live_queue(
    app: &TestApp,
    agent: &common::Agent,
) -> Option<(
    Browser,
    tokio::task::JoinHandle<Result<rmcp::model::CallToolResult, rmcp::ServiceError>>,
    String,
)> {
    let browser = Browser::start().await?;
    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    browser
        .sign_in(&app.url(""), "alice@example.org", &password)
        .await;
    browser.goto(&app.url("/")).await;
    browser.wait_for_text("Nothing is waiting").await;
    // A mark on this page's window: it survives only as long as the page is not reloaded.
    browser.execute("window.airlockTestMark = 42;").await;

    let call = agent.spawn_call(
        "export_session",
        json!({"account": "+15550100", "note": "<b>weekly backup</b>"}),
    );
    let row = browser.find("tr[data-call-id]").await;
    let id = browser
        .execute("return document.querySelector('tr[data-call-id]').getAttribute('data-call-id');")
        .await
        .as_str()
        .expect("the row names its call")
        .to_owned();
    let row_text = browser.text(&row).await;
    assert!(row_text.contains("telegram.export_session"), "{row_text}");
    assert!(row_text.contains("test-agent"), "{row_text}");
    assert!(
        row_text.contains("<b>weekly backup</b>"),
        "markup shown as text: {row_text}"
    );
    assert!(
        row_text.contains("credential"),
        "the risk badge: {row_text}"
    );
    assert_eq!(
        browser.execute("return window.airlockTestMark;").await,
        json!(42),
        "the row arrived without a reload"
    );
    assert_eq!(
        browser.title().await,
        "(1) Airlock",
        "the title counts what waits"
    );
    screenshot(&browser, "queue").await;

    let link = browser
        .find(&format!("tr[data-call-id='{id}'] a.tool"))
        .await;
    browser.click(&link).await;
    browser.find("#approve").await;
    let page = browser.body_text().await;
    assert!(page.contains("Who may decide"), "{page}");
    assert!(
        page.contains("Export the current session string"),
        "the tool's description: {page}"
    );
    Some((browser, call, id))
}

#[tokio::test]
async fn a_reviewer_approves_in_the_browser_and_the_waiting_agent_gets_the_result() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    let Some((browser, call, id)) = open_a_parked_call_from_the_live_queue(&app, &agent).await
    else {
        return;
    };
    screenshot(&browser, "call").await;
    browser.fill("#reason", "backup job, ticket OPS-7").await;
    browser.click_on("#approve").await;
    browser
        .wait_for_text("Approved. The call is released to the agent.")
        .await;

    let result = result_of(call).await;
    assert!(text(&result).contains("1BVtsOK"), "{}", text(&result));
    assert_eq!(app.call_log.calls_of("export_session"), 1);

    browser.goto(&app.url("/history")).await;
    let row_text = browser.text_of(&format!("tr[data-call-id='{id}']")).await;
    assert!(row_text.contains("alice@example.org"), "{row_text}");
    assert!(
        row_text.contains("completed") || row_text.contains("approved"),
        "{row_text}"
    );
    screenshot(&browser, "history").await;
    browser.goto(&app.url(&format!("/calls/{id}"))).await;
    let page = browser.wait_for_text("backup job, ticket OPS-7").await;
    assert!(page.contains("forwarded; the upstream answered"), "{page}");
}

#[tokio::test]
async fn a_reviewer_rejects_in_the_browser_and_the_agent_is_told_why() {
    let app = TestApp::spawn().await;
    let agent = app.agent().await;
    let Some((browser, call, id)) = open_a_parked_call_from_the_live_queue(&app, &agent).await
    else {
        return;
    };
    browser
        .fill("#reason", "sessions never leave the vault")
        .await;
    browser.click_on("#reject").await;
    browser
        .wait_for_text("Rejected. The agent is told your reason.")
        .await;

    let result = result_of(call).await;
    assert_eq!(
        text(&result),
        "Rejected by alice@example.org: sessions never leave the vault"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0, "never ran");

    browser.goto(&app.url("/history?status=rejected")).await;
    let row_text = browser.text_of(&format!("tr[data-call-id='{id}']")).await;
    assert!(row_text.contains("rejected"), "{row_text}");
    assert!(
        row_text.contains("sessions never leave the vault"),
        "{row_text}"
    );
}

#[tokio::test]
async fn a_decided_call_leaves_the_open_queue_page_without_a_reload() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let bob = app.reviewer("bob@example.org", "approver").await;
    let password = app.user_with_password("alice@example.org", "viewer").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = bob.wait_one_pending().await;
    browser
        .sign_in(&app.url(""), "alice@example.org", &password)
        .await;
    browser.goto(&app.url("/")).await;
    browser.find(&format!("tr[data-call-id='{id}']")).await;
    browser.execute("window.airlockTestMark = 7;").await;

    let (status, _) = bob.reject(&id, "decided elsewhere").await;
    assert_eq!(status, 200);
    browser.wait_for_text("Nothing is waiting").await;
    assert_eq!(
        browser.execute("return window.airlockTestMark;").await,
        json!(7)
    );
    assert_eq!(browser.title().await, "Airlock");
    assert!(text(&result_of(call).await).contains("decided elsewhere"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_signs_in_to_the_demo_with_the_printed_password_and_approves_a_call() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut demo, banner) = common::start_demo(dir.path());
    let dashboard = common::banner_value(&banner, "dashboard").to_owned();
    let credentials = common::banner_value(&banner, "sign in as");
    let (email, password) = credentials
        .split_once(" with password ")
        .unwrap_or_else(|| panic!("email and password: {credentials}"));
    let agent = common::Agent::connect(
        common::banner_value(&banner, "MCP endpoint"),
        common::banner_value(&banner, "agent token"),
    )
    .await;

    browser
        .sign_in(dashboard.trim_end_matches('/'), email, password)
        .await;
    let call = agent.spawn_call("export_session", json!({}));
    browser.click_on("tr[data-call-id] a.button").await;
    browser.click_on("#approve").await;
    browser
        .wait_for_text("Approved. The call is released to the agent.")
        .await;
    let result = result_of(call).await;
    agent.close().await;
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(text(&result).contains("1BVtsOK"), "{}", text(&result));
}
