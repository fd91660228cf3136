//! Email notifications of parked calls, through a real SMTP listener on a random port: the outbox
//! is written with the call, sent within a second, to the rule's `notify` recipients (groups
//! expanded) or the configured ones; a dead SMTP server delays mail and nothing else.

mod common;

use std::time::Duration;

use common::smtp::SmtpSink;
use common::{Setup, TestApp, is_error, result_of, text};
use serde_json::json;

async fn spawn(export_session: &str, smtp_url: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        policy: format!(
            r#"{{"version": "1", "default": "require_approval", "tools": {{
                "get_chats": {{}}, "export_session": {export_session} }}}}"#
        ),
        extra_toml: format!(
            "[email]\nsmtp_url = \"{smtp_url}\"\nfrom = \"airlock@example.org\"\n\
             to = [\"ops@example.org\"]\n\
             [groups]\nsecurity = [\"Sec@example.org\", \"bob@example.org\"]\n"
        ),
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn a_parked_call_emails_its_reviewers_once_within_a_second() {
    let sink = SmtpSink::start().await;
    let app = spawn(
        r#"{"action": "require_approval", "notify": ["security", "carol@example.org"]}"#,
        &sink.url(),
    )
    .await;
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let id = reviewer.wait_one_pending().await;
    let mails = sink.wait_for(3, Duration::from_secs(1)).await;

    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["bob@example.org", "carol@example.org", "sec@example.org"],
        "the rule's notify list, the group expanded; not email.to"
    );
    let mail = &mails[0];
    assert_eq!(mail.from, "airlock@example.org");
    let subject = mail.header("Subject").expect("a subject");
    assert!(
        subject.starts_with("[Airlock] test-agent wants telegram.export_session (expires ")
            && subject.ends_with(" UTC)"),
        "{subject}"
    );
    assert!(mail.data.contains(&format!("/calls/{id}")), "{}", mail.data);
    assert!(mail.data.contains(&format!("airlock approve {id}")));

    let (status, _) = reviewer.approve(&id).await;
    assert_eq!(status, 200);
    assert!(!is_error(&result_of(call).await));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.mails().len(), 3, "each message is sent once");
    agent.close().await;
}

#[tokio::test]
async fn without_a_notify_list_the_configured_recipients_are_told() {
    let sink = SmtpSink::start().await;
    let app = spawn(r#"{"action": "require_approval"}"#, &sink.url()).await;
    let agent = app.agent().await;

    let _call = agent.spawn_call("export_session", json!({}));
    let mails = sink.wait_for(1, Duration::from_secs(2)).await;

    assert_eq!(mails[0].to, ["ops@example.org"]);
    agent.close().await;
}

#[tokio::test]
async fn agent_text_cannot_add_header_lines() {
    let sink = SmtpSink::start().await;
    // Unlisted tools need approval here, so the agent chooses the tool name.
    let app = spawn(r#"{"action": "require_approval"}"#, &sink.url()).await;
    let session = app.raw_session("2025-06-18").await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x\r\nBcc: thief@example.com\r\nX-Evil: 1","arguments":{}}}"#;
    let response = app.post_in_session(&session, body).await;
    let _waiting = tokio::spawn(common::messages(response));

    let mails = sink.wait_for(1, Duration::from_secs(2)).await;

    assert_eq!(mails[0].to, ["ops@example.org"], "no Bcc smuggled in");
    assert!(mails[0].header("X-Evil").is_none(), "{}", mails[0].data);
    assert!(mails[0].header("Bcc").is_none(), "{}", mails[0].data);
}

#[tokio::test]
async fn a_dead_smtp_server_delays_mail_and_nothing_else() {
    // Reserve a port, and leave nothing listening on it until later.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("an address").port()
    };
    let app = spawn(
        r#"{"action": "require_approval"}"#,
        &format!("smtp://127.0.0.1:{port}"),
    )
    .await;
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;

    let call = agent.spawn_call("export_session", json!({}));
    let id = reviewer.wait_one_pending().await;
    let (status, _) = reviewer.approve(&id).await;
    assert_eq!(
        status, 200,
        "the call parks and is decided while mail cannot go out"
    );
    let result = result_of(call).await;
    assert!(!is_error(&result), "{}", text(&result));

    let sink = SmtpSink::start_on(port).await;
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "sent once the server is back");
    agent.close().await;
}
