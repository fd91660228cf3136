//! What parked calls cost (issue 19, goal 5): the memory of a real `airlock serve` holding
//! 10,000 parked calls with no request open, and 1,000 requests held open at once, and the time
//! from a reviewer's decision to the result at the agent under that load, on one instance
//! (SQLite) and across two instances sharing PostgreSQL.
//!
//! Run it with `cargo bench --bench parked`. Resident memory is read from `/proc` (`VmRSS`) after
//! a warm-up and again once the calls are in; the growth is divided by the calls. Agents are
//! 2026-07-28 clients (one POST per call, no session), each call with arguments of its own
//! (`get_chats {"limit": N}` on the demo upstream), under a policy that parks everything. A
//! decision is an approval through the reviewers' JSON API, timed from sending it to the
//! agent's request receiving the upstream's answer, one decision at a time while the other
//! requests stay open. The two-instance part needs `AIRLOCK_TEST_POSTGRES` (a PostgreSQL URL);
//! without it, it is skipped with a note. `AIRLOCK_BENCH_PARKED=N` changes the 10,000.
//!
//! The queue's limits (`max_pending*`), the connection limits and `ulimit -n` are raised for the
//! run. Figures are reported next to the goals, never asserted: the machine is shared.

#[path = "support/procs.rs"]
mod procs;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use procs::{AIRLOCK, Airlock, Fallible, ms, quantile};
use serde_json::{Value, json};

const DEFAULT_PARKED: usize = 10_000;
const HELD_OPEN: usize = 1_000;
const DECISIONS: usize = 200;
/// Requests in flight while parking (their `hold` ends each after a second).
const PARKING_CONCURRENCY: usize = 500;
const OPEN_FILES: u32 = 20_000;
const MIB: f64 = 1024.0 * 1024.0;

fn main() -> std::process::ExitCode {
    support::run("parked", run())
}

async fn run() -> Fallible<()> {
    let parked = std::env::var("AIRLOCK_BENCH_PARKED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_PARKED);
    let dir = tempfile::tempdir()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2 * HELD_OPEN)
        .build()?;

    eprintln!("parking {parked} calls (each request ends after its 1 s hold) ...");
    let sqlite = |name: &str| {
        format!(
            "sqlite://{}",
            dir.path().join(format!("{name}.db")).display()
        )
    };
    let quiet = Instance::start(dir.path(), "quiet", &sqlite("quiet"), 1).await?;
    quiet.park(&http, 0..100, PARKING_CONCURRENCY).await?;
    settle().await;
    let before = quiet.rss()?;
    let cpu_before = quiet.airlock.process.cpu_time().unwrap_or_default();
    quiet
        .park(&http, 100..100 + parked, PARKING_CONCURRENCY)
        .await?;
    let parking_cpu = quiet
        .airlock
        .process
        .cpu_time()
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    settle().await;
    let parked_growth = quiet.rss()?.saturating_sub(before);
    let argument_bytes = json!({"limit": 100 + parked}).to_string().len();
    drop(quiet);

    eprintln!("holding {HELD_OPEN} requests open, then deciding {DECISIONS} of them ...");
    let open = Instance::start(dir.path(), "open", &sqlite("open"), 0).await?;
    let (open_growth, one, answers) = held_open_and_decided(&http, &open, &open).await?;
    drop(open);

    let two = match std::env::var("AIRLOCK_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(server) => {
            eprintln!("the same across two instances on PostgreSQL ...");
            let url = fresh_schema(&server).await?;
            let a = Instance::start(dir.path(), "pg-a", &url, 0).await?;
            let b = Instance::start(dir.path(), "pg-b", &url, 0).await?;
            Some(held_open_and_decided(&http, &a, &b).await?.1)
        }
        None => None,
    };

    let per_call = parked_growth as f64 / parked as f64;
    let bound = 2.0 * argument_bytes as f64 + 4096.0;
    println!();
    println!(
        "Parked calls: a real `airlock serve` (SQLite unless said), resident memory from /proc"
    );
    println!();
    println!("| measure | this run | goal |\n|---|---|---|");
    println!(
        "| RSS growth with {parked} calls parked, no request open | {:.1} MiB | ≤ 64 MiB |",
        parked_growth as f64 / MIB
    );
    println!(
        "| per parked call ({argument_bytes} bytes of arguments) | {per_call:.0} bytes | ≤ {bound:.0} bytes |"
    );
    println!(
        "| Airlock's CPU time to park a call (store, audit, mail) | {:.0} µs | |",
        parking_cpu.as_secs_f64() * 1e6 / parked as f64
    );
    println!(
        "| RSS growth with {HELD_OPEN} requests held open | {:.1} MiB | ≤ 32 MiB |",
        open_growth as f64 / MIB
    );
    println!(
        "| decision → result at the agent, one instance | p50 {:.2} ms, p99 {:.2} ms | p99 ≤ 5 ms |",
        ms(quantile(&one, 0.5)),
        ms(quantile(&one, 0.99))
    );
    println!(
        "| of which the approval's own answer (`POST …/approve`) | p50 {:.2} ms, p99 {:.2} ms | |",
        ms(quantile(&answers, 0.5)),
        ms(quantile(&answers, 0.99))
    );
    match &two {
        Some(two) => println!(
            "| decision → result, two instances on PostgreSQL | p50 {:.2} ms, p99 {:.2} ms | p99 ≤ 50 ms |",
            ms(quantile(two, 0.5)),
            ms(quantile(two, 0.99))
        ),
        None => println!(
            "| decision → result, two instances on PostgreSQL | skipped: set AIRLOCK_TEST_POSTGRES | p99 ≤ 50 ms |"
        ),
    }
    Ok(())
}

/// Lets the store settle and Airlock hand freed memory back (every 10 s) before memory is read.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(12)).await;
}

/// One `airlock serve` under a policy that parks every call, with an agent and a reviewer.
struct Instance {
    airlock: Airlock,
    agent_token: String,
    reviewer_token: String,
}

impl Instance {
    /// `hold`: seconds a parked call's request is held (0: until decided).
    async fn start(dir: &Path, name: &str, database: &str, hold: u64) -> Fallible<Self> {
        let policy = dir.join("park.json");
        std::fs::write(
            &policy,
            r#"{"version": "1", "default": "require_approval"}"#,
        )?;
        let toml = format!(
            "[database]\nurl = \"{database}\"\n\
             [approval]\nhold = {hold}\npickup = 600\nmax_pending_per_agent = 100000\n\
             max_pending = 100000\n\
             [[upstream]]\nname = \"demo\"\ncommand = [\"{AIRLOCK}\", \"demo-upstream\"]\npolicy = \"{}\"\n",
            policy.display()
        );
        let airlock = Airlock::start(dir, name, &toml, OPEN_FILES).await?;
        let agent_token =
            Airlock::cli(dir, name, &["token", "create", "--agent", "bench"], "").await?;
        let email = format!("{name}@example.org");
        let password = "bench password that is long enough";
        // On a shared database the second instance finds the reviewer there already.
        let _ = Airlock::cli(
            dir,
            name,
            &[
                "user",
                "add",
                &email,
                "--role",
                "approver",
                "--password-stdin",
            ],
            password,
        )
        .await;
        let reviewer_token = Airlock::cli(dir, name, &["user", "token", &email], "").await?;
        Ok(Self {
            airlock,
            agent_token,
            reviewer_token,
        })
    }

    fn rss(&self) -> Fallible<u64> {
        self.airlock
            .process
            .rss()
            .ok_or_else(|| "cannot read the resident memory of airlock serve".into())
    }

    /// Parks the calls `numbers` (`concurrency` requests at a time), each answered once its
    /// hold passes.
    async fn park(
        &self,
        http: &reqwest::Client,
        numbers: std::ops::Range<usize>,
        concurrency: usize,
    ) -> Fallible<()> {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut calls = tokio::task::JoinSet::new();
        for n in numbers {
            let permit = gate.clone().acquire_owned().await?;
            let (http, caller) = (http.clone(), self.caller());
            calls.spawn(async move {
                let answer = caller.call(&http, n).await;
                drop(permit);
                answer
            });
        }
        while let Some(done) = calls.join_next().await {
            let answer = done??;
            if !answer.contains("Waiting for approval") {
                return Err(format!("a parked call was answered otherwise: {answer}").into());
            }
        }
        Ok(())
    }

    /// The agent's side, for tasks that make calls.
    fn caller(&self) -> Caller {
        Caller {
            url: self.airlock.url.clone(),
            agent_token: self.agent_token.clone(),
        }
    }

    /// The calls waiting for a decision: call id by the `limit` they were made with.
    async fn pending(&self, http: &reqwest::Client) -> Fallible<HashMap<u64, String>> {
        let mut found = HashMap::new();
        let mut before: Option<String> = None;
        loop {
            let mut url = format!("{}/api/v1/calls?status=pending&limit=500", self.airlock.url);
            if let Some(cursor) = &before {
                url.push_str(&format!("&before={cursor}"));
            }
            let page: Value = http
                .get(url)
                .bearer_auth(&self.reviewer_token)
                .send()
                .await?
                .json()
                .await?;
            let calls = page["calls"].as_array().cloned().unwrap_or_default();
            for call in &calls {
                if let (Some(n), Some(id)) = (
                    call.pointer("/arguments/limit").and_then(Value::as_u64),
                    call["id"].as_str(),
                ) {
                    found.insert(n, id.to_owned());
                }
            }
            before = calls
                .last()
                .and_then(|c| c["id"].as_str())
                .map(str::to_owned);
            if calls.len() < 500 {
                return Ok(found);
            }
        }
    }

    async fn approve(&self, http: &reqwest::Client, id: &str) -> Fallible<()> {
        let response = http
            .post(format!("{}/api/v1/calls/{id}/approve", self.airlock.url))
            .bearer_auth(&self.reviewer_token)
            .json(&json!({"reason": "bench"}))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("approving {id}: HTTP {}", response.status()).into());
        }
        Ok(())
    }
}

/// An agent's side of an instance, for tasks.
struct Caller {
    url: String,
    agent_token: String,
}

impl Caller {
    /// A call of `get_chats {"limit": n}` (a 2026-07-28 POST); its answer's body.
    async fn call(&self, http: &reqwest::Client, n: usize) -> Fallible<String> {
        let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "get_chats", "arguments": {"limit": n},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}});
        let response = http
            .post(format!("{}/mcp/demo", self.url))
            .bearer_auth(&self.agent_token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "get_chats")
            .json(&body)
            .send()
            .await?;
        Ok(response.text().await?)
    }
}

/// Holds [`HELD_OPEN`] requests open on `agents` (whose hold is 0: until decided) and returns
/// the memory they added; then approves [`DECISIONS`] of them one at a time on `reviewers` and
/// returns the time from each approval to its result at the agent, and to the approval's own
/// answer (the reviewer's `POST`, which returns once the decision is committed).
async fn held_open_and_decided(
    http: &reqwest::Client,
    agents: &Instance,
    reviewers: &Instance,
) -> Fallible<(u64, Vec<Duration>, Vec<Duration>)> {
    settle().await;
    let before = agents.rss()?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant, bool)>();
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..HELD_OPEN {
        let (http, caller, done) = (http.clone(), agents.caller(), done_tx.clone());
        requests.spawn(async move {
            let answer = caller.call(&http, n).await;
            let ran = answer
                .as_ref()
                .is_ok_and(|a| a.contains("\"result\"") && !a.contains("Waiting for approval"));
            let _ = done.send((n, Instant::now(), ran));
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let pending = loop {
        let pending = reviewers.pending(http).await?;
        if pending.len() >= HELD_OPEN {
            break pending;
        }
        if Instant::now() > deadline {
            return Err(format!("only {} of {HELD_OPEN} calls parked", pending.len()).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    settle().await;
    let growth = agents.rss()?.saturating_sub(before);

    let mut latencies = Vec::with_capacity(DECISIONS);
    let mut answers = Vec::with_capacity(DECISIONS);
    for n in 0..DECISIONS {
        let id = pending
            .get(&(n as u64))
            .ok_or_else(|| format!("call {n} is not among the pending"))?;
        let sent = Instant::now();
        reviewers.approve(http, id).await?;
        answers.push(sent.elapsed());
        let (answered, at, ran) = tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
            .await
            .map_err(|_| format!("call {n} got no result within 30 s of its approval"))?
            .ok_or("the agents stopped")?;
        if answered != n || !ran {
            return Err(format!("approving call {n} answered call {answered} (ran: {ran})").into());
        }
        latencies.push(at.duration_since(sent));
    }
    requests.abort_all();
    Ok((growth, latencies, answers))
}

/// A URL of `server` (PostgreSQL) on a schema of its own.
async fn fresh_schema(server: &str) -> Fallible<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("airlock_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(server).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut admin)
        .await?;
    let mut url = url::Url::parse(server)?;
    url.query_pairs_mut()
        .append_pair("options[search_path]", &name);
    Ok(url.to_string())
}
