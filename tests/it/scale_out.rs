//! Several Airlock instances on one PostgreSQL database behave as one gateway: a call parked on A
//! is decided through B and delivered by A; decisions stay exactly-once across instances; a dead
//! instance's calls survive it and are picked up by their agents through the others; a database
//! outage fails closed and heals.
//!
//! These need PostgreSQL (`AIRLOCK_TEST_POSTGRES`); without it they skip, except under `CI=true`.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    AIRLOCK, Agent, CallLog, Server, Setup, TestApp, TestDatabase, WAIT, is_error, result_of, text,
};
use serde_json::{Value, json};

/// A fresh shared database, or `None` (skip) without PostgreSQL.
async fn shared_database() -> Option<TestDatabase> {
    let server = common::postgres_server();
    if !common::outside_tool_available("PostgreSQL (AIRLOCK_TEST_POSTGRES)", server.is_some()) {
        return None;
    }
    Some(TestDatabase::on_postgres(&server?).await)
}

/// An instance on the shared database `db`, named `id`, that declares others dead after 3 s.
async fn instance(db: &TestDatabase, id: &str) -> TestApp {
    instance_with(db, id, "").await
}

/// [`instance`] with more config sections (`extra`).
async fn instance_with(db: &TestDatabase, id: &str, extra: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        database: Some(db.url.clone()),
        extra_toml: format!("instance_id = \"{id}\"\ninstance_timeout = 3\n{extra}"),
        ..Setup::default()
    })
    .await
}

fn id_of(call: &Value) -> String {
    call["id"].as_str().expect("a call id").to_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_parked_on_one_instance_is_approved_through_another_and_delivered() {
    let Some(db) = shared_database().await else {
        return;
    };
    let a = instance(&db, "a").await;
    let b = instance(&db, "b").await;
    let reviewer_on_b = b.reviewer("alice@example.org", "approver").await;
    let agent_on_a = a.agent().await;

    const CALLS: usize = 200;
    let mut latencies = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let call = agent_on_a.spawn_call("export_session", json!({}));
        let pending = reviewer_on_b.wait_pending(1).await;
        let id = id_of(&pending[0]);
        let decided = Instant::now();
        let (status, body) = reviewer_on_b.approve(&id).await;
        assert_eq!(status, 200, "{body}");
        let result = result_of(call).await;
        latencies.push(decided.elapsed());
        assert!(!is_error(&result), "{result:?}");
        assert!(text(&result).starts_with("1BVtsOK"));
    }
    latencies.sort();
    eprintln!(
        "decision on B to result on A, over {CALLS} calls: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[CALLS - 1].as_secs_f64() * 1e3,
    );
    assert_eq!(a.call_log.calls_of("export_session"), CALLS);
    assert_eq!(
        b.call_log.calls_of("export_session"),
        0,
        "A forwards its own calls"
    );

    // A session lives on the instance that opened it; the other one says so.
    let session_on_a = a.raw_session("2025-06-18").await;
    let misrouted = b
        .post(
            "telegram",
            &[("mcp-session-id", &session_on_a)],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(misrouted.status(), 404);
    let body: Value = misrouted.json().await.expect("a JSON error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("opened on another one") && m.contains("Mcp-Session-Id")),
        "{body}"
    );
    agent_on_a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_requests_on_three_instances_joined_on_one_approval_run_it_once() {
    let Some(db) = shared_database().await else {
        return;
    };
    let hold = "[approval]\nhold = 0\n";
    let apps = [
        instance_with(&db, "a", hold).await,
        instance_with(&db, "b", hold).await,
        instance_with(&db, "c", hold).await,
    ];
    let mut reviewers = Vec::new();
    let mut agents = Vec::new();
    for (n, app) in apps.iter().enumerate() {
        reviewers.push(app.reviewer(&format!("r{n}@example.org"), "approver").await);
        // One agent, one token, whichever instance the balancer picks.
        agents.push(Agent::connect(&app.mcp_url("telegram"), &apps[0].token).await);
    }
    let waits: Vec<_> = (0..20)
        .map(|n| agents[n % 3].spawn_call("export_session", json!({"account": "shared"})))
        .collect();
    let id = reviewers[1].wait_one_pending().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut waiting = 0;
        for reviewer in &reviewers {
            waiting += reviewer.call(&id).await["requests_waiting"]
                .as_u64()
                .unwrap_or(0);
        }
        if waiting == 20 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {waiting} of 20 requests joined"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reviewers[1].calls("pending").await.len(), 1, "one row");

    let (status, _) = reviewers[1].approve(&id).await;
    assert_eq!(status, 200);

    let mut results = Vec::new();
    for wait in waits {
        results.push(result_of(wait).await);
    }
    let texts: Vec<&str> = results.iter().map(text).collect();
    let got = texts.iter().filter(|t| t.starts_with("1BVtsOK")).count();
    let picked_up = format!("Call {id} was picked up by another request; not run again");
    let others = texts.iter().filter(|t| **t == picked_up).count();
    assert_eq!((got, others), (1, 19), "{texts:#?}");
    let ran: usize = apps
        .iter()
        .map(|app| app.call_log.calls_of("export_session"))
        .sum();
    assert_eq!(ran, 1, "one call upstream, on one instance");
    for agent in agents {
        agent.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_decisions_spread_over_two_instances_have_one_winner() {
    let Some(db) = shared_database().await else {
        return;
    };
    let a = instance(&db, "a").await;
    let b = instance(&db, "b").await;
    let mut reviewers = Vec::new();
    for n in 0..4 {
        let app = if n % 2 == 0 { &a } else { &b };
        reviewers.push(app.reviewer(&format!("r{n}@example.org"), "approver").await);
    }
    let agent = a.agent().await;
    let call = agent.spawn_call("export_session", json!({}));
    let id = id_of(&reviewers[0].wait_pending(1).await[0]);

    let reviewers = Arc::new(reviewers);
    let decisions: Vec<_> = (0..50)
        .map(|n| {
            let reviewers = reviewers.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let reviewer = &reviewers[n % 4];
                if n % 3 == 0 {
                    reviewer.reject(&id, &format!("no ({n})")).await.0
                } else {
                    reviewer.approve(&id).await.0
                }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for decision in decisions {
        statuses.push(decision.await.expect("a decision"));
    }

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let result = result_of(call).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = a.call_log.calls_of("export_session") + b.call_log.calls_of("export_session");
    assert!(runs <= 1, "the upstream saw the call {runs} times");
    assert_eq!(runs == 1, !is_error(&result), "{result:?}");
    agent.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_calls_of_a_killed_instance_survive_and_its_agent_picks_them_up_through_another() {
    let Some(db) = shared_database().await else {
        return;
    };
    let b = instance(&db, "b").await;
    let reviewer = b.reviewer("alice@example.org", "approver").await;
    // A is its own process, so it can die without warning.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let a_log = CallLog(dir.path().join("calls.jsonl"));
    std::fs::write(dir.path().join("policy.json"), common::TEST_POLICY).expect("policy");
    std::fs::write(
        dir.path().join("airlock.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ninstance_id = \"a\"\ninstance_timeout = 3\n\
             [database]\nurl = \"{}\"\n\
             [[upstream]]\nname = \"telegram\"\ncommand = [\"{AIRLOCK}\", \"demo-upstream\", \"--call-log\", \"{}\"]\n\
             policy = \"policy.json\"\n",
            db.url,
            a_log.0.display()
        ),
    )
    .expect("config");
    let a = Server::start(dir.path());
    let agent = Agent::connect(&format!("http://{}/mcp/telegram", a.addr), &b.token).await;
    let calls: Vec<_> = (0..3)
        .map(|n| agent.spawn_call("export_session", json!({"account": format!("a{n}")})))
        .collect();
    let parked = reviewer.wait_pending(3).await;

    a.kill_hard();
    // The client may keep trying to resume its cut streams (their events carry ids); the calls
    // do not depend on it.
    for call in calls {
        call.abort();
    }
    let id_for = |account: &str| {
        parked
            .iter()
            .find(|c| c["arguments"]["account"] == account)
            .map(id_of)
            .expect("a call per account")
    };
    let (status, _) = reviewer.approve(&id_for("a0")).await;
    assert_eq!(status, 200, "A's calls are still decidable through B");
    let (status, _) = reviewer.reject(&id_for("a1"), "not this one").await;
    assert_eq!(status, 200);
    assert_eq!(
        reviewer.call(&id_for("a0")).await["status"],
        "approved",
        "nothing runs without its agent asking"
    );

    let on_b = b.agent().await;
    let result = on_b.call("export_session", json!({"account": "a0"})).await;
    assert!(text(&result).starts_with("1BVtsOK"), "{}", text(&result));
    let told = on_b.call("export_session", json!({"account": "a1"})).await;
    assert_eq!(text(&told), "Rejected by alice@example.org: not this one");
    let waiting = on_b.spawn_call("export_session", json!({"account": "a2"}));
    let a2 = id_for("a2");
    reviewer.wait_requests(&a2, 1).await;
    let (status, _) = reviewer.approve(&a2).await;
    assert_eq!(status, 200);
    assert!(!is_error(&result_of(waiting).await));
    assert_eq!(a_log.calls_of("export_session"), 0, "A is dead");
    assert_eq!(b.call_log.calls_of("export_session"), 2, "once each, on B");
    assert!(reviewer.calls("pending").await.is_empty());
    on_b.close().await;
}

/// A TCP relay to PostgreSQL that a test can cut (dropping every connection and refusing new
/// ones) and restore: a database outage for one instance, without stopping the shared server.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("an address").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let mut cuts = cuts.clone();
                // Only cuts after this connection opened end it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    /// A relay to `db`'s server, and the URL of `db` through it.
    async fn in_front_of(db: &TestDatabase) -> (Self, String) {
        let mut url = url::Url::parse(&db.url).expect("a URL");
        let target = format!(
            "{}:{}",
            url.host_str().expect("a host"),
            url.port().unwrap_or(5432)
        );
        let relay = Self::start(target).await;
        url.set_port(Some(relay.port)).expect("a port");
        (relay, url.to_string())
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_refuses_sensitive_calls_and_heals_without_a_restart() {
    let Some(db) = shared_database().await else {
        return;
    };
    let (relay, url) = Relay::in_front_of(&db).await;
    let app = TestApp::spawn_with(Setup {
        database: Some(url.clone()),
        ..Setup::default()
    })
    .await;
    let reviewer = app.reviewer("alice@example.org", "approver").await;
    let agent = app.agent().await;
    assert!(!is_error(&agent.call("get_chats", json!({})).await));
    let before = agent.spawn_call("export_session", json!({}));
    let waiting = id_of(&reviewer.wait_pending(1).await[0]);

    relay.cut();
    let outage = Instant::now();
    let refused = agent.call("export_session", json!({})).await;
    assert!(is_error(&refused));
    assert!(
        text(&refused).contains("cannot record the call right now; not run"),
        "{}",
        text(&refused)
    );
    let allowed = agent.call("get_chats", json!({})).await;
    assert!(
        !is_error(&allowed),
        "allowed tools keep working: {allowed:?}"
    );
    let (status, _) = app.readyz().await;
    assert_eq!(status, 503, "/readyz reports the database");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    relay.restore();

    let deadline = Instant::now() + WAIT;
    while app.readyz().await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = reviewer.approve(&waiting).await;
    assert_eq!(
        status, 200,
        "the call parked before the outage is still there: {body}"
    );
    assert!(!is_error(&result_of(before).await));
    let after = agent.spawn_call("export_session", json!({}));
    let parked = reviewer.wait_pending(1).await;
    let (status, _) = reviewer.approve(&id_of(&parked[0])).await;
    assert_eq!(status, 200);
    assert!(!is_error(&result_of(after).await), "parking works again");
    assert_eq!(app.call_log.calls_of("export_session"), 2);
    agent.close().await;
}

/// A 2026-07-28 `tools/call` of `send_message` (no session: any instance may take it).
async fn stateless_send(app: &TestApp, n: u32) -> Value {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"send_message","arguments":{{"chat_id":1297381004,"text":"m{n}"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    );
    let response = app
        .post(
            "telegram",
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "send_message"),
            ],
            &body,
        )
        .await;
    common::messages(response).await.pop().expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agents_rate_limit_holds_across_instances() {
    let Some(db) = shared_database().await else {
        return;
    };
    let a = instance(&db, "a").await;
    let mut b = instance(&db, "b").await;
    // TEST_POLICY: send_message at most 2 calls per 3 s, per agent: across instances, sessions
    // and revisions. The agent uses one token on both instances (they share the database).
    b.token = a.token.clone();
    let session_on_b = b.raw_session("2025-06-18").await;
    let in_session = |n: u32| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"send_message","arguments":{{"chat_id":1297381004,"text":"m{n}"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        );
        let b = &b;
        let session = session_on_b.clone();
        async move {
            let response = b.post_in_session(&session, &body).await;
            common::messages(response).await.pop().expect("an answer")
        }
    };

    let first = stateless_send(&a, 1).await;
    let second = in_session(2).await;
    let third = stateless_send(&a, 3).await;
    let fourth = in_session(4).await;

    for ok in [&first, &second] {
        assert_ne!(ok["result"]["isError"], true, "{ok}");
    }
    for limited in [&third, &fourth] {
        assert_eq!(limited["result"]["isError"], true, "{limited}");
        assert!(
            limited["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with(
                    "Rate limit for telegram.send_message: 2 calls per 3 s; retry after"
                )),
            "{limited}"
        );
    }
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let later = stateless_send(&b, 5).await;
    assert_ne!(
        later["result"]["isError"], true,
        "the window moved on: {later}"
    );
    let sent = a.call_log.calls_of("send_message") + b.call_log.calls_of("send_message");
    assert_eq!(sent, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_parked_call_is_emailed_once_with_every_instance_sending() {
    let Some(db) = shared_database().await else {
        return;
    };
    let sink = common::smtp::SmtpSink::start().await;
    // One message per call (no digests), and room for 30 waiting calls of one agent.
    let email = format!(
        "[email]\nsmtp_url = \"{}\"\nfrom = \"airlock@example.org\"\nto = [\"ops@example.org\"]\n\
         notify_every = 0\n[approval]\nmax_pending_per_agent = 30\n",
        sink.url()
    );
    let a = instance_with(&db, "a", &email).await;
    let b = instance_with(&db, "b", &email).await;
    let reviewer = a.reviewer("alice@example.org", "approver").await;
    let (on_a, on_b) = (a.agent().await, b.agent().await);

    let mut calls = Vec::new();
    for n in 0..30 {
        let agent = if n % 2 == 0 { &on_a } else { &on_b };
        calls.push(agent.spawn_call("export_session", json!({ "n": n })));
    }
    let parked = reviewer.wait_pending(30).await;
    let mails = sink.wait_for(30, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mails_now = sink.mails();
    assert_eq!(
        mails_now.len(),
        30,
        "one email per parked call, not one per instance"
    );
    let mut linked: Vec<String> = mails
        .iter()
        .filter_map(|m| {
            m.data
                .split("/calls/")
                .nth(1)
                .map(|rest| rest.chars().take(36).collect())
        })
        .collect();
    linked.sort();
    linked.dedup();
    assert_eq!(linked.len(), 30, "every call has its own email");
    for call in &parked {
        assert!(linked.contains(&id_of(call)));
    }
    for agent in [on_a, on_b] {
        agent.close().await;
    }
    drop(calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_an_outage_longer_than_the_timeout_instances_keep_each_others_calls() {
    let Some(db) = shared_database().await else {
        return;
    };
    let (relay, url) = Relay::in_front_of(&db).await;
    let through_relay = |id: &str| Setup {
        database: Some(url.clone()),
        extra_toml: format!("instance_id = \"{id}\"\ninstance_timeout = 3\n"),
        ..Setup::default()
    };
    let a = TestApp::spawn_with(through_relay("a")).await;
    let b = TestApp::spawn_with(through_relay("b")).await;
    let reviewer = a.reviewer("alice@example.org", "approver").await;
    let agent_on_b = b.agent().await;
    let call = agent_on_b.spawn_call("export_session", json!({}));
    let id = id_of(&reviewer.wait_pending(1).await[0]);

    // Both lose the database for twice the timeout: every heartbeat is stale when it returns.
    relay.cut();
    tokio::time::sleep(Duration::from_secs(6)).await;
    relay.restore();
    tokio::time::sleep(Duration::from_secs(6)).await;

    let (status, body) = reviewer.approve(&id).await;
    assert_eq!(status, 200, "B's call survived A's return: {body}");
    assert!(!is_error(&result_of(call).await));
    agent_on_b.close().await;
}
