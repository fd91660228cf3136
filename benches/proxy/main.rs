//! What Airlock costs an agent's calls, side by side with the published Rust anchor: `tools/call
//! echo` to one upstream directly, through tower-mcp's `mcp-proxy` (no policy, no audit), and
//! through Airlock (an allow-all policy, audit on and off), measured in the same run and printed
//! as ratios against the direct figures (issue 19's table and goals).
//!
//! Run it with `cargo bench --bench proxy` (release builds). Separate processes share the
//! machine's CPUs, as in production: this bench (the agents: `load.rs`), the upstreams (this
//! binary again, `--role echo-http|echo-stdio`: `echo.rs`), `airlock serve` twice (audit on,
//! audit off) and `mcp-proxy`.
//!
//! - Upstreams: the echo server with `TCP_NODELAY` on its sockets, the same without it (axum's
//!   default, Nagle on), and over stdio (a child of Airlock's).
//! - Agents: rmcp Streamable HTTP sessions, 1 and 32 at once, each call with its own arguments.
//! - Cells run `AIRLOCK_BENCH_CALLS` calls each (default 1,000; a cell stops after 3 s, so a
//!   path that stalls makes fewer), in 5 rounds with the cells in a different order each round:
//!   a burst of load from elsewhere hits every path. A ratio is the median over the rounds of
//!   (calls/s through the proxy) / (calls/s direct, same round); `+p50` is the median latency
//!   added to a call.
//! - `mcp-proxy` 0.6.0 is installed into `AIRLOCK_BENCH_TOOLS` (default
//!   `/var/tmp/airlock-tools/mcp-proxy`) by `cargo install mcp-proxy --locked
//!   --no-default-features` the first time (a few minutes); if that fails its column says so.
//!
//! Goals (issue 19) are printed with the figures; the machine is shared and noisy, so they are
//! reported, never asserted.

mod echo;
mod load;
#[path = "../support/procs.rs"]
mod procs;
#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use load::{Agents, Run};
use procs::{Airlock, Fallible, Process, free_port, ms, quantile};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

const DEFAULT_CALLS: usize = 1000;
const ROUNDS: usize = 5;
/// The longest one cell runs in a round.
const CELL_CAP: Duration = Duration::from_secs(3);
const MCP_PROXY_VERSION: &str = "0.6.0";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    support::run("proxy", async {
        match role(&args) {
            Some("echo-http") => echo::serve_http(
                option(&args, "--listen").unwrap_or("127.0.0.1:0"),
                args.iter().any(|a| a == "--nodelay"),
            )
            .await
            .map_err(|e| e.to_string()),
            Some("echo-stdio") => echo::serve_stdio().await.map_err(|e| e.to_string()),
            Some(other) => Err(format!("no role {other:?}")),
            None => bench().await.map_err(|e| e.to_string()),
        }
    })
}

fn role(args: &[String]) -> Option<&str> {
    option(args, "--role")
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).map(String::as_str)
}

/// How the upstream is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Upstream {
    Nodelay,
    Nagle,
    Stdio,
}

impl Upstream {
    fn label(self) -> &'static str {
        match self {
            Self::Nodelay => "echo with TCP_NODELAY",
            Self::Nagle => "echo as axum serves by default",
            Self::Stdio => "echo over stdio",
        }
    }

    /// Its name as an upstream of Airlock's (and a backend of mcp-proxy's).
    fn name(self) -> &'static str {
        match self {
            Self::Nodelay => "nd",
            Self::Nagle => "nagle",
            Self::Stdio => "stdio",
        }
    }
}

/// Whom the agents talk to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Direct,
    McpProxy,
    Airlock,
    AirlockNoAudit,
}

/// One measured combination, and its runs.
struct Cell {
    path: Via,
    upstream: Upstream,
    concurrency: usize,
    agents: Agents,
    runs: Vec<Run>,
    /// Airlock's CPU time over each run, and the calls it made.
    cpu: Vec<(Duration, usize)>,
}

async fn bench() -> Fallible<()> {
    let calls = std::env::var("AIRLOCK_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CALLS);
    let dir = tempfile::tempdir()?;
    let me = std::env::current_exe()?;
    eprintln!("starting the upstreams, Airlock (twice) and mcp-proxy ...");
    let (nodelay, _nodelay_process) = echo_http(&me, true).await?;
    let (nagle, _nagle_process) = echo_http(&me, false).await?;
    let upstreams = [(Upstream::Nodelay, &nodelay), (Upstream::Nagle, &nagle)];
    let on = start_airlock(dir.path(), "audit-on", true, &me, &upstreams).await?;
    let off = start_airlock(dir.path(), "audit-off", false, &me, &upstreams).await?;
    let token_on = Airlock::cli(
        dir.path(),
        "audit-on",
        &["token", "create", "--agent", "bench"],
        "",
    )
    .await?;
    let token_off = Airlock::cli(
        dir.path(),
        "audit-off",
        &["token", "create", "--agent", "bench"],
        "",
    )
    .await?;
    let proxy = match start_mcp_proxy(dir.path(), &upstreams).await {
        Ok(proxy) => Some(proxy),
        Err(e) => {
            eprintln!("mcp-proxy column skipped: {e}");
            None
        }
    };

    eprintln!("connecting the agents ...");
    let mut cells = Vec::new();
    for concurrency in [1, 32] {
        for upstream in [Upstream::Nodelay, Upstream::Nagle, Upstream::Stdio] {
            let mut paths = vec![Via::Airlock, Via::AirlockNoAudit];
            if upstream != Upstream::Stdio {
                paths.insert(0, Via::Direct);
                if proxy.is_some() {
                    paths.insert(1, Via::McpProxy);
                }
            }
            for path in paths {
                let (url, token, tool) = match path {
                    Via::Direct => match upstream {
                        Upstream::Nagle => (format!("http://{nagle}/mcp"), None, "echo".to_owned()),
                        _ => (format!("http://{nodelay}/mcp"), None, "echo".to_owned()),
                    },
                    Via::McpProxy => (
                        proxy.as_ref().map(|p| p.url.clone()).unwrap_or_default(),
                        None,
                        format!("{}/echo", upstream.name()),
                    ),
                    Via::Airlock | Via::AirlockNoAudit => {
                        let (airlock, token) = if path == Via::Airlock {
                            (&on, &token_on)
                        } else {
                            (&off, &token_off)
                        };
                        (
                            format!("{}/mcp/{}", airlock.url, upstream.name()),
                            Some(token.as_str()),
                            "echo".to_owned(),
                        )
                    }
                };
                let agents = Agents::connect(&url, token, concurrency, &tool).await?;
                cells.push(Cell {
                    path,
                    upstream,
                    concurrency,
                    agents,
                    runs: Vec::new(),
                    cpu: Vec::new(),
                });
            }
        }
    }

    let started = Instant::now();
    for round in 0..ROUNDS {
        eprintln!(
            "round {} of {ROUNDS} ({} cells) ...",
            round + 1,
            cells.len()
        );
        let n = cells.len();
        for i in (0..n).map(|i| (i * 7 + round * 5) % n) {
            let cell = &mut cells[i];
            let airlock = match cell.path {
                Via::Airlock => Some(&on.process),
                Via::AirlockNoAudit => Some(&off.process),
                _ => None,
            };
            let before = airlock.and_then(procs::Process::cpu_time);
            let run = cell.agents.run(calls, CELL_CAP).await?;
            if let (Some(before), Some(after)) =
                (before, airlock.and_then(procs::Process::cpu_time))
            {
                cell.cpu.push((after.saturating_sub(before), run.calls));
            }
            cell.runs.push(run);
        }
    }
    report(&cells, calls, started.elapsed(), proxy.is_some());
    let mib = |airlock: &Airlock| airlock.process.rss().map_or(0.0, |b| b as f64 / 1048576.0);
    println!(
        "Airlock's resident memory after the run: {:.0} MiB (audit on), {:.0} MiB (audit off)",
        mib(&on),
        mib(&off)
    );
    for cell in cells {
        cell.agents.close().await;
    }
    Ok(())
}

/// The echo upstream over HTTP in a process of its own: its address.
async fn echo_http(me: &Path, nodelay: bool) -> Fallible<(String, Process)> {
    let mut command = Command::new(me);
    command.args(["--role", "echo-http", "--listen", "127.0.0.1:0"]);
    if nodelay {
        command.arg("--nodelay");
    }
    let (process, stdout) = Process::spawn(command.stdout(Stdio::piped()).stderr(Stdio::null()))?;
    let stdout = stdout.ok_or("no stdout")?;
    let addr = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .ok_or("the echo upstream printed no address")?;
    Ok((addr, process))
}

/// `airlock serve` with the upstreams and an allow-all policy, audit on or off.
async fn start_airlock(
    dir: &Path,
    name: &str,
    audit: bool,
    me: &Path,
    upstreams: &[(Upstream, &String)],
) -> Fallible<Airlock> {
    let policy = dir.join("allow.json");
    std::fs::write(&policy, r#"{"version": "1", "default": "allow"}"#)?;
    let mut toml = format!(
        "[database]\nurl = \"sqlite://{db}\"\n[audit]\nrecord_policy_decisions = {audit}\n",
        db = dir.join(format!("{name}.db")).display(),
    );
    for (upstream, addr) in upstreams {
        toml.push_str(&format!(
            "[[upstream]]\nname = \"{}\"\nurl = \"http://{addr}/mcp\"\npolicy = \"{}\"\n",
            upstream.name(),
            policy.display()
        ));
    }
    toml.push_str(&format!(
        "[[upstream]]\nname = \"stdio\"\ncommand = [\"{}\", \"--role\", \"echo-stdio\"]\npolicy = \"{}\"\n",
        me.display(),
        policy.display()
    ));
    Airlock::start(dir, name, &toml, 4096).await
}

/// A proxy listening for agents.
struct Running {
    url: String,
    _process: Process,
}

/// `mcp-proxy` (installed on first use) with the HTTP upstreams as backends.
async fn start_mcp_proxy(dir: &Path, upstreams: &[(Upstream, &String)]) -> Fallible<Running> {
    let binary = mcp_proxy_binary().await?;
    let port = free_port()?;
    let mut toml =
        format!("[proxy]\nname = \"bench\"\n[proxy.listen]\nhost = \"127.0.0.1\"\nport = {port}\n");
    for (upstream, addr) in upstreams {
        toml.push_str(&format!(
            "[[backends]]\nname = \"{}\"\ntransport = \"http\"\nurl = \"http://{addr}/mcp\"\n",
            upstream.name()
        ));
    }
    let config = dir.join("mcp-proxy.toml");
    std::fs::write(&config, toml)?;
    let (process, _) = Process::spawn(
        Command::new(binary)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("mcp-proxy did not listen within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Running {
        url,
        _process: process,
    })
}

/// The `mcp-proxy` binary in the tools folder, installed there first if it is not.
async fn mcp_proxy_binary() -> Fallible<PathBuf> {
    let root = std::env::var_os("AIRLOCK_BENCH_TOOLS").map_or_else(
        || PathBuf::from("/var/tmp/airlock-tools/mcp-proxy"),
        PathBuf::from,
    );
    let binary = root.join("bin/mcp-proxy");
    if binary.exists() {
        return Ok(binary);
    }
    eprintln!(
        "installing mcp-proxy {MCP_PROXY_VERSION} into {} (once; a few minutes) ...",
        root.display()
    );
    let status = Command::new("cargo")
        .args(["install", "mcp-proxy", "--version", MCP_PROXY_VERSION])
        .args(["--locked", "--no-default-features", "--root"])
        .arg(&root)
        .env("CARGO_TARGET_DIR", root.join("build"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    if status.success() && binary.exists() {
        Ok(binary)
    } else {
        Err(format!("cargo install mcp-proxy failed ({status})").into())
    }
}

/// One cell's figures over its runs.
struct Figures {
    rate: f64,
    p50: Duration,
}

impl Cell {
    fn figures(&self) -> Figures {
        let calls: usize = self.runs.iter().map(|r| r.calls).sum();
        let time: f64 = self.runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        let latencies: Vec<Duration> = self
            .runs
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        Figures {
            rate: calls as f64 / time,
            p50: quantile(&latencies, 0.5),
        }
    }
}

/// The median over rounds of this cell's rate over `base`'s (same round).
fn ratio(cell: &Cell, base: &Cell) -> f64 {
    let mut ratios: Vec<f64> = cell
        .runs
        .iter()
        .zip(&base.runs)
        .map(|(a, b)| a.rate() / b.rate())
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(0.0)
}

fn find(cells: &[Cell], path: Via, upstream: Upstream, concurrency: usize) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.path == path && c.upstream == upstream && c.concurrency == concurrency)
}

fn us(d: Duration) -> f64 {
    ms(d) * 1e3
}

fn report(cells: &[Cell], calls: usize, elapsed: Duration, with_proxy: bool) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!(
        "Proxy overhead: tools/call echo, {calls} calls a cell in {ROUNDS} interleaved rounds; \
         {cpus} CPUs shared by the agents, the upstream and the proxy; {:.0} s",
        elapsed.as_secs_f64()
    );
    println!();
    println!(
        "| upstream | concurrency | direct | mcp-proxy | Airlock | Airlock, audit off |\n|---|---|---|---|---|---|"
    );
    for upstream in [Upstream::Nodelay, Upstream::Nagle, Upstream::Stdio] {
        for concurrency in [1, 32] {
            // Stdio is compared with the same client talking HTTP to the same server directly.
            let base_upstream = if upstream == Upstream::Stdio {
                Upstream::Nodelay
            } else {
                upstream
            };
            let Some(base) = find(cells, Via::Direct, base_upstream, concurrency) else {
                continue;
            };
            let b = base.figures();
            let direct = if upstream == Upstream::Stdio {
                "(HTTP row above)".to_owned()
            } else if concurrency == 1 {
                format!("{:.0} req/s, p50 {:.0} µs", b.rate, us(b.p50))
            } else {
                format!("{:.0} req/s", b.rate)
            };
            let column = |path: Via| match find(cells, path, upstream, concurrency) {
                None if path == Via::McpProxy && !with_proxy => "not installed".to_owned(),
                None => "-".to_owned(),
                Some(cell) if concurrency == 1 => format!(
                    "{:.2}×, {:+.0} µs",
                    ratio(cell, base),
                    us(cell.figures().p50) - us(b.p50)
                ),
                Some(cell) => format!("{:.2}×", ratio(cell, base)),
            };
            println!(
                "| {} | {concurrency} | {direct} | {} | {} | {} |",
                upstream.label(),
                column(Via::McpProxy),
                column(Via::Airlock),
                column(Via::AirlockNoAudit)
            );
        }
    }
    println!();
    println!("Airlock's own CPU time per call (all its threads, user and system):");
    for cell in cells.iter().filter(|c| !c.cpu.is_empty()) {
        let (time, calls) = cell
            .cpu
            .iter()
            .fold((Duration::ZERO, 0), |(t, n), (dt, dn)| (t + *dt, n + dn));
        println!(
            "  {:<32} c={:<3} {:<18} {:.0} µs",
            cell.upstream.label(),
            cell.concurrency,
            if cell.path == Via::Airlock {
                "audit on"
            } else {
                "audit off"
            },
            us(time) / calls.max(1) as f64
        );
    }
    goals(cells);
}

/// Issue 19's goals, each with this run's figure.
fn goals(cells: &[Cell]) {
    let r = |path, upstream, c| {
        let base_upstream = if upstream == Upstream::Stdio {
            Upstream::Nodelay
        } else {
            upstream
        };
        match (
            find(cells, path, upstream, c),
            find(cells, Via::Direct, base_upstream, c),
        ) {
            (Some(cell), Some(base)) => ratio(cell, base),
            _ => f64::NAN,
        }
    };
    let mark = |ok: bool| if ok { "met" } else { "not met" };
    println!();
    println!("Goals (this run):");
    let (c1, c32) = (
        r(Via::Airlock, Upstream::Nodelay, 1),
        r(Via::Airlock, Upstream::Nodelay, 32),
    );
    let added = match (
        find(cells, Via::Airlock, Upstream::Nodelay, 1),
        find(cells, Via::Direct, Upstream::Nodelay, 1),
    ) {
        (Some(a), Some(d)) => us(a.figures().p50) - us(d.figures().p50),
        _ => f64::NAN,
    };
    println!(
        "1. allowed calls, audit on, TCP_NODELAY upstream: {c1:.2}× at c=1, {c32:.2}× at c=32 \
         (≥ 0.70), p50 {added:+.0} µs at c=1 (≤ 150): {}",
        mark(c1 >= 0.70 && c32 >= 0.70 && added <= 150.0)
    );
    let (n1, n32) = (
        r(Via::Airlock, Upstream::Nagle, 1),
        r(Via::Airlock, Upstream::Nagle, 32),
    );
    println!(
        "2. no Nagle floor: {n1:.2}× / {n32:.2}× without TCP_NODELAY against {c1:.2}× / \
         {c32:.2}× with it (within 0.05): {}",
        mark((n1 - c1).abs() <= 0.05 && (n32 - c32).abs() <= 0.05)
    );
    let (s1, s32) = (
        r(Via::Airlock, Upstream::Stdio, 1),
        r(Via::Airlock, Upstream::Stdio, 32),
    );
    println!(
        "3. stdio upstream: {s1:.2}× at c=1, {s32:.2}× at c=32 of the same client over HTTP \
         directly (≥ 0.5): {}",
        mark(s1 >= 0.5 && s32 >= 0.5)
    );
    let audit = |c| match (
        find(cells, Via::Airlock, Upstream::Nodelay, c),
        find(cells, Via::AirlockNoAudit, Upstream::Nodelay, c),
    ) {
        (Some(on), Some(off)) => 1.0 - ratio(on, off),
        _ => f64::NAN,
    };
    let (a1, a32) = (audit(1), audit(32));
    println!(
        "4. the audit log costs {:.0}% of throughput at c=1, {:.0}% at c=32 (≤ 10%): {}",
        a1 * 100.0,
        a32 * 100.0,
        mark(a1 <= 0.10 && a32 <= 0.10)
    );
}
