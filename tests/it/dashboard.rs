//! The dashboard at the HTTP level: sign-in, sessions and their cookies, CSRF, roles, escaping of
//! agent-supplied text, decisions by form, users and tokens, history and the live feed. A real
//! rmcp agent parks the calls; the demo upstream's call log proves what ran.

use crate::common;

use std::time::Duration;

use common::dashboard::Dashboard;
use common::{Setup, TestApp, result_of, text};
use serde_json::json;

/// An agent's `export_session` call, waiting for a decision: the call (await it for the agent's
/// result), its id, and the agent holding it (keep it alive).
struct Waiting {
    call: tokio::task::JoinHandle<Result<rmcp::model::CallToolResult, rmcp::ServiceError>>,
    id: String,
    agent: common::Agent,
}

/// Has the test agent call `export_session` with `arguments` and waits until `api` sees it parked.
async fn waiting_call(
    app: &TestApp,
    api: &common::Reviewer,
    arguments: serde_json::Value,
) -> Waiting {
    let agent = app.agent().await;
    let call = agent.spawn_call("export_session", arguments);
    let id = api.wait_one_pending().await;
    Waiting { call, id, agent }
}

fn with_toml(extra_toml: &str) -> Setup {
    Setup {
        extra_toml: extra_toml.to_owned(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn signing_in_sets_a_safe_session_cookie_and_every_page_sends_the_security_headers() {
    let app = TestApp::spawn().await;
    let mut browser = Dashboard::new(&app.url(""));

    let anonymous = browser.get("/history?status=pending").await;
    assert_eq!(anonymous.status, 303, "pages need a sign-in");
    assert_eq!(
        anonymous.location(),
        "/login?next=%2Fhistory%3Fstatus%3Dpending"
    );

    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    let signed = browser.sign_in("alice@example.org", &password).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location(), "/");
    let cookie = signed
        .set_cookie("airlock_session")
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    for path in [
        "/",
        "/history",
        "/tools",
        "/account",
        "/static/airlock.js",
        "/login",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let csp = page.headers["content-security-policy"]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(page.headers["x-content-type-options"], "nosniff", "{path}");
    }
    let queue = browser.get("/").await;
    assert!(queue.body.contains("alice@example.org"), "{}", queue.body);
    assert!(
        !queue.body.contains("<script>") && !queue.body.contains("style="),
        "no inline script or style: the CSP forbids them"
    );
}

#[tokio::test]
async fn a_user_added_on_the_command_line_signs_in_with_the_printed_password() {
    let app = TestApp::spawn().await;
    let added = app
        .cli(&["user", "add", "Dana@Example.org", "--role", "admin"])
        .await;
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let password = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    let mut browser = Dashboard::new(&app.url(""));
    assert_eq!(
        browser.sign_in("dana@example.org", &password).await.status,
        303
    );
    let users = browser.get("/users").await;
    assert_eq!(users.status, 200, "an admin sees the users");
    assert!(users.body.contains("dana@example.org"));
}

#[tokio::test]
async fn an_https_public_url_makes_the_cookie_secure_with_the_host_prefix() {
    let app =
        TestApp::spawn_with(with_toml("public_url = \"https://airlock.example.org\"\n")).await;
    let password = app.user_with_password("alice@example.org", "admin").await;
    let mut browser = Dashboard::new(&app.url(""));
    let signed = browser.sign_in("alice@example.org", &password).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let cookie = signed
        .set_cookie("__Host-airlock_session")
        .expect("a __Host- session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_for_a_while_and_tell_nobody_who_exists() {
    let app = TestApp::spawn_with(with_toml("[dashboard]\nlogin_max_failures = 3\n")).await;
    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    let mut browser = Dashboard::new(&app.url(""));

    let unknown = browser
        .sign_in("nobody@example.org", "wrong password")
        .await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("Wrong email or password."));
    for _ in 0..3 {
        let wrong = browser.sign_in("alice@example.org", "wrong password").await;
        assert_eq!(wrong.status, 401);
        assert!(
            wrong.body.contains("Wrong email or password."),
            "the same words as for an unknown email"
        );
    }
    let locked = browser.sign_in("ALICE@example.org", &password).await;
    assert_eq!(locked.status, 429, "even the right password waits");
    assert!(
        locked
            .body
            .contains("Too many failed sign-ins for this account. Try again in 15 min."),
        "{}",
        locked.body
    );
    assert!(locked.set_cookie("airlock_session").is_none());

    let bob_password = app.user_with_password("bob@example.org", "approver").await;
    let bob = browser.sign_in("bob@example.org", &bob_password).await;
    assert_eq!(bob.status, 303, "other accounts are not locked");

    for _ in 0..2 {
        assert_eq!(
            browser.sign_in("nobody@example.org", "guess").await.status,
            401
        );
    }
    let unknown_locked = browser.sign_in("nobody@example.org", "guess").await;
    assert_eq!(
        unknown_locked.status, 429,
        "an email without an account locks the same way"
    );
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_under_the_failure_limit() {
    let app = TestApp::spawn_with(with_toml("[dashboard]\nlogin_max_failures = 3\n")).await;
    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    let mut guesses = Vec::new();
    for i in 0..12 {
        let base = app.url("");
        guesses.push(tokio::spawn(async move {
            let mut browser = Dashboard::new(&base);
            browser
                .sign_in("alice@example.org", &format!("guess number {i}"))
                .await
                .status
        }));
    }
    let mut checked = 0;
    for guess in guesses {
        let status = guess.await.expect("a guess");
        assert!(status == 401 || status == 429, "{status}");
        checked += usize::from(status == 401);
    }
    assert!(
        checked <= 3,
        "{checked} passwords were checked; the limit is 3"
    );
    let mut browser = Dashboard::new(&app.url(""));
    assert_eq!(
        browser.sign_in("alice@example.org", &password).await.status,
        429
    );
}

#[tokio::test]
async fn the_sign_in_form_needs_its_own_token_and_sends_nobody_off_the_site() {
    let app = TestApp::spawn().await;
    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    let mut browser = Dashboard::new(&app.url(""));
    let forged = browser
        .post(
            "/login",
            &[
                ("email", "alice@example.org"),
                ("password", &password),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "no sign-in token, no sign-in");
    assert!(forged.body.contains("The sign-in form expired."));
    assert!(forged.set_cookie("airlock_session").is_none());

    for next in [
        "//evil.example/",
        "/\t/evil.example",
        "https://evil.example/",
    ] {
        browser.get("/login").await;
        let signed = browser
            .submit(
                "/login",
                &[
                    ("email", "alice@example.org"),
                    ("password", &password),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(signed.status, 303);
        assert_eq!(signed.location(), "/", "{next:?} is not followed");
    }
    browser.get("/login?next=%2Fhistory").await;
    let back = browser
        .submit(
            "/login",
            &[
                ("email", "alice@example.org"),
                ("password", &password),
                ("next", "/history"),
            ],
        )
        .await;
    assert_eq!(back.location(), "/history", "a path on the site is");
}

#[tokio::test]
async fn a_session_ends_when_it_expires_and_on_sign_out_but_not_on_a_forged_sign_out() {
    let app = TestApp::spawn_with(with_toml("[dashboard]\nsession_ttl = 2\n")).await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    assert_eq!(browser.get("/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(browser.get("/").await.status, 303, "expired");

    let app = TestApp::spawn().await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    let page = browser.get("/").await;
    assert_eq!(page.status, 200);
    let forged = browser.post("/logout", &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(browser.get("/").await.status, 200, "still signed in");
    let out = browser.submit("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/login");
    assert_eq!(browser.get("/").await.status, 303, "signed out");
}

#[tokio::test]
async fn a_decision_without_the_right_csrf_token_or_from_another_site_is_refused_and_decides_nothing()
 {
    let app = TestApp::spawn().await;
    let api = app.reviewer("ops@example.org", "admin").await;
    let Waiting {
        call,
        id,
        agent: _agent,
    } = waiting_call(&app, &api, json!({})).await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    let page = browser.get(&format!("/calls/{id}")).await;
    assert!(
        page.body.contains("id=\"approve\""),
        "an approver sees the form"
    );
    let digest = page
        .input("args_digest")
        .expect("the digest is in the form");
    let decide = format!("/calls/{id}/decide");
    let approve = [("decision", "approve"), ("args_digest", digest.as_str())];

    let missing = browser.post(&decide, &approve).await;
    assert_eq!(missing.status, 403, "no token");
    assert!(missing.body.contains("security token"), "{}", missing.body);
    let mut wrong = approve.to_vec();
    wrong.push(("csrf", "0123456789abcdef0123456789abcdef"));
    assert_eq!(
        browser.post(&decide, &wrong).await.status,
        403,
        "a wrong token"
    );
    let foreign = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let cross_site = foreign
        .post(app.url(&decide))
        .header("Origin", "https://evil.example")
        .header("Cookie", browser.cookie_header())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("decision", "approve"),
                ("args_digest", digest.as_str()),
                ("csrf", browser.csrf.as_deref().unwrap_or_default()),
            ])
            .expect("a form"),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(cross_site.status(), 403, "another site's form");
    assert_eq!(
        foreign
            .get(app.url(&decide))
            .header("Cookie", browser.cookie_header())
            .send()
            .await
            .expect("GET")
            .status(),
        405,
        "decisions only by POST"
    );

    assert_eq!(
        api.call(&id).await["status"],
        "pending",
        "nothing was decided"
    );
    assert_eq!(app.call_log.calls_of("export_session"), 0);
    assert!(!call.is_finished());

    let approved = browser.decide(&id, &digest, "approve", "ticket 42").await;
    assert_eq!(approved.status, 303);
    assert_eq!(approved.location(), format!("/calls/{id}?done=approved"));
    let result = result_of(call).await;
    assert!(text(&result).contains("1BVtsOK"), "{}", text(&result));
    let after = browser.get(approved.location()).await;
    assert!(
        after
            .body
            .contains("Approved. The call is released to the agent.")
    );
    assert!(after.body.contains("ticket 42"), "the reason is shown");
    let done = api.wait_status(&id, "completed").await;
    assert_eq!(done["approvals"][0]["via"], "dashboard");
    assert_eq!(done["approvals"][0]["reviewer"], "alice@example.org");
}

#[tokio::test]
async fn a_viewer_reads_calls_but_cannot_decide_them() {
    let app = TestApp::spawn().await;
    let api = app.reviewer("ops@example.org", "admin").await;
    let Waiting {
        call: _,
        id,
        agent: _agent,
    } = waiting_call(&app, &api, json!({})).await;
    let mut viewer = app.signed_in("vera@example.org", "viewer").await;
    let page = viewer.get(&format!("/calls/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("id=\"approve\""),
        "no decision form for a viewer"
    );
    assert!(page.body.contains("viewers only read"), "{}", page.body);
    let tried = viewer
        .submit(&format!("/calls/{id}/decide"), &[("decision", "approve")])
        .await;
    assert_eq!(tried.status, 403);
    assert!(
        tried.body.contains("is a viewer and cannot decide calls"),
        "{}",
        tried.body
    );
    assert_eq!(
        viewer.get("/users").await.status,
        403,
        "users are for admins"
    );
    assert_eq!(api.call(&id).await["status"], "pending");
}

#[tokio::test]
async fn agent_supplied_markup_is_shown_as_text_and_secret_fields_are_masked() {
    let app = TestApp::spawn().await;
    let api = app.reviewer("ops@example.org", "admin").await;
    let Waiting {
        call: _,
        id,
        agent: _agent,
    } = waiting_call(
        &app,
        &api,
        json!({
            "note": "<script>alert(1)</script>",
            "<img src=x onerror=alert(2)>": "\"><svg onload=alert(3)>",
            "password": "hunter2-do-not-show",
            "essay": "long ".repeat(100),
        }),
    )
    .await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    for path in [
        format!("/calls/{id}"),
        "/".to_owned(),
        "/queue/rows".to_owned(),
        "/history".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        for raw in ["<script>alert(1)", "<img src=x", "<svg onload"] {
            assert!(!page.body.contains(raw), "{path} has raw {raw:?}");
        }
        assert!(
            page.body.contains("&lt;script&gt;alert(1)")
                || page.body.contains("&#60;script&#62;alert(1)"),
            "{path} shows the text escaped"
        );
        let secret = page.body.find("hunter2-do-not-show");
        assert!(
            secret.is_none(),
            "{path} shows a secret: {}",
            &page.body[secret.unwrap_or(0).saturating_sub(300)..]
        );
    }
    let detail = browser.get(&format!("/calls/{id}")).await;
    assert!(
        detail.body.contains("•••• (redacted)"),
        "the reviewer sees a field is hidden"
    );
    assert!(
        detail.body.contains("(500 characters; show all)"),
        "long strings fold"
    );
    assert!(
        !api.call(&id)
            .await
            .to_string()
            .contains("hunter2-do-not-show"),
        "the API masks it too"
    );
}

#[tokio::test]
async fn a_decision_on_a_call_already_decided_shows_what_happened() {
    let app = TestApp::spawn().await;
    let bob = app.reviewer("bob@example.org", "approver").await;
    let Waiting {
        call,
        id,
        agent: _agent,
    } = waiting_call(&app, &bob, json!({})).await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    let (_, digest) = browser.open_call(&id).await;
    let (status, _) = bob.reject(&id, "not on a Friday").await;
    assert_eq!(status, 200);
    let result = result_of(call).await;
    assert_eq!(
        text(&result),
        "Rejected by bob@example.org: not on a Friday"
    );

    let late = browser.decide(&id, &digest, "approve", "").await;
    assert_eq!(late.status, 303, "{}", late.body);
    let shown = browser.get(late.location()).await;
    assert_eq!(shown.status, 200);
    assert!(
        shown.body.contains(
            "Too late: this call was already rejected by bob@example.org: not on a Friday. Nothing was changed."
        ),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("not run: rejected"));
    assert_eq!(app.call_log.calls_of("export_session"), 0);
}

#[tokio::test]
async fn a_rejection_without_a_reason_is_sent_back_and_the_call_stays_pending() {
    let app = TestApp::spawn().await;
    let api = app.reviewer("ops@example.org", "admin").await;
    let Waiting {
        call,
        id,
        agent: _agent,
    } = waiting_call(&app, &api, json!({})).await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    let (_, digest) = browser.open_call(&id).await;
    let blank = browser.decide(&id, &digest, "reject", "  ").await;
    assert_eq!(blank.location(), format!("/calls/{id}?error=reason"));
    let shown = browser.get(blank.location()).await;
    assert!(shown.body.contains("A rejection needs a reason"));
    assert_eq!(api.call(&id).await["status"], "pending");
    let rejected = browser
        .decide(&id, &digest, "reject", "use the read-only API")
        .await;
    assert_eq!(rejected.location(), format!("/calls/{id}?done=rejected"));
    assert_eq!(
        text(&result_of(call).await),
        "Rejected by alice@example.org: use the read-only API"
    );
}

#[tokio::test]
async fn an_admin_adds_users_changes_roles_disables_and_resets_passwords() {
    let app = TestApp::spawn().await;
    let mut admin = app.signed_in("root@example.org", "admin").await;
    admin.get("/users").await;
    let added = admin
        .submit(
            "/users/add",
            &[("email", "Carol@Example.org"), ("role", "approver")],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let password = added
        .between("id=\"new-password\">", '<')
        .expect("the new password is shown once");
    let mut carol = Dashboard::new(&app.url(""));
    assert_eq!(
        carol.sign_in("carol@example.org", &password).await.status,
        303
    );
    assert_eq!(
        carol.get("/users").await.status,
        403,
        "an approver is no admin"
    );

    let carol_id = app
        .store
        .user_by_email("carol@example.org")
        .await
        .expect("store")
        .expect("carol")
        .id;
    let users = admin.get("/users").await;
    assert!(users.body.contains("carol@example.org"));
    let role = admin
        .submit(&format!("/users/{carol_id}/role"), &[("role", "viewer")])
        .await;
    assert_eq!(role.status, 303);
    let page = carol.get("/account").await;
    assert!(page.body.contains("viewer"), "the new role applies at once");

    assert_eq!(
        admin
            .submit(&format!("/users/{carol_id}/disable"), &[])
            .await
            .status,
        303
    );
    assert_eq!(
        carol.get("/").await.status,
        303,
        "a disabled user's session ends"
    );
    assert_eq!(
        carol.sign_in("carol@example.org", &password).await.status,
        401
    );
    assert_eq!(
        admin
            .submit(&format!("/users/{carol_id}/enable"), &[])
            .await
            .status,
        303
    );
    // A reset emails the user a link (tests/security.rs); without SMTP it says what to do instead,
    // and never shows the admin a password.
    let reset = admin
        .submit(&format!("/users/{carol_id}/password"), &[])
        .await;
    assert!(reset.between("id=\"new-password\">", '<').is_none());
    assert!(
        reset
            .body
            .contains("On the server: airlock user password carol@example.org"),
        "{}",
        reset.body
    );
    assert_eq!(
        carol.sign_in("carol@example.org", &password).await.status,
        303
    );

    let root_id = app
        .store
        .user_by_email("root@example.org")
        .await
        .expect("store")
        .expect("root")
        .id;
    let alone = admin
        .submit(&format!("/users/{root_id}/disable"), &[])
        .await;
    assert!(
        alone.body.contains("That would leave no admin"),
        "the last admin stays: {}",
        alone.body
    );
    assert_eq!(admin.get("/users").await.status, 200);
}

#[tokio::test]
async fn a_reviewer_creates_an_api_token_on_the_account_page_and_revokes_it() {
    let app = TestApp::spawn().await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    browser.get("/account").await;
    let created = browser
        .submit("/account/tokens", &[("label", "laptop <b>")])
        .await;
    assert_eq!(created.status, 200);
    let token = created
        .between("id=\"new-token\">", '<')
        .expect("the token is shown once");
    assert!(
        created.body.contains("laptop &#60;b&#62;"),
        "{}",
        created.body
    );
    let api = reqwest::Client::new();
    let listed = api
        .get(app.url("/api/v1/calls"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(listed.status(), 200);

    let again = browser.get("/account").await;
    assert!(!again.body.contains(&token), "shown once only");
    let token_id = again
        .between("data-token=\"", '"')
        .expect("the token's row");
    let mut mallory = app.signed_in("mallory@example.org", "admin").await;
    mallory.get("/account").await;
    let theirs = mallory
        .submit(&format!("/account/tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(theirs.status, 404, "nobody revokes another user's token");
    let still = api
        .get(app.url("/api/v1/calls"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(still.status(), 200);

    let revoked = browser
        .submit(&format!("/account/tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303);
    let refused = api
        .get(app.url("/api/v1/calls"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_everywhere() {
    let app = TestApp::spawn().await;
    let password = app
        .user_with_password("alice@example.org", "approver")
        .await;
    let mut browser = Dashboard::new(&app.url(""));
    browser.sign_in("alice@example.org", &password).await;
    browser.get("/account").await;
    let wrong = browser
        .submit(
            "/account/password",
            &[
                ("current", "not it"),
                ("new", "correct horse battery"),
                ("confirm", "correct horse battery"),
            ],
        )
        .await;
    assert!(wrong.body.contains("The current password is not right."));
    let changed = browser
        .submit(
            "/account/password",
            &[
                ("current", &password),
                ("new", "correct horse battery"),
                ("confirm", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(changed.location(), "/login?changed=1");
    assert_eq!(browser.get("/").await.status, 303, "signed out");
    assert_eq!(
        browser.sign_in("alice@example.org", &password).await.status,
        401
    );
    assert_eq!(
        browser
            .sign_in("alice@example.org", "correct horse battery")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn the_tools_page_shows_each_tool_with_its_rule_and_risk() {
    let app = TestApp::spawn().await;
    let mut browser = app.signed_in("alice@example.org", "viewer").await;
    let page = browser.get("/tools").await;
    assert_eq!(page.status, 200);
    for expected in [
        "export_session",
        "require approval",
        "get_chats",
        "deny: never from an agent",
        "looks credential-exporting",
        "claims readOnlyHint (untrusted; Airlock ignores it)",
    ] {
        assert!(
            page.body.contains(expected),
            "{expected:?} missing from /tools"
        );
    }
}

#[tokio::test]
async fn history_filters_pages_by_keyset_and_exports_what_it_shows() {
    let app = TestApp::spawn().await;
    for i in 0..120 {
        let agent = if i % 3 == 0 { "ci-bot" } else { "claude" };
        let tool = if i % 2 == 0 {
            "send_message"
        } else {
            "export_session"
        };
        let args = format!("{{\"chat_id\": {i}, \"text\": \"message number {i}\"}}");
        app.store_waiting_call(agent, tool, &args).await;
    }
    let mut browser = app.signed_in("alice@example.org", "viewer").await;
    let mut seen = 0;
    let mut path = "/history".to_owned();
    let mut pages = 0;
    while pages < 10 {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200);
        seen += page.body.matches("<tr data-call-id=").count();
        pages += 1;
        match page.body.split("href=\"/history?").nth(1) {
            Some(rest) if page.body.contains("Older calls") => {
                let query = rest
                    .split('"')
                    .next()
                    .unwrap_or_default()
                    .replace("&#38;", "&");
                path = format!("/history?{query}");
            }
            _ => break,
        }
    }
    assert_eq!((seen, pages), (120, 3), "50 + 50 + 20, each call once");

    let bots = browser.get("/history?agent=ci-bot").await;
    assert_eq!(bots.body.matches("<tr data-call-id=").count(), 40);
    let text = browser.get("/history?q=message+number+7").await;
    assert_eq!(
        text.body.matches("<tr data-call-id=").count(),
        11,
        "7 and 70..79"
    );
    let both = browser.get("/history?agent=ci-bot&tool=send_message").await;
    assert_eq!(both.body.matches("<tr data-call-id=").count(), 20);
    let today = time::OffsetDateTime::now_utc().date();
    let (yesterday, tomorrow) = (
        today.previous_day().expect("a day"),
        today.next_day().expect("a day"),
    );
    for (range, expected) in [
        (format!("since={yesterday}&until={tomorrow}"), 50),
        (format!("until={yesterday}"), 0),
        (format!("since={tomorrow}"), 0),
        ("since=0001-01-01&until=9999-12-30".to_owned(), 50),
    ] {
        let page = browser.get(&format!("/history?{range}")).await;
        assert_eq!(
            page.body.matches("<tr data-call-id=").count(),
            expected,
            "{range}"
        );
    }
    let bad = browser.get("/history?since=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("is not a date like 2026-11-25"));

    let export = browser.get("/history/export?agent=ci-bot").await;
    assert_eq!(export.status, 200);
    let lines: Vec<serde_json::Value> = export
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 40);
    assert!(lines.iter().all(|l| l["agent"] == "ci-bot"));
    let searched = browser.get("/history/export?q=message+number+7").await;
    assert_eq!(searched.body.lines().count(), 11, "7 and 70..79");
}

#[tokio::test]
async fn a_search_for_something_rare_reads_a_bounded_slice_a_page_and_says_where_to_go_on() {
    let app = TestApp::spawn().await;
    let needle = app
        .store_waiting_call("claude", "send_message", r#"{"text": "needle"}"#)
        .await;
    for i in 0..25 {
        app.store_waiting_call(
            "claude",
            "send_message",
            &format!(r#"{{"text": "hay {i}"}}"#),
        )
        .await;
    }
    let filter = airlock::store::CallFilter {
        text: Some("needle".to_owned()),
        ..Default::default()
    };
    // Ten calls scanned a page: the newest twenty hold no needle, the third scan finds it.
    let (mut before, mut pages, mut found) = (None::<String>, 0, Vec::new());
    loop {
        let slice = app
            .store
            .history(&filter, before.as_deref(), 50, Some(10))
            .await
            .expect("a history page");
        pages += 1;
        found.extend(slice.rows.iter().map(|row| row.id.to_string()));
        let Some(next) = slice.next else { break };
        assert!(
            slice.rows.is_empty(),
            "a scan that ends early found nothing here"
        );
        before = Some(next);
        assert!(pages < 10, "the scans come to an end");
    }
    assert_eq!((found, pages), (vec![needle.clone()], 3));
    // Without a scan bound (as the export reads) one slice reads on to the needle.
    let unbounded = app
        .store
        .history(&filter, None, 50, None)
        .await
        .expect("a history page");
    let ids: Vec<String> = unbounded
        .rows
        .iter()
        .map(|row| row.id.to_string())
        .collect();
    assert_eq!((ids, unbounded.next), (vec![needle], None));

    let hay = airlock::store::CallFilter {
        text: Some("hay".to_owned()),
        ..Default::default()
    };
    let full = app
        .store
        .history(&hay, None, 4, Some(10))
        .await
        .expect("a history page");
    assert_eq!(full.rows.len(), 4, "a page fills before its scan ends");
    assert_eq!(
        full.next.as_deref(),
        full.rows.last().map(|row| row.id.as_str()),
        "and goes on after its last row"
    );
}

#[tokio::test]
async fn the_history_chart_counts_todays_decisions_as_they_are_made() {
    let app = TestApp::spawn().await;
    let bob = app.reviewer("bob@example.org", "approver").await;
    let decide = async |decision: &str| {
        let waiting = waiting_call(&app, &bob, json!({})).await;
        let (status, body) = bob.decide(&waiting.id, decision, Some("seen")).await;
        assert_eq!(status, 200, "{body}");
        result_of(waiting.call).await;
    };
    let mut browser = app.signed_in("alice@example.org", "viewer").await;
    let today = time::OffsetDateTime::now_utc().date();
    let empty = browser.get("/history").await;
    assert!(!empty.body.contains(&format!("{today}: ")), "no bar yet");

    decide("approve").await;
    decide("approve").await;
    decide("reject").await;
    let page = browser.get("/history").await;
    assert!(
        page.body.contains(&format!("{today}: 2 approved")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("{today}: 1 rejected")));

    // The past days were kept from the first page; today is counted again for each.
    decide("approve").await;
    let page = browser.get("/history").await;
    assert!(page.body.contains(&format!("{today}: 3 approved")));
}

#[tokio::test]
async fn the_live_feed_needs_a_session_and_announces_queue_changes() {
    let app = TestApp::spawn().await;
    let anonymous = reqwest::get(app.url("/events")).await.expect("GET");
    assert_eq!(anonymous.status(), 401);

    let browser = app.signed_in("alice@example.org", "approver").await;
    let cookie = browser.cookie_header();
    let mut events = reqwest::Client::new()
        .get(app.url("/events"))
        .header("Cookie", cookie)
        .send()
        .await
        .expect("GET /events");
    assert_eq!(events.status(), 200);
    let first = tokio::time::timeout(common::WAIT, events.chunk())
        .await
        .expect("the first event in time")
        .expect("a chunk")
        .expect("not the end");
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.contains("event: queue"), "{first}");

    let agent = app.agent().await;
    let _call = agent.spawn_call("export_session", json!({}));
    let mut seen = String::new();
    while !seen.contains("event: queue") {
        let chunk = tokio::time::timeout(common::WAIT, events.chunk())
            .await
            .expect("an event for the parked call in time")
            .expect("a chunk")
            .expect("not the end");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn signing_out_ends_the_live_feed_of_that_session() {
    let app = TestApp::spawn().await;
    let mut browser = app.signed_in("alice@example.org", "approver").await;
    browser.get("/").await;
    let mut events = reqwest::Client::new()
        .get(app.url("/events"))
        .header("Cookie", browser.cookie_header())
        .send()
        .await
        .expect("GET /events");
    assert_eq!(events.status(), 200);
    assert_eq!(browser.submit("/logout", &[]).await.status, 303);
    let ended = tokio::time::timeout(common::WAIT, async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended after sign-out");
}

#[tokio::test]
async fn searching_the_history_never_matches_inside_a_masked_field() {
    let app = TestApp::spawn().await;
    let api = app.reviewer("ops@example.org", "admin").await;
    let agent = app.agent().await;
    let _call = agent.spawn_call(
        "export_session",
        json!({"password": "hunter2-secret", "note": "visible words"}),
    );
    api.wait_pending(1).await;
    let mut browser = app.signed_in("vera@example.org", "viewer").await;
    let visible = browser.get("/history?q=visible+words").await;
    assert_eq!(visible.body.matches("<tr data-call-id=").count(), 1);
    for probe in ["hunter2", "%22password%22%3A%22h"] {
        let page = browser.get(&format!("/history?q={probe}")).await;
        assert_eq!(
            page.body.matches("<tr data-call-id=").count(),
            0,
            "{probe} would tell the secret"
        );
        let export = browser.get(&format!("/history/export?q={probe}")).await;
        assert_eq!(export.body, "", "{probe} in the export");
    }
    let far = browser.get("/history?until=9999-12-31").await;
    assert_eq!(far.status, 400, "no panic on a far date");
}
