//! The operator's view: the real `airlock` binary with config files on disk. Bad config stops with
//! a message that names the key and exit code 1, never a panic; `token create` prints only the
//! token; `serve` accepts that token and stops cleanly on SIGTERM.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::AIRLOCK;

fn airlock(dir: &Path, args: &[&str]) -> Output {
    Command::new(AIRLOCK)
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_LOG", "warn")
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .expect("run airlock")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A folder with `airlock.toml` (the demo upstream under `policy`) and `policy.json`.
fn project(config_extra: &str, policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{config_extra}\n[database]\nurl = \"sqlite://airlock.db\"\n\n\
         [[upstream]]\nname = \"telegram\"\ncommand = [\"{AIRLOCK}\", \"demo-upstream\"]\npolicy = \"policy.json\"\n"
    );
    std::fs::write(dir.path().join("airlock.toml"), config).expect("write config");
    std::fs::write(dir.path().join("policy.json"), policy).expect("write policy");
    dir
}

const POLICY: &str = r#"{"version":"1","default":"deny","tools":{
  "get_chats":{}, "send_message":{"rate_limit":{"max":10,"window":60}},
  "delete_chat":{"action":"deny","reason":"never from an agent"},
  "export_session":{"action":"require_approval"}}}"#;

#[test]
fn check_names_the_audit_signing_key_or_says_what_is_wrong_with_it() {
    let dir = project("[audit]\nsigning_key_file = \"audit.key\"\n", POLICY);
    let keygen = airlock(dir.path(), &["audit", "keygen"]);
    assert!(keygen.status.success());
    let public_key = stderr(&keygen)
        .replace("public key: ", "")
        .trim()
        .to_owned();
    std::fs::write(dir.path().join("audit.key"), stdout(&keygen)).expect("save the key");
    let output = airlock(dir.path(), &["check", "--offline"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("exports are signed; public key {public_key}")),
        "{}",
        stdout(&output)
    );
    std::fs::write(dir.path().join("audit.key"), "not a key").expect("break the key");
    let broken = airlock(dir.path(), &["check", "--offline"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("[audit] signing_key_file: not an Ed25519 key"),
        "{}",
        stderr(&broken)
    );
    let serve = airlock(dir.path(), &["serve"]);
    assert_eq!(
        serve.status.code(),
        Some(1),
        "serve refuses to start without its key"
    );
    assert!(
        stderr(&serve).contains("signing_key_file"),
        "{}",
        stderr(&serve)
    );
}

#[test]
fn check_explains_each_tools_rule() {
    let dir = project("", POLICY);
    let output = airlock(dir.path(), &["check"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);
    for expected in [
        "upstream telegram",
        "get_chats",
        "rate limit 10 per 60 s",
        "deny: never from an agent",
        "require approval",
        "(any other tool)",
        "database sqlite://",
        "ok (reachable, migrations applied)",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from:\n{report}"
        );
    }
}

#[test]
fn the_config_flag_works_after_the_subcommand() {
    let dir = project("", POLICY);
    let elsewhere = tempfile::tempdir().expect("another directory");
    let config = dir.path().join("airlock.toml");
    let output = airlock(
        elsewhere.path(),
        &["check", "--config", &config.display().to_string()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_unknown_config_key_stops_with_its_name() {
    let dir = project("listn = \"oops\"", POLICY);
    for command in [&["check"][..], &["serve"][..]] {
        let output = airlock(dir.path(), command);
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        let message = stderr(&output);
        assert!(message.contains("listn"), "{message}");
        assert!(message.contains("airlock.toml"), "{message}");
        assert!(!message.contains("panicked"), "{message}");
    }
}

#[test]
fn a_bad_value_or_missing_file_is_a_one_line_error() {
    let dir = project("max_body_bytes = \"lots\"", POLICY);
    let output = airlock(dir.path(), &["serve"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("server.max_body_bytes"),
        "{}",
        stderr(&output)
    );

    let empty = tempfile::tempdir().expect("a temporary directory");
    let output = airlock(empty.path(), &["serve"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("not found"), "{}", stderr(&output));
}

#[test]
fn the_worker_thread_count_is_checked_before_anything_runs() {
    let dir = project("", POLICY);
    let with_workers = |workers: &str| {
        Command::new(AIRLOCK)
            .args(["check"])
            .current_dir(dir.path())
            .env("AIRLOCK_LOG", "warn")
            .env("AIRLOCK_WORKER_THREADS", workers)
            .env_remove("AIRLOCK_CONFIG")
            .output()
            .expect("run airlock")
    };
    for bad in ["0", "two", "100000", ""] {
        let output = with_workers(bad);
        assert_eq!(output.status.code(), Some(1), "{bad:?}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!(
                "AIRLOCK_WORKER_THREADS={bad:?} is not a number of threads"
            )),
            "{message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
    let one = with_workers("1");
    assert!(one.status.success(), "{}", stderr(&one));
}

#[test]
fn a_broken_policy_stops_start_up_naming_file_and_key() {
    let dir = project(
        "",
        r#"{"version":"1","default":"deny","tools":{"send_message":{"rate_limit":{"max":0,"window":60}}}}"#,
    );
    let output = airlock(dir.path(), &["check"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("policy.json"), "{message}");
    assert!(
        message.contains("tools.send_message.rate_limit.max"),
        "{message}"
    );
}

#[test]
fn token_create_prints_only_the_token_and_serve_accepts_it() {
    let dir = project("", POLICY);
    let created = airlock(dir.path(), &["token", "create", "--agent", "ci-bot"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let out = stdout(&created);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the token alone: {out:?}");
    let token = lines[0];
    assert!(token.starts_with("alk_"), "{token}");
    assert!(
        !stderr(&created).contains(token),
        "the token is not repeated on stderr"
    );

    let server = common::Server::start(dir.path());
    let addr = server.addr.clone();

    let url = format!("http://{addr}/mcp/telegram");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"cli-test","version":"1"}}}"#;
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (good, bad) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let post = |token: &str| {
            client
                .post(&url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .body(init)
                .send()
        };
        (
            post(token).await.expect("POST").status(),
            post("alk_wrong").await.expect("POST").status(),
        )
    });
    assert_eq!(good, 200);
    assert_eq!(bad, 401);

    let (status, log) = server.stop();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert!(!log.contains(token), "the token never reaches the log");
    assert!(log.contains("airlock stopped"), "{log}");
}

#[test]
fn the_example_config_and_policies_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = airlock(
        root,
        &["check", "--offline", "--config", "examples/airlock.toml"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(
        report.contains("require approval (2 of security"),
        "{report}"
    );
    assert!(
        report.contains("deny: deleting files is done by people"),
        "{report}"
    );
}

#[test]
fn user_commands_add_reviewers_and_print_only_their_secrets() {
    let dir = project("", POLICY);
    let added = airlock(
        dir.path(),
        &["user", "add", "alice@example.org", "--role", "approver"],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let password = stdout(&added);
    assert_eq!(
        password.trim().len(),
        24,
        "the generated dashboard password alone: {password:?}"
    );
    assert_eq!(password.lines().count(), 1);
    assert!(stderr(&added).contains("shown only this once"));
    let reset = airlock(dir.path(), &["user", "password", "alice@example.org"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert_ne!(stdout(&reset), password, "a new password");
    let nobody = airlock(dir.path(), &["user", "password", "nobody@example.org"]);
    assert_eq!(nobody.status.code(), Some(1));

    let again = airlock(
        dir.path(),
        &["user", "add", "alice@example.org", "--role", "viewer"],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let other_case = airlock(
        dir.path(),
        &["user", "add", "Alice@Example.org", "--role", "admin"],
    );
    assert_eq!(other_case.status.code(), Some(1), "one person, one user");
    let bad_role = airlock(
        dir.path(),
        &["user", "add", "bob@example.org", "--role", "root"],
    );
    assert_eq!(bad_role.status.code(), Some(1));
    assert!(
        stderr(&bad_role).contains("use admin, approver or viewer"),
        "{}",
        stderr(&bad_role)
    );
    let bad_email = airlock(dir.path(), &["user", "add", "bob", "--role", "viewer"]);
    assert_eq!(bad_email.status.code(), Some(1));
    assert!(stderr(&bad_email).contains("not an email address"));

    let token = airlock(dir.path(), &["user", "token", "alice@example.org"]);
    assert!(token.status.success(), "{}", stderr(&token));
    let out = stdout(&token);
    assert_eq!(out.lines().count(), 1, "the token alone: {out:?}");
    assert!(!stderr(&token).contains(out.trim()));
    let unknown = airlock(dir.path(), &["user", "token", "nobody@example.org"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("airlock user add nobody@example.org"),
        "{}",
        stderr(&unknown)
    );
    let missing = airlock(
        dir.path(),
        &["approve", "0190c1d2-0000-7000-8000-000000000000"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no call with id"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn check_says_when_the_database_cannot_be_reached() {
    let dir = project("", POLICY);
    let config = std::fs::read_to_string(dir.path().join("airlock.toml")).expect("config");
    // Nothing listens on port 9 of localhost: the connection is refused at once.
    let config = config.replace(
        "url = \"sqlite://airlock.db\"",
        "url = \"postgres://airlock:s3cret@127.0.0.1:9/airlock\"\nacquire_timeout = 2",
    );
    std::fs::write(dir.path().join("airlock.toml"), config).expect("write config");

    let output = airlock(dir.path(), &["check"]);

    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("database postgres://airlock:"),
        "{message}"
    );
    assert!(
        !message.contains("s3cret"),
        "the password is never shown: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_tests_the_smtp_server_and_says_what_is_wrong_in_plain_words() {
    let sink = common::smtp::SmtpSink::start().await;
    let email = |url: &str| {
        format!(
            "[email]\nsmtp_url = \"{url}\"\nfrom = \"airlock@example.org\"\nto = [\"ops@example.org\"]\n"
        )
    };
    let dir = project(&email(&sink.url()), POLICY);
    let ok = airlock(dir.path(), &["check"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("email: ok (the SMTP server answered"),
        "{}",
        stdout(&ok)
    );

    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("an address").port()
    };
    let dir = project(&email(&format!("smtp://127.0.0.1:{closed}")), POLICY);
    let down = airlock(dir.path(), &["check"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).contains("email: nothing listens at that host and port"),
        "{}",
        stderr(&down)
    );

    let dir = project(&email(&format!("smtps://127.0.0.1:{}", sink.port)), POLICY);
    let tls = airlock(dir.path(), &["check"]);
    assert_eq!(tls.status.code(), Some(1));
    assert!(stderr(&tls).contains("TLS failed"), "{}", stderr(&tls));
}

#[test]
fn policy_test_says_what_a_call_gets_and_why_and_fails_an_unmet_expectation() {
    let seed = r#"{"version":"1","default":"deny","tools":{"export_session":{},
      "send_message":{"rules":[{"name":"groups need a human","action":"require_approval",
        "conditions":[{"path":"args.chat_id","op":"gte","value":0}]}]}}}"#;
    let dir = project("", seed);
    let parked = airlock(
        dir.path(),
        &[
            "policy",
            "test",
            "--upstream",
            "telegram",
            "--tool",
            "export_session",
            "--args",
            r#"{"account":"main"}"#,
            "--agent",
            "claude",
            "--expect",
            "park",
        ],
    );
    assert!(parked.status.success(), "{}", stderr(&parked));
    let report = stdout(&parked);
    assert!(
        report.starts_with("telegram.export_session {\"account\":\"main\"} from agent claude\n"),
        "{report}"
    );
    assert!(
        report.contains("verdict: park: 1 approval(s) of any approver within 600 s: looks credential-exporting: name `export_session`; allowed by its rule, parked by [policy] sensitive"),
        "{report}"
    );
    assert!(
        report.contains("risk: looks credential-exporting: name `export_session`"),
        "{report}"
    );

    let group = airlock(
        dir.path(),
        &[
            "policy",
            "test",
            "--upstream",
            "telegram",
            "--tool",
            "send_message",
            "--args",
            r#"{"chat_id":-100,"text":"hi"}"#,
            "--expect",
            "allow",
        ],
    );
    assert!(!group.status.success());
    let report = stdout(&group);
    assert!(report.contains("verdict: park:"), "{report}");
    assert!(
        report.contains("\"groups need a human\" (park unless args.chat_id gte 0: 1 of any approver; timeout 600 s): args.chat_id gte 0 does not hold"),
        "{report}"
    );
    assert!(
        report.contains("expected: allow, but the verdict is park"),
        "{report}"
    );
    assert_eq!(
        stderr(&group).trim(),
        "error: the verdict is not the one --expect names"
    );
    let bad = airlock(
        dir.path(),
        &["policy", "test", "--upstream", "nope", "--tool", "x"],
    );
    assert!(
        stderr(&bad).contains("no upstream \"nope\""),
        "{}",
        stderr(&bad)
    );
}
