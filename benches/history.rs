//! What a deep page of the dashboard's history costs next to the first: the store's `history`
//! query on a SQLite file holding `AIRLOCK_BENCH_ROWS` calls (default 100,000), measured in the
//! same run and printed as ratios (deep page / first page). Keyset pages (`id < last shown`) should
//! stay near 1×, however deep; an OFFSET page would grow with the depth.
//!
//! Run it with `cargo bench --bench history`. It writes a temporary SQLite file (about 40 MB at the
//! default size) and removes it; each query is repeated and the median taken, pages interleaved so
//! a burst of load elsewhere hits them all.
//!
//! The queries, each 50 rows newest first like the page:
//! - `first page`: no filter (the baseline);
//! - `deep page`: no filter, starting 90% of the way down;
//! - `agent, deep`: one agent's calls (a third of them), 90% of the way down;
//! - `text in arguments`: a substring that a tenth of the calls contain, first page.

mod support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use airlock::domain::{
    AgentName, ArgsDigest, AttachKey, CallId, Timestamp, ToolName, UpstreamName,
};
use airlock::store::{CallFilter, NewCall, Store};

const PAGE: u32 = 50;
/// Repetitions of each query; the median is reported.
const REPEAT: usize = 31;

fn main() -> ExitCode {
    support::run("history", run())
}

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

async fn run() -> Fallible<()> {
    let rows: usize = std::env::var("AIRLOCK_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(rows);
    let now = Timestamp::now();
    let (upstream, tool) = (UpstreamName::new("telegram"), ToolName::new("send_message"));
    let agents = ["claude", "ci-bot", "cursor"].map(AgentName::new);
    for i in 0..rows {
        let id = CallId::generate();
        let args = if i % 10 == 0 {
            format!("{{\"chat_id\": {i}, \"text\": \"quarterly report {i}\"}}")
        } else {
            format!("{{\"chat_id\": {i}, \"text\": \"hello {i}\"}}")
        };
        let digest = ArgsDigest::of(&serde_json::from_str(&args)?);
        store
            .insert_call(
                &NewCall {
                    id: &id,
                    upstream: &upstream,
                    tool: &tool,
                    agent: &agents[i % 3],
                    agent_session: "0123456789abcdef",
                    instance_id: "bench",
                    args_json: &args,
                    args_shown: &args,
                    args_sha256: &digest,
                    attach_key: &AttachKey::new(&agents[i % 3], "bench", &upstream, &tool, &digest),
                    rule_json: "{}",
                    approvals_needed: 1,
                    created_at: now,
                    expires_at: now,
                },
                &[],
                None,
            )
            .await?;
        ids.push(id);
    }
    println!(
        "{rows} calls written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Newest first: the deep page starts after the call 90% of the way down the list.
    let deep_before = ids[rows / 10].clone();
    let all = CallFilter::default();
    let agent = CallFilter {
        agent: Some("ci-bot".to_owned()),
        ..CallFilter::default()
    };
    let text = CallFilter {
        text: Some("quarterly".to_owned()),
        ..CallFilter::default()
    };
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    for _ in 0..REPEAT {
        times[0].push(timed(store.history(&all, None, PAGE)).await?);
        times[1].push(timed(store.history(&all, Some(&deep_before), PAGE)).await?);
        times[2].push(timed(store.history(&agent, Some(&deep_before), PAGE)).await?);
        times[3].push(timed(store.history(&text, None, PAGE)).await?);
    }
    let names = [
        "first page",
        "deep page",
        "agent, deep",
        "text in arguments",
    ];
    let medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    println!(
        "\n{:<24} {:>12} {:>10}",
        "query (50 rows)", "median", "vs first"
    );
    for (name, median) in names.iter().zip(&medians) {
        println!(
            "{name:<24} {:>9.3} ms {:>9.2}×",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() / medians[0].as_secs_f64()
        );
    }
    Ok(())
}

async fn timed<T, E: std::error::Error + 'static>(
    query: impl std::future::Future<Output = Result<T, E>>,
) -> Fallible<Duration> {
    let t = Instant::now();
    query
        .await
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
    Ok(t.elapsed())
}
