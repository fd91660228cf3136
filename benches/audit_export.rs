//! Whether `airlock audit export` streams: the peak memory (RSS) of the real binary exporting
//! `AIRLOCK_BENCH_EVENTS` audit events (default 1,000,000) from a SQLite file, next to the same
//! export of 1% of them, measured in the same run and printed as a ratio. A streaming export stays
//! near 1× however long the log; one that gathered the log in memory would grow with it (a million
//! events are about 500 MB of JSON).
//!
//! Run it with `cargo bench --bench audit_export`. It writes a temporary SQLite file (about 450 MB
//! at the default size: the chain is appended through the store, as Airlock does) and removes it.
//! The peak is the process's `VmHWM` (Linux), read every few milliseconds while it runs.

mod support;

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use airlock::store::{NewAuditEvent, Store};

/// Events appended per transaction while filling the log.
const BATCH: usize = 5000;

fn main() -> ExitCode {
    support::run("audit export", run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::var("AIRLOCK_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let small = (events / 100).max(1);
    let dir = tempfile::tempdir()?;
    let big_db = dir.path().join("big.db");
    let small_db = dir.path().join("small.db");
    let started = Instant::now();
    fill(&small_db, small).await?;
    fill(&big_db, events).await?;
    println!(
        "{events} + {small} audit events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (small_peak, small_time, small_bytes) = export(dir.path(), &small_db, "small")?;
    let (big_peak, big_time, big_bytes) = export(dir.path(), &big_db, "big")?;
    println!("export          events     output   peak RSS      time");
    for (name, n, peak, time, bytes) in [
        ("baseline", small, small_peak, small_time, small_bytes),
        ("full log", events, big_peak, big_time, big_bytes),
    ] {
        println!(
            "{name:<10} {n:>11} {:>7.1} MB {:>7.1} MB {:>7.2} s",
            bytes as f64 / 1e6,
            peak as f64 / 1024.0,
            time.as_secs_f64()
        );
    }
    println!(
        "peak RSS, full log / baseline: {:.2}x for {}x the events",
        big_peak as f64 / small_peak.max(1) as f64,
        events / small
    );
    Ok(())
}

/// A SQLite file at `path` whose audit log holds `n` chained events, like a busy gateway's.
async fn fill(path: &std::path::Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::connect(&format!("sqlite://{}", path.display())).await?;
    let at = airlock::domain::Timestamp::now().text();
    let digest = airlock::secrets::sha256_hex(b"{}");
    let details: Vec<String> = (0..BATCH)
        .map(|i| format!("result of {} bytes, SHA-256 {digest}, 3 ms", 100 + i))
        .collect();
    let mut written = 0;
    while written < n {
        let take = BATCH.min(n - written);
        let ids: Vec<String> = (0..take)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let batch: Vec<NewAuditEvent<'_>> = (0..take)
            .map(|i| NewAuditEvent {
                at: &at,
                kind: if i % 2 == 0 { "allowed" } else { "completed" },
                actor: if i % 2 == 0 { "agent:claude" } else { "system" },
                via: if i % 2 == 0 { "mcp" } else { "system" },
                upstream: Some("telegram"),
                tool: Some("get_chats"),
                call_id: Some(&ids[i - i % 2]),
                args_digest: Some(&digest),
                detail: (i % 2 == 1).then_some(details[i].as_str()),
            })
            .collect();
        store.audit_many(&batch).await?;
        written += take;
    }
    Ok(())
}

/// Runs `airlock audit export` on `db` with its output discarded; returns its peak RSS in KiB,
/// how long it took and how many bytes it wrote.
fn export(
    dir: &std::path::Path,
    db: &std::path::Path,
    name: &str,
) -> Result<(u64, Duration, u64), Box<dyn std::error::Error>> {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("[database]\nurl = \"sqlite://{}\"\n", db.display()),
    )?;
    let out = dir.join(format!("{name}.jsonl"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "export", "--format", "jsonl", "--config"])
        .arg(&config)
        .env("AIRLOCK_LOG", "warn")
        .stdout(std::fs::File::create(&out)?)
        .stderr(Stdio::null())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("the {name} export failed: {status}").into());
    }
    let bytes = std::fs::metadata(&out)?.len();
    std::fs::remove_file(&out)?;
    Ok((peak, elapsed, bytes))
}
