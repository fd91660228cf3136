//! Email notifications of parked calls, through a real SMTP listener on a random port: the outbox
//! is written with the call, sent within a second, to the rule's `notify` recipients (groups
//! expanded) or the configured ones; a dead SMTP server delays mail and nothing else.

use crate::common;

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
    let text = mail.part("text/plain").expect("a text part");
    let html = mail.part("text/html").expect("an HTML part");
    for part in [&text, &html] {
        assert!(part.contains(&format!("/calls/{id}")), "{part}");
        assert!(part.contains("test-agent") && part.contains("telegram.export_session"));
    }
    assert!(text.contains(&format!("airlock approve {id}")), "{text}");
    assert!(
        text.contains("What it does:    Export the current session string"),
        "the upstream's description: {text}"
    );
    assert!(html.contains("View in the dashboard"), "{html}");
    assert!(
        text.contains("Once approved:   it runs when its agent asks for it"),
        "how an approval reaches the agent: {text}"
    );

    let (status, _) = reviewer.approve(&id).await;
    assert_eq!(status, 200);
    assert!(!is_error(&result_of(call).await));
    app.db
        .wait_count(
            "messages the outbox has not sent",
            "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'",
            0,
        )
        .await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 3);
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
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x\r\nBcc: thief@example.com\r\nX-Evil: 1","arguments":{"note":"<script>alert(1)</script>\r\nBcc: x@example.com","api_key":"sk-live-do-not-mail"}}}"#;
    let response = app.post_in_session(&session, body).await;
    let _waiting = tokio::spawn(common::messages(response));

    let mails = sink.wait_for(1, Duration::from_secs(2)).await;

    assert_eq!(mails[0].to, ["ops@example.org"], "no Bcc smuggled in");
    assert!(mails[0].header("X-Evil").is_none(), "{}", mails[0].data);
    assert!(mails[0].header("Bcc").is_none(), "{}", mails[0].data);
    let plain = mails[0].part("text/plain").expect("a text part");
    assert!(
        !plain
            .lines()
            .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Evil")),
        "the tool name stays on its line in the body too: {plain}"
    );
    let html = mails[0].part("text/html").expect("an HTML part");
    assert!(!html.contains("<script>"), "escaped in HTML: {html}");
    assert!(html.contains("alert(1)"), "{html}");
    for part in [html, mails[0].part("text/plain").expect("a text part")] {
        assert!(
            !part.contains("sk-live-do-not-mail"),
            "a secret in a message: {part}"
        );
        assert!(part.contains("•••• (redacted)"), "{part}");
    }
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
    // A failed attempt and a retry after its backoff (2 s), the call pending all along.
    app.db
        .wait_count(
            "messages tried twice",
            "SELECT COUNT(*) FROM outbox WHERE attempts >= 2",
            1,
        )
        .await;
    assert_eq!(
        reviewer.call(&id).await["status"],
        "pending",
        "the call waits the whole time mail cannot go out"
    );
    let sink = SmtpSink::start_on(port).await;
    let mails = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 1, "sent once the server is back");
    let (status, _) = reviewer.approve(&id).await;
    assert_eq!(status, 200);
    let result = result_of(call).await;
    assert!(!is_error(&result), "{}", text(&result));
    agent.close().await;
}

/// The path of the link labelled `label` (`Approve:`, `Reject:`) in a message's text part.
fn link_path(mail: &common::smtp::Mail, label: &str) -> String {
    let text = mail.part("text/plain").expect("a text part");
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label} link in {text}"));
    url.find("/review/")
        .map(|at| url[at..].to_owned())
        .unwrap_or_else(|| panic!("{url} is not a review link"))
}

#[tokio::test]
async fn an_emailed_approve_link_followed_like_a_browser_releases_the_call_once() {
    let sink = SmtpSink::start().await;
    let app = spawn(
        r#"{"action": "require_approval", "notify": ["alice@example.org", "watcher@example.org"]}"#,
        &sink.url(),
    )
    .await;
    let api = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({"account": "main"}));
    let id = api.wait_one_pending().await;
    let mails = sink.wait_for(2, Duration::from_secs(1)).await;
    let alice = mails
        .iter()
        .find(|m| m.to == ["alice@example.org"])
        .expect("alice's message");
    let watcher = mails
        .iter()
        .find(|m| m.to == ["watcher@example.org"])
        .expect("the watcher's message");
    let watched = watcher.part("text/plain").expect("a text part");
    assert!(watched.contains("/calls/"), "the View link: {watched}");
    assert!(
        !watched.contains("/review/"),
        "someone who cannot decide gets no decision links"
    );
    let approve = link_path(alice, "Approve:");
    let reject = link_path(alice, "Reject:");

    let mut browser = common::dashboard::Dashboard::new(&app.url(""));
    let confirm = browser.get(&approve).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("Approve this call?"));
    assert!(confirm.body.contains("Approve as alice@example.org"));
    assert_eq!(
        api.call(&id).await["status"],
        "pending",
        "GET decides nothing"
    );
    assert_eq!(
        browser.get(&approve).await.status,
        200,
        "a prefetch spends nothing"
    );

    let done = browser
        .post(&approve, &[("reason", "checked by mail")])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body
            .contains("Approved. The call is released to the agent.")
    );
    let result = result_of(call).await;
    assert!(!is_error(&result), "{}", text(&result));
    let decided = api.wait_status(&id, "completed").await;
    assert_eq!(decided["approvals"][0]["via"], "email");
    assert_eq!(decided["approvals"][0]["reason"], "checked by mail");

    let again = browser.post(&approve, &[]).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("This link was already used"));
    let late = browser.get(&reject).await;
    assert_eq!(late.status, 409);
    assert!(late.body.contains("no longer waiting"), "{}", late.body);
    assert_eq!(app.call_log.calls_of("export_session"), 1, "run once");
    agent.close().await;
}

#[tokio::test]
async fn tampered_expired_and_wrong_digest_links_decide_nothing_and_say_why() {
    let sink = SmtpSink::start().await;
    let app = spawn(
        r#"{"action": "require_approval", "notify": ["alice@example.org"]}"#,
        &sink.url(),
    )
    .await;
    let api = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let _call = agent.spawn_call("export_session", json!({}));
    let id = api.wait_one_pending().await;
    let mail = &sink.wait_for(1, Duration::from_secs(1)).await[0];
    let approve = link_path(mail, "Approve:");
    let mut browser = common::dashboard::Dashboard::new(&app.url(""));

    // One character of the token changed: no link has that token.
    let token = approve.trim_start_matches("/review/");
    let last = token.chars().last().expect("a token");
    let edited = format!(
        "{}{}",
        &token[..token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let page = browser.post(&format!("/review/{edited}"), &[]).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("This link is not valid"));
    let page = browser
        .post(&format!("/review/{}", &token[..20]), &[])
        .await;
    assert_eq!(page.status, 400, "a cut token");

    let link = |digest: &str, expires_at: time::OffsetDateTime| {
        let store = app.store.clone();
        let id = airlock::domain::CallId::parse(&id).expect("a call id");
        let digest = airlock::domain::ArgsDigest::parse(digest).expect("a digest");
        async move {
            airlock::notify::links::issue(
                &store,
                &airlock::notify::links::LinkFor {
                    call: &id,
                    reviewer: "alice@example.org",
                    action: airlock::domain::Action::Approve,
                    digest: &digest,
                    expires_at: expires_at.into(),
                    slot: None,
                },
            )
            .await
            .expect("a link")
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let digest = api.call(&id).await["args_digest"]
        .as_str()
        .expect("a digest")
        .to_owned();
    let expired = link(&digest, now - time::Duration::seconds(1)).await;
    let page = browser.post(&format!("/review/{expired}"), &[]).await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("This link has expired"));
    let other = link(&"0".repeat(64), now + time::Duration::seconds(600)).await;
    let page = browser.post(&format!("/review/{other}"), &[]).await;
    assert_eq!(page.status, 409);
    assert!(page.body.contains("not the ones this link was made for"));
    let reject = link_path(mail, "Reject:");
    let page = browser.post(&reject, &[("reason", " ")]).await;
    assert_eq!(page.status, 400, "a rejection needs a reason");
    assert_eq!(
        api.call(&id).await["status"],
        "pending",
        "nothing was decided"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    let page = browser.post(&reject, &[("reason", "not by mail")]).await;
    assert!(
        page.body.contains("Rejected."),
        "the link was not spent: {}",
        page.body
    );
}

#[tokio::test]
async fn a_recipient_the_smtp_server_refuses_shows_on_the_calls_page_and_the_call_waits() {
    let sink = SmtpSink::start().await;
    let app = spawn(
        &format!(
            r#"{{"action": "require_approval", "notify": ["nobody{}"]}}"#,
            common::smtp::REJECTED_DOMAIN
        ),
        &sink.url(),
    )
    .await;
    let api = app.reviewer("ops@example.org", "admin").await;
    let agent = app.agent().await;
    let _call = agent.spawn_call("export_session", json!({}));
    let id = api.wait_one_pending().await;
    let mut browser = app.signed_in("alice@example.org", "viewer").await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let page = browser.get(&format!("/calls/{id}")).await;
        if page.body.contains("<strong>failed</strong>") {
            assert!(page.body.contains("no such user here"), "{}", page.body);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        api.call(&id).await["status"],
        "pending",
        "the call still waits"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_keeps_mail_on_the_outbox_page_and_its_links_work() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut demo, banner) = common::start_demo(dir.path());
    let dashboard = common::banner_value(&banner, "dashboard")
        .trim_end_matches('/')
        .to_owned();
    let (email, password) = common::banner_value(&banner, "sign in as")
        .split_once(" with password ")
        .map(|(e, p)| (e.to_owned(), p.to_owned()))
        .expect("email and password");
    let agent = common::Agent::connect(
        common::banner_value(&banner, "MCP endpoint"),
        common::banner_value(&banner, "agent token"),
    )
    .await;
    let mut browser = common::dashboard::Dashboard::new(&dashboard);
    assert_eq!(browser.sign_in(&email, &password).await.status, 303);
    let call = agent.spawn_call("export_session", json!({}));

    let deadline = tokio::time::Instant::now() + common::WAIT;
    let mail_id = loop {
        let outbox = browser.get("/outbox").await;
        assert_eq!(outbox.status, 200);
        if let Some(id) = outbox.between("data-mail=\"", '"') {
            assert!(outbox.body.contains("wants telegram.export_session"));
            break id.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail on /outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let message = browser.get(&format!("/outbox/{mail_id}")).await;
    let approve = message
        .between("Approve: <a href=\"", '"')
        .expect("a working Approve link on the message");
    let html = browser.get(&format!("/outbox/{mail_id}/html")).await;
    assert_eq!(html.status, 200);
    assert!(html.body.contains("Approve"));
    let csp = html.headers["content-security-policy"]
        .to_str()
        .expect("a CSP")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'")
            && csp.contains("sandbox")
            && !csp.contains("script-src"),
        "no script runs in a shown message: {csp}"
    );
    let path = &approve[approve.find("/review/").expect("a review link")..];
    assert_eq!(browser.get(path).await.status, 200);
    let done = browser.post(path, &[]).await;
    assert!(done.body.contains("Approved."), "{}", done.body);
    let result = result_of(call).await;
    agent.close().await;
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(text(&result).contains("1BVtsOK"), "{}", text(&result));
}

#[tokio::test]
async fn reminders_before_expiry_and_outcome_emails_go_to_the_same_people_once() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(Setup {
        policy: r#"{"version": "1", "default": "deny", "tools": {
            "export_session": {"action": "require_approval", "timeout": 8, "notify": ["alice@example.org"]}}}"#
            .to_owned(),
        extra_toml: format!(
            "[email]\nsmtp_url = \"{}\"\nfrom = \"airlock@example.org\"\n\
             remind_before = 5\noutcome_emails = true\n",
            sink.url()
        ),
        ..Setup::default()
    })
    .await;
    let api = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = api.wait_one_pending().await;
    let mails = sink.wait_for(2, Duration::from_secs(5)).await;
    let subjects: Vec<String> = mails.iter().filter_map(|m| m.header("Subject")).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("[Airlock] Reminder: test-agent wants telegram.export_session")),
        "a reminder, 5 s before the call expires: {subjects:?}"
    );
    let (status, _) = api.reject(&id, "not today").await;
    assert_eq!(status, 200);
    result_of(call).await;
    let mails = sink.wait_for(3, Duration::from_secs(5)).await;
    let outcome = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("rejected by alice@example.org"))
        })
        .expect("an outcome email");
    let told = outcome.part("text/plain").expect("a text part");
    assert!(told.contains("not today"), "{told}");
    assert!(told.contains("/calls/"), "{told}");
    assert!(!told.contains("/review/"), "no decision links once decided");
    app.db
        .wait_count(
            "messages the outbox has not sent",
            "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'",
            0,
        )
        .await;
    assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 3);
    assert_eq!(sink.mails().len(), 3, "one each: parked, reminder, outcome");
    agent.close().await;
}

/// A waiting call announced to alice (an approver) by email: the app, the API reviewer, the
/// agent's pending call, its id and alice's message.
async fn mailed_call(
    extra_email_toml: &str,
) -> (
    TestApp,
    SmtpSink,
    common::Reviewer,
    common::Agent,
    tokio::task::JoinHandle<Result<rmcp::model::CallToolResult, rmcp::ServiceError>>,
    String,
) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(Setup {
        policy: r#"{"version": "1", "default": "deny", "tools": {
            "export_session": {"action": "require_approval", "notify": ["alice@example.org"]}}}"#
            .to_owned(),
        extra_toml: format!(
            "[email]\nsmtp_url = \"{}\"\nfrom = \"airlock@example.org\"\n{extra_email_toml}",
            sink.url()
        ),
        ..Setup::default()
    })
    .await;
    let api = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = api.wait_one_pending().await;
    sink.wait_for(1, Duration::from_secs(2)).await;
    (app, sink, api, agent, call, id)
}

#[tokio::test]
async fn two_clicks_on_one_link_at_once_decide_once() {
    let (app, sink, api, _agent, call, id) = mailed_call("").await;
    let approve = link_path(&sink.mails()[0], "Approve:");
    let mut posts = Vec::new();
    for _ in 0..4 {
        let base = app.url("");
        let path = approve.clone();
        posts.push(tokio::spawn(async move {
            common::dashboard::Dashboard::new(&base)
                .post(&path, &[])
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for post in posts {
        statuses.push(post.await.expect("a POST").as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 409, 409, 409],
        "one decides, the rest are told it was used"
    );
    assert!(!is_error(&result_of(call).await));
    assert_eq!(
        api.call(&id).await["approvals"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_link_of_a_reviewer_who_may_no_longer_decide_decides_nothing_and_stays_unspent() {
    let (app, sink, api, _agent, call, id) = mailed_call("").await;
    let approve = link_path(&sink.mails()[0], "Approve:");
    let alice = app
        .store
        .user_by_email("alice@example.org")
        .await
        .expect("store")
        .expect("alice");
    let root = app.reviewer("root@example.org", "admin").await;
    drop(root);
    app.store
        .set_role(&alice.id, airlock::store::Role::Viewer)
        .await
        .expect("demote alice");
    let mut browser = common::dashboard::Dashboard::new(&app.url(""));
    let page = browser.get(&approve).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("cannot decide calls"), "{}", page.body);
    assert_eq!(browser.post(&approve, &[]).await.status, 403);
    assert_eq!(api.call(&id).await["status"], "pending");

    let foreign = reqwest::Client::new()
        .post(app.url(&approve))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(foreign.status(), 403, "another site's form");

    app.store
        .set_role(&alice.id, airlock::store::Role::Approver)
        .await
        .expect("promote alice again");
    let done = browser.post(&approve, &[]).await;
    assert_eq!(done.status, 200, "the link was not spent: {}", done.body);
    assert!(!is_error(&result_of(call).await));
}

#[tokio::test]
async fn links_that_require_a_sign_in_work_only_for_their_reviewer_signed_in() {
    let (app, sink, api, _agent, call, id) = mailed_call("links_require_sign_in = true\n").await;
    let approve = link_path(&sink.mails()[0], "Approve:");
    let mut stranger = common::dashboard::Dashboard::new(&app.url(""));
    let page = stranger.get(&approve).await;
    assert_eq!(page.status, 401);
    assert!(
        page.body.contains("Sign in as alice@example.org"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&id),
        "nothing about the call before signing in"
    );
    assert_eq!(stranger.post(&approve, &[]).await.status, 401);
    let mut bob = app.signed_in("bob@example.org", "admin").await;
    assert_eq!(
        bob.post(&approve, &[]).await.status,
        401,
        "another user's link"
    );
    assert_eq!(api.call(&id).await["status"], "pending");

    let password = airlock::secrets::generate_password().expect("randomness");
    let alice = app
        .store
        .user_by_email("alice@example.org")
        .await
        .expect("store")
        .expect("alice");
    app.store
        .set_password_hash(
            &alice.id,
            &airlock::secrets::hash_password(&password).expect("hash"),
        )
        .await
        .expect("a password");
    let mut browser = common::dashboard::Dashboard::new(&app.url(""));
    assert_eq!(
        browser.sign_in("alice@example.org", &password).await.status,
        303
    );
    let done = browser.post(&approve, &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(!is_error(&result_of(call).await));
}

#[tokio::test]
async fn the_outbox_shows_decision_links_only_to_their_recipient() {
    let (app, _sink, _api, _agent, _call, _id) = mailed_call("").await;
    let mut admin = app.signed_in("root@example.org", "admin").await;
    let outbox = admin.get("/outbox").await;
    let mail_id = outbox
        .between("data-mail=\"", '"')
        .expect("alice's message");
    let message = admin.get(&format!("/outbox/{mail_id}")).await;
    assert_eq!(message.status, 200);
    assert!(!message.body.contains("/review/"), "{}", message.body);
    assert!(
        message
            .body
            .contains("[a decision link for the recipient only]")
    );
    assert_eq!(
        admin.get(&format!("/outbox/{mail_id}/html")).await.status,
        403
    );
    let mut viewer = app.signed_in("vera@example.org", "viewer").await;
    assert_eq!(viewer.get("/outbox").await.status, 403);
    assert_eq!(
        viewer.get(&format!("/outbox/{mail_id}/html")).await.status,
        403
    );
}
