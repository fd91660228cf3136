//! What a restart does to the queue: calls parked when Airlock died survive it (they belong to
//! their key, not to the requests that died with the process), stay decidable, and are picked up
//! by their agent's next call, never forwarded without one; a call cut off mid-forward becomes
//! `outcome_unknown`, never re-sent. Driven with the real binary, killed with SIGKILL.

use crate::common;

use airlock::domain::{
    Actor, AgentName, ArgsDigest, AttachKey, CallId, CallStatus, Timestamp, ToolName, UpstreamName,
};
use airlock::store::{NewCall, Store};
use common::pending_in as pending;
use common::{AIRLOCK, Agent, CallLog, Server, TestDatabase, run_in as airlock, stdout};
use serde_json::{Value, json};

const POLICY: &str = r#"{"version": "1", "default": "deny",
  "tools": {"get_chats": {}, "export_session": {"action": "require_approval"}}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn calls_parked_when_airlock_is_killed_survive_the_restart_and_wait_for_their_agent() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let call_log = CallLog(dir.path().join("calls.jsonl"));
    let db = TestDatabase::new(dir.path()).await;
    std::fs::write(dir.path().join("policy.json"), POLICY).expect("write the policy");
    std::fs::write(
        dir.path().join("airlock.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{}\"\n[approval]\nhold = 1\n\
             [[upstream]]\nname = \"telegram\"\ncommand = [\"{AIRLOCK}\", \"demo-upstream\", \"--call-log\", \"{}\"]\n\
             policy = \"policy.json\"\n",
            db.url,
            call_log.0.display()
        ),
    )
    .expect("write the config");
    let token = stdout(&airlock(
        dir.path(),
        &["token", "create", "--agent", "claude"],
    ));
    let added = airlock(
        dir.path(),
        &["user", "add", "alice@example.org", "--role", "approver"],
    );
    assert!(added.status.success());
    let reviewer_token = stdout(&airlock(
        dir.path(),
        &["user", "token", "alice@example.org"],
    ));

    let first = Server::start(dir.path());
    let agent = Agent::connect(&format!("http://{}/mcp/telegram", first.addr), token.trim()).await;
    // a0 is approved before the crash with nobody waiting (each request is told to call again
    // after the 1 s hold); a1 and a2 are still pending while one more request waits for a2.
    for n in 0..3 {
        let told = agent
            .call("export_session", json!({"account": format!("a{n}")}))
            .await;
        assert!(
            common::text(&told).starts_with("Waiting for approval"),
            "{told:?}"
        );
    }
    let waiting = pending(dir.path());
    assert_eq!(waiting.len(), 3, "{waiting:#?}");
    let id_for = |account: &str| {
        waiting
            .iter()
            .find(|c| c["arguments"]["account"] == account)
            .and_then(|c| c["id"].as_str())
            .expect("a call per account")
            .to_owned()
    };
    let (approved, rejected, left) = (id_for("a0"), id_for("a1"), id_for("a2"));
    assert!(
        airlock(dir.path(), &["approve", &approved])
            .status
            .success()
    );
    let holding = agent.spawn_call("export_session", json!({"account": "a2"}));

    first.kill_hard();
    // The client may keep trying to resume its cut stream (its events carry ids); the call does
    // not depend on it.
    holding.abort();

    let second = Server::start(dir.path());
    let survived = pending(dir.path());
    assert_eq!(survived.len(), 2, "a1 and a2 wait on: {survived:#?}");
    assert!(
        airlock(
            dir.path(),
            &["reject", &rejected, "--reason", "not after a crash"]
        )
        .status
        .success()
    );
    assert_eq!(
        call_log.calls_of("export_session"),
        0,
        "nothing runs without its agent asking"
    );

    let agent = Agent::connect(
        &format!("http://{}/mcp/telegram", second.addr),
        token.trim(),
    )
    .await;
    let result = agent.call("export_session", json!({"account": "a0"})).await;
    assert!(common::text(&result).starts_with("1BVtsOK"), "{result:?}");
    let told = agent.call("export_session", json!({"account": "a1"})).await;
    assert_eq!(common::text(&told), "Rejected by cli: not after a crash");
    assert_eq!(call_log.calls_of("export_session"), 1);
    let reviewer = reqwest::Client::new();
    let call: Value = reviewer
        .get(format!("http://{}/api/v1/calls/{approved}", second.addr))
        .bearer_auth(reviewer_token.trim())
        .send()
        .await
        .expect("GET a call")
        .json()
        .await
        .expect("JSON");
    assert_eq!(call["status"], "completed", "{call:#}");
    assert!(
        pending(dir.path()).iter().any(|c| c["id"] == left.as_str()),
        "a2 still waits for a decision"
    );
    agent.close().await;
    second.stop();
}

#[tokio::test]
async fn a_restart_marks_calls_cut_off_mid_forward_as_outcome_unknown_and_keeps_the_others() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = TestDatabase::new(dir.path()).await;
    let url = db.url.clone();
    let store = Store::connect(&url).await.expect("open the store");
    let now = Timestamp::now();
    let (forwarding, approved, waiting) =
        (CallId::generate(), CallId::generate(), CallId::generate());
    for (id, steps) in [
        (
            &forwarding,
            &[CallStatus::Approved, CallStatus::Forwarding][..],
        ),
        (&approved, &[CallStatus::Approved][..]),
        (&waiting, &[][..]),
    ] {
        store
            .insert_call(
                &NewCall {
                    id,
                    upstream: &UpstreamName::new("telegram"),
                    tool: &ToolName::new("export_session"),
                    agent: &AgentName::new("claude"),
                    agent_session: "s",
                    instance_id: "an-earlier-run",
                    args_json: "{}",
                    args_shown: "{}",
                    args_sha256: &ArgsDigest::of(&json!({})),
                    attach_key: &AttachKey::new(
                        &AgentName::new("claude"),
                        id.as_str(),
                        &UpstreamName::new("telegram"),
                        &ToolName::new("export_session"),
                        &ArgsDigest::of(&json!({})),
                    ),
                    rule_json: "{}",
                    approvals_needed: 1,
                    created_at: now,
                    expires_at: now + time::Duration::minutes(10),
                },
                &[],
                None,
            )
            .await
            .expect("insert a call");
        let mut from = CallStatus::Pending;
        for to in steps {
            let step = from.to(*to).expect("a legal step");
            assert!(
                store
                    .transition(id, step, &Actor::SYSTEM, None, None)
                    .await
                    .expect("step")
            );
            from = *to;
        }
    }

    let config = airlock::config::Config::from_toml(
        &format!("[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{url}\"\n"),
        None,
        std::iter::empty(),
    )
    .expect("a config");
    let _app = airlock::app::Application::build(config)
        .await
        .expect("airlock starts");

    let status = |id: &CallId| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.call(&id).await.expect("read").expect("a row").status }
    };
    assert_eq!(status(&forwarding).await, CallStatus::OutcomeUnknown);
    assert_eq!(
        status(&approved).await,
        CallStatus::Approved,
        "still waiting for its agent to pick it up"
    );
    assert_eq!(
        status(&waiting).await,
        CallStatus::Pending,
        "still decidable"
    );
    let events = store.events(&forwarding).await.expect("events");
    assert!(
        events
            .last()
            .and_then(|e| e.detail.as_deref())
            .is_some_and(|d| d.contains("may have run")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_second_instance_on_the_same_sqlite_file_is_refused() {
    if common::postgres_server().is_some() {
        // PostgreSQL is meant to be shared: tests/scale_out.rs covers several instances on it.
        return;
    }
    let first = common::TestApp::spawn().await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ninstance_id = \"another\"\n[database]\nurl = \"{}\"\n",
        first.db.url
    );
    let config =
        airlock::config::Config::from_toml(&toml, None, std::iter::empty()).expect("a config");

    let second = airlock::app::Application::build(config).await;

    let Err(error) = second else {
        panic!("a second instance started on a shared SQLite file");
    };
    let message = error.to_string();
    assert!(
        message.contains("another Airlock instance") && message.contains("use PostgreSQL"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_live_process_with_the_same_instance_id_is_refused() {
    let first = common::TestApp::spawn_with(common::Setup {
        extra_toml: "instance_id = \"twin\"\n".to_owned(),
        ..common::Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("airlock.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ninstance_id = \"twin\"\n[database]\nurl = \"{}\"\n",
            first.db.url
        ),
    )
    .expect("config");

    let second = airlock(dir.path(), &["serve"]);

    assert_eq!(second.status.code(), Some(1));
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("instance id \"twin\" is in use by a live process"),
        "{message}"
    );
    drop(first);
}
