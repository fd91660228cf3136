//! What Airlock costs an agent: `tools/call get_chats` on the demo upstream, direct and through
//! Airlock, measured in the same run and printed as ratios (proxied / direct). Absolute times
//! depend on the machine and on whatever else it is doing; the ratios are the figures to compare
//! between commits.
//!
//! Run it with `cargo bench --bench proxy` (a release build). `AIRLOCK_BENCH_CALLS=N` scales the
//! run: N sequential calls per path (default 2000, after N/10 warm-up calls) and 2N calls per path
//! for throughput; the default run measures for well under a minute. Everything listens on
//! 127.0.0.1 port 0 and stops by itself; a run that hangs is abandoned after five minutes.
//!
//! The paths, all ending in the same demo server code:
//! - `direct HTTP`: an rmcp client to the demo upstream served over Streamable HTTP in this
//!   process. The baseline for everything reached over HTTP.
//! - `direct stdio`: an rmcp client to an `airlock demo-upstream` child over stdio. The baseline
//!   for the stdio upstream, since an agent without Airlock would run that child itself.
//! - `Airlock → HTTP`: an rmcp client to Airlock (in this process, temporary SQLite, bearer
//!   token), which forwards to the in-process HTTP demo upstream (one upstream session per agent
//!   session).
//! - `Airlock → stdio`: the same, with Airlock's own shared `airlock demo-upstream` child.
//! - `Airlock denied`: `delete_chat`, which the policy denies: Airlock answers without touching
//!   the upstream, so this is Airlock's own cost per request (HTTP, token check, session, policy)
//!   next to a whole allowed call on the direct path.
//! - `Airlock → Nagle HTTP`: Airlock to the same demo server served with `axum::serve`'s
//!   defaults, i.e. without `TCP_NODELAY`, as any upstream that does not set it. rmcp writes an
//!   SSE priming event and then the response; Nagle holds the second write until the first is
//!   acknowledged, and Airlock, which keeps its upstream connections alive, acknowledges late
//!   (Linux delayed ACK, up to 40 ms). rmcp's own client dodges this by opening a new connection
//!   per request. Measured on a twentieth of the calls, since each takes about 40 ms; it shows
//!   what such an upstream costs behind Airlock.
//!
//! What the figures mean:
//! - Sequential latency: one session, one call at a time. p50/p99/mean per path; the ratios divide
//!   by the baseline's figure of the same kind, and `+p50` is the time Airlock adds to a median
//!   call. Paths are measured in interleaved rounds, so a burst of load from elsewhere on the
//!   machine hits every path rather than one.
//! - Throughput: 16 sessions calling at once (for `direct stdio`, 16 tasks sharing the one child,
//!   which is how a stdio server is used). The ratio is proxied calls/s over direct calls/s, so
//!   below 1 is slower. Clients, Airlock and the HTTP demo upstream share this process's CPUs, so
//!   this measures CPU spent per call as much as waiting.
//! - rmcp's HTTP client opens a TCP connection for every request (see above), so every HTTP path
//!   includes a loopback connect per call on the agent's side.
//!
//! Reading a run: `Airlock → stdio` against `direct stdio` is mostly the price of the agent
//! speaking HTTP instead of a pipe (compare it with `Airlock denied`), not of Airlock's checks.
//! `Airlock denied` is Airlock's own cost per request. Looking the bearer token up in SQLite on
//! every request was 70-100 µs of it at p50 on a 2-CPU machine; verified tokens are now cached
//! for a second (`TokenCache`), which took `Airlock denied` from 0.94× to 0.73× of a direct call.

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::app::Application;
use airlock::config::{Config, UpstreamConfig};
use airlock::demo_upstream::{DemoOptions, DemoServer, serve_http_until};
use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
    TokioChildProcess,
};
use rmcp::{RoleClient, ServiceExt};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

type Fallible<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The `airlock` binary, whose `demo-upstream` subcommand is the stdio upstream.
const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");
const DEFAULT_CALLS: usize = 2000;
/// Concurrent sessions in the throughput test.
const CONCURRENCY: usize = 16;
/// Rounds the measurements are interleaved in.
const ROUNDS: usize = 5;
/// Paths that take about 40 ms a call make this many times fewer calls.
const SLOW_PATH_DIVISOR: usize = 20;
/// The most a run may take before it is abandoned as hung.
const RUN_LIMIT: Duration = Duration::from_secs(300);
const DENIED_TEXT: &str = "Denied by policy (http.delete_chat): never from an agent";

const POLICY: &str = r#"{
  "version": "1",
  "default": "deny",
  "tools": {
    "get_chats": {},
    "delete_chat": { "action": "deny", "reason": "never from an agent" }
  }
}"#;

fn main() -> ExitCode {
    let calls = match std::env::var("AIRLOCK_BENCH_CALLS") {
        Ok(n) => match n.parse::<usize>() {
            Ok(n) if n >= ROUNDS * CONCURRENCY => n,
            _ => {
                eprintln!(
                    "AIRLOCK_BENCH_CALLS must be a whole number of at least {}, not {n:?}",
                    ROUNDS * CONCURRENCY
                );
                return ExitCode::FAILURE;
            }
        },
        Err(_) => DEFAULT_CALLS,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::time::timeout(RUN_LIMIT, run(calls))
            .await
            .unwrap_or_else(|_| {
                Err(format!("not done after {} s; stopped", RUN_LIMIT.as_secs()).into())
            })
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {}", airlock::telemetry::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// One way of reaching the demo upstream's tools.
struct Route {
    label: &'static str,
    /// The tool called: `get_chats` must succeed, `delete_chat` must be denied by the policy.
    tool: &'static str,
    /// The route its ratios divide by (an index into the list), `None` for a baseline.
    baseline: Option<usize>,
    /// This route makes `1 / divisor` of the calls (1 for all).
    divisor: usize,
    /// One peer per concurrent worker; sessions of their own, except for direct stdio.
    peers: Vec<Peer<RoleClient>>,
    /// Kept to close the sessions at the end.
    clients: Vec<RunningService<RoleClient, ()>>,
}

/// What the measurements gave, by route.
struct Results {
    latencies: Vec<Vec<Duration>>,
    /// Wall time of the throughput bursts, and the calls they made.
    busy: Vec<Duration>,
    done: Vec<usize>,
    warm_up: usize,
    elapsed: Duration,
}

async fn run(calls: usize) -> Fallible<()> {
    let dir = tempfile::tempdir()?;
    let stop = CancellationToken::new();
    let demo_url = start_demo_http(&stop).await?;
    let nagle_url = start_demo_http_without_nodelay(&stop).await?;
    let airlock = start_airlock(dir.path(), &demo_url, &nagle_url).await?;

    eprintln!("connecting {CONCURRENCY} sessions per path ...");
    let agent = |upstream: &str| {
        let url = airlock.mcp_url(upstream);
        let token = airlock.token.clone();
        move || http_client(url.clone(), Some(token.clone()))
    };
    let mut routes = vec![
        Route::sessions("direct HTTP", "get_chats", None, || {
            http_client(demo_url.clone(), None)
        })
        .await?,
        Route::stdio_child("direct stdio").await?,
        Route::sessions("Airlock → HTTP", "get_chats", Some(0), agent("http")).await?,
        Route::sessions("Airlock → stdio", "get_chats", Some(1), agent("stdio")).await?,
        Route::sessions("Airlock denied", "delete_chat", Some(0), agent("http")).await?,
        Route::sessions("Airlock → Nagle HTTP", "get_chats", Some(0), agent("nagle"))
            .await?
            .one_call_in(SLOW_PATH_DIVISOR),
    ];

    let results = measure(&routes, calls).await?;
    print_report(&routes, &results, calls);

    for route in routes.drain(..) {
        route.close().await;
    }
    airlock.stop().await;
    stop.cancel();
    Ok(())
}

async fn measure(routes: &[Route], calls: usize) -> Fallible<Results> {
    let started = Instant::now();
    let warm_up = calls / 10;
    eprintln!("warming up ({warm_up} calls per path) ...");
    for route in routes {
        for _ in 0..(warm_up / route.divisor).max(1) {
            route.call(&route.peers[0]).await?;
        }
    }

    eprintln!("sequential latency ({calls} calls per path, {ROUNDS} interleaved rounds) ...");
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::with_capacity(calls); routes.len()];
    for round in 0..ROUNDS {
        for i in rotated(routes.len(), round) {
            let route = &routes[i];
            for _ in 0..(calls / ROUNDS / route.divisor).max(1) {
                let t = Instant::now();
                route.call(&route.peers[0]).await?;
                latencies[i].push(t.elapsed());
            }
        }
    }

    let total = 2 * calls;
    eprintln!("throughput ({total} calls per path, {CONCURRENCY} at a time) ...");
    let mut busy = vec![Duration::ZERO; routes.len()];
    let mut done = vec![0usize; routes.len()];
    for round in 0..ROUNDS {
        for i in rotated(routes.len(), round) {
            let per_worker = (total / ROUNDS / CONCURRENCY / routes[i].divisor).max(1);
            busy[i] += routes[i].burst(per_worker).await?;
            done[i] += per_worker * CONCURRENCY;
        }
    }
    Ok(Results {
        latencies,
        busy,
        done,
        warm_up,
        elapsed: started.elapsed(),
    })
}

/// `0..n` starting at `round % n`, so no path always goes first.
fn rotated(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n)
}

impl Route {
    /// `CONCURRENCY` sessions of their own.
    async fn sessions<F, Fut>(
        label: &'static str,
        tool: &'static str,
        baseline: Option<usize>,
        connect: F,
    ) -> Fallible<Self>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Fallible<RunningService<RoleClient, ()>>>,
    {
        let mut clients = Vec::with_capacity(CONCURRENCY);
        for _ in 0..CONCURRENCY {
            clients.push(connect().await?);
        }
        Ok(Self {
            label,
            tool,
            baseline,
            divisor: 1,
            peers: clients.iter().map(|c| c.peer().clone()).collect(),
            clients,
        })
    }

    /// One `airlock demo-upstream` child shared by every worker, as an agent would use it.
    async fn stdio_child(label: &'static str) -> Fallible<Self> {
        let mut command = tokio::process::Command::new(AIRLOCK);
        command.arg("demo-upstream").env("AIRLOCK_LOG", "warn");
        let client = ().serve(TokioChildProcess::new(command)?).await?;
        Ok(Self {
            label,
            tool: "get_chats",
            baseline: None,
            divisor: 1,
            peers: vec![client.peer().clone(); CONCURRENCY],
            clients: vec![client],
        })
    }

    /// Makes this route take part with `1 / divisor` of the calls.
    fn one_call_in(self, divisor: usize) -> Self {
        Self { divisor, ..self }
    }

    async fn call(&self, peer: &Peer<RoleClient>) -> Fallible<()> {
        checked_call(peer, self.label, self.tool).await
    }

    /// Every worker makes `per_worker` calls at once; returns the wall time from start to last.
    async fn burst(&self, per_worker: usize) -> Fallible<Duration> {
        let start = Arc::new(Barrier::new(CONCURRENCY + 1));
        let mut workers = tokio::task::JoinSet::new();
        for peer in &self.peers {
            let (peer, start) = (peer.clone(), start.clone());
            let (label, tool) = (self.label, self.tool);
            workers.spawn(async move {
                start.wait().await;
                for _ in 0..per_worker {
                    checked_call(&peer, label, tool).await?;
                }
                Ok::<_, Box<dyn Error + Send + Sync>>(())
            });
        }
        start.wait().await;
        let t = Instant::now();
        while let Some(joined) = workers.join_next().await {
            joined??;
        }
        Ok(t.elapsed())
    }

    async fn close(self) {
        drop(self.peers);
        for client in self.clients {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
        }
    }
}

/// One call, checked: timing wrong answers would be meaningless.
async fn checked_call(peer: &Peer<RoleClient>, label: &str, tool: &str) -> Fallible<()> {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(serde_json::Map::new());
    let result = peer.call_tool(params).await?;
    let is_error = result.is_error == Some(true);
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|c| c.text.as_str());
    match (tool, is_error) {
        ("get_chats", false) => Ok(()),
        ("delete_chat", true) if text == Some(DENIED_TEXT) => Ok(()),
        _ => Err(format!("{label}: unexpected answer to {tool}: {result:?}").into()),
    }
}

async fn http_client(
    url: String,
    token: Option<String>,
) -> Fallible<RunningService<RoleClient, ()>> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

/// The demo upstream over Streamable HTTP in this process, until `stop`; returns its URL.
async fn start_demo_http(stop: &CancellationToken) -> Fallible<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    tokio::spawn(serve_http_until(
        listener,
        DemoOptions::default(),
        stop.clone().cancelled_owned(),
    ));
    Ok(url)
}

/// The demo server with `axum::serve`'s defaults: Nagle's algorithm on.
async fn start_demo_http_without_nodelay(stop: &CancellationToken) -> Fallible<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let server = DemoServer::new(DemoOptions::default())?;
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    let service: StreamableHttpService<DemoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    let stop = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    Ok(url)
}

struct RunningAirlock {
    addr: std::net::SocketAddr,
    token: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningAirlock {
    fn mcp_url(&self, upstream: &str) -> String {
        format!("http://{}/mcp/{upstream}", self.addr)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
    }
}

/// Airlock with three upstreams under the same policy: `http` and `nagle` (the in-process demo
/// servers) and `stdio` (its own shared `airlock demo-upstream` child).
async fn start_airlock(dir: &Path, demo_url: &str, nagle_url: &str) -> Fallible<RunningAirlock> {
    let policy = dir.join("policy.json");
    std::fs::write(&policy, POLICY)?;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{}\"\n",
        dir.join("airlock.db").display()
    );
    let mut config = Config::from_toml(&toml, Some(&dir.join("airlock.toml")), std::iter::empty())?;
    let upstream = |name: &str| UpstreamConfig {
        name: name.to_owned(),
        command: None,
        env: Default::default(),
        url: None,
        headers: Default::default(),
        policy: Some(policy.clone()),
        isolation: None,
        new_tools: Default::default(),
    };
    config.upstreams.push(UpstreamConfig {
        url: Some(demo_url.to_owned()),
        ..upstream("http")
    });
    config.upstreams.push(UpstreamConfig {
        url: Some(nagle_url.to_owned()),
        ..upstream("nagle")
    });
    config.upstreams.push(UpstreamConfig {
        command: Some(vec![AIRLOCK.to_owned(), "demo-upstream".to_owned()]),
        env: [("AIRLOCK_LOG".to_owned(), "warn".to_owned())].into(),
        ..upstream("stdio")
    });
    let app = Application::build(config).await?;
    let token = airlock::secrets::generate_token()?;
    app.state()
        .store
        .add_agent_token("bench", &airlock::secrets::sha256_hex(token.as_bytes()))
        .await?;
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    Ok(RunningAirlock {
        addr,
        token,
        shutdown,
        server,
    })
}

/// p50, p99 and mean of a sample.
struct Summary {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Summary {
    fn of(sample: &[Duration]) -> Self {
        let mut sorted = sample.to_vec();
        sorted.sort_unstable();
        let at = |q: usize| sorted[(sorted.len() - 1) * q / 100];
        let total: Duration = sorted.iter().sum();
        Self {
            p50: at(50),
            p99: at(99),
            mean: total / u32::try_from(sorted.len()).unwrap_or(u32::MAX),
        }
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn times(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn print_report(routes: &[Route], results: &Results, calls: usize) {
    let summaries: Vec<Summary> = results.latencies.iter().map(|l| Summary::of(l)).collect();
    let rate = |i: usize| results.done[i] as f64 / results.busy[i].as_secs_f64();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!(
        "Airlock proxy overhead: tools/call on the demo upstream; {calls} sequential calls per \
         path after {} warm-up, then {} calls per path {CONCURRENCY} at a time (Nagle path: \
         1/{SLOW_PATH_DIVISOR} of that); {cpus} CPUs; {:.1} s",
        results.warm_up,
        2 * calls,
        results.elapsed.as_secs_f64()
    );
    println!();
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9} {:>8} {:>7}  baseline",
        "path", "p50", "p99", "mean", "p50 ×", "p99 ×", "+p50", "calls/s", "rate ×"
    );
    for (i, route) in routes.iter().enumerate() {
        let s = &summaries[i];
        let (r50, r99, added, rate_ratio, base) = match route.baseline {
            Some(b) => {
                let base = &summaries[b];
                (
                    times(s.p50.as_secs_f64(), base.p50.as_secs_f64()),
                    times(s.p99.as_secs_f64(), base.p99.as_secs_f64()),
                    format!(
                        "{:+.0} µs",
                        (s.p50.as_secs_f64() - base.p50.as_secs_f64()) * 1e6
                    ),
                    times(rate(i), rate(b)),
                    routes[b].label,
                )
            }
            None => (
                "1.00×".into(),
                "1.00×".into(),
                String::new(),
                "1.00×".into(),
                "(baseline)",
            ),
        };
        println!(
            "{:<20} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9} {:>8.0} {:>7}  {base}",
            route.label,
            us(s.p50),
            us(s.p99),
            us(s.mean),
            r50,
            r99,
            added,
            rate(i),
            rate_ratio
        );
    }
    println!();
    println!("Headline (proxied / direct, same run; latency above 1× and rate below 1× cost):");
    for (i, route) in routes.iter().enumerate() {
        let Some(b) = route.baseline else { continue };
        println!(
            "  {:<20} latency p50 {}, p99 {}, throughput {} of {}",
            route.label,
            times(
                summaries[i].p50.as_secs_f64(),
                summaries[b].p50.as_secs_f64()
            ),
            times(
                summaries[i].p99.as_secs_f64(),
                summaries[b].p99.as_secs_f64()
            ),
            times(rate(i), rate(b)),
            routes[b].label
        );
    }
}
