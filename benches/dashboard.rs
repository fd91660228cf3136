//! The dashboard at a million calls (issue 19, goal 6): the queue and history pages of a real
//! `airlock serve`, signed in as a reviewer, on a SQLite file holding `AIRLOCK_BENCH_CALLS` calls
//! (default 1,000,000), next to the same pages on a file holding 1% of them, both servers running
//! in the same run; and the memory the history export adds while it streams every call.
//!
//! Run it with `cargo bench --bench dashboard`. The files are filled by one SQL statement each
//! (about 700 MB at the default size, in a temporary folder removed afterwards): calls spread over
//! the last 92 days, ids UUIDv7 of their creation time as Airlock makes them, a thousand pending
//! at the top, the rest completed, rejected or expired, one in ten with "quarterly" in their
//! arguments, one in a hundred also approved by a second reviewer. Each page is fetched
//! [`REPEAT`] times, pages and servers interleaved so a burst of load elsewhere hits them all;
//! p50 and p99 are printed with the ratio to the small file. The export's figure is the growth
//! of the server's resident memory (`VmRSS`, read every few milliseconds) over what it held
//! before, next to the bytes it sent. Figures are reported next to the goals, never asserted.

#[path = "support/procs.rs"]
mod procs;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use procs::{Airlock, Fallible, ms, quantile};
use sqlx::Connection;

const DEFAULT_CALLS: u64 = 1_000_000;
/// Calls waiting for a decision, the newest ones.
const PENDING: u64 = 1_000;
/// Days the calls are spread over, ending now.
const DAYS: u64 = 92;
/// Fetches of each page on each server.
const REPEAT: usize = 60;
const EMAIL: &str = "ann@example.org";
const PASSWORD: &str = "bench password that is long enough";
const MIB: f64 = 1024.0 * 1024.0;

fn main() -> std::process::ExitCode {
    support::run("dashboard", run())
}

async fn run() -> Fallible<()> {
    let calls = std::env::var("AIRLOCK_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CALLS);
    let small_calls = (calls / 100).max(PENDING * 2);
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let small = Server::start(dir.path(), "small", small_calls).await?;
    let big = Server::start(dir.path(), "big", calls).await?;
    println!(
        "{calls} + {small_calls} calls written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let pages = [
        ("queue, first page", Page::Queue(None)),
        ("queue, sixth page", Page::Queue(Some(PENDING / 2))),
        ("history, first page", Page::History(String::new(), None)),
        ("history, 90% deep", Page::History(String::new(), Some(9))),
        (
            "agent, 90% deep",
            Page::History("agent=ci-bot".into(), Some(9)),
        ),
        (
            "status rejected",
            Page::History("status=rejected".into(), None),
        ),
        (
            "tool and status",
            Page::History("tool=export_session&status=expired".into(), None),
        ),
        ("text, common", Page::History("q=quarterly".into(), None)),
        (
            "text, no match",
            Page::History("q=no-such-words".into(), None),
        ),
        (
            "second reviewer",
            Page::History("reviewer=bob@example.org".into(), None),
        ),
        ("one day, a month ago", Page::History(a_day_ago(30), None)),
    ];
    let mut times = vec![[Vec::new(), Vec::new()]; pages.len()];
    let cpu_before = [small.cpu_time()?, big.cpu_time()?];
    for _ in 0..REPEAT {
        for (n, (_, page)) in pages.iter().enumerate() {
            for (s, server) in [&small, &big].into_iter().enumerate() {
                times[n][s].push(server.fetch(page).await?);
            }
        }
    }
    println!(
        "\n| page | p50 at {calls} | p99 at {calls} | p99 vs {small_calls} calls |\n|---|---|---|---|"
    );
    let mut worst = Duration::ZERO;
    for ((name, _), [small_times, big_times]) in pages.iter().zip(&times) {
        let p99 = quantile(big_times, 0.99);
        worst = worst.max(p99);
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2}× |",
            ms(quantile(big_times, 0.5)),
            ms(p99),
            ms(p99) / ms(quantile(small_times, 0.99)).max(0.001)
        );
    }
    let fetches = (REPEAT * pages.len()) as f64;
    println!(
        "\nAirlock's CPU per page, all pages: {:.2} ms at {calls} calls, {:.2} ms at {small_calls}",
        ms(big.cpu_time()? - cpu_before[1]) / fetches,
        ms(small.cpu_time()? - cpu_before[0]) / fetches,
    );
    println!(
        "Goal 6: page p99 at {calls} calls ≤ 20 ms: worst page {:.2} ms",
        ms(worst)
    );

    let (small_growth, small_bytes) = small.export().await?;
    let (big_growth, big_bytes) = big.export().await?;
    println!(
        "Goal 6: history export flat in memory: {:.1} MB of {calls} calls streamed with {:.1} MiB \
         of memory added; {:.1} MB of {small_calls} calls with {:.1} MiB",
        big_bytes as f64 / 1e6,
        big_growth as f64 / MIB,
        small_bytes as f64 / 1e6,
        small_growth as f64 / MIB,
    );
    Ok(())
}

/// A history filter for one day, `days` days ago.
fn a_day_ago(days: i64) -> String {
    let day = time::OffsetDateTime::now_utc().date() - time::Duration::days(days);
    format!("since={day}&until={day}")
}

/// What is fetched: the queue or the history with a query string, optionally continuing after
/// the call at a depth (the pending call with that number, or that many tenths down the history).
enum Page {
    Queue(Option<u64>),
    History(String, Option<u64>),
}

/// A running `airlock serve` on its own file, with a reviewer signed in.
struct Server {
    airlock: Airlock,
    http: reqwest::Client,
    cookie: String,
    calls: u64,
    /// When the newest call was made (its id's milliseconds).
    newest_ms: u64,
}

impl Server {
    async fn start(dir: &Path, name: &str, calls: u64) -> Fallible<Self> {
        let database = dir.join(format!("{name}.db"));
        let url = format!("sqlite://{}", database.display());
        // The schema as Airlock makes it, then the calls.
        drop(airlock::store::Store::connect(&url).await?);
        let newest_ms = fill(&url, calls).await?;
        let airlock =
            Airlock::start(dir, name, &format!("[database]\nurl = \"{url}\"\n"), 1024).await?;
        Airlock::cli(
            dir,
            name,
            &[
                "user",
                "add",
                EMAIL,
                "--role",
                "approver",
                "--password-stdin",
            ],
            PASSWORD,
        )
        .await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let cookie = sign_in(&http, &airlock.url).await?;
        Ok(Self {
            airlock,
            http,
            cookie,
            calls,
            newest_ms,
        })
    }

    fn cpu_time(&self) -> Fallible<Duration> {
        Ok(self
            .airlock
            .process
            .cpu_time()
            .ok_or("cannot read the CPU time of airlock serve")?)
    }

    /// The id of the call `number` (0 is the oldest), as [`fill`] made it.
    fn id(&self, number: u64) -> String {
        let ms = self.newest_ms - (self.calls - 1 - number) * spacing_ms(self.calls);
        format!(
            "{:08x}-{:04x}-7000-8000-{number:012x}",
            ms >> 16,
            ms & 0xffff
        )
    }

    fn path(&self, page: &Page) -> String {
        match page {
            Page::Queue(None) => "/".to_owned(),
            Page::Queue(Some(nth)) => format!("/?before={}", self.id(self.calls - 1 - nth)),
            Page::History(query, depth) => {
                let before = depth
                    .map(|tenths| format!("&before={}", self.id(self.calls * (10 - tenths) / 10)))
                    .unwrap_or_default();
                format!("/history?{query}{before}")
            }
        }
    }

    /// Fetches `page` whole; how long that took.
    async fn fetch(&self, page: &Page) -> Fallible<Duration> {
        let path = self.path(page);
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.airlock.url))
            .header("cookie", &self.cookie)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let took = started.elapsed();
        if !status.is_success() || body.len() < 100 {
            return Err(format!("GET {path}: {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        Ok(took)
    }

    /// Downloads `/history/export`; the most resident memory it added, and the bytes sent.
    async fn export(&self) -> Fallible<(u64, u64)> {
        use futures_util::StreamExt;
        let rss = || {
            self.airlock
                .process
                .rss()
                .ok_or("cannot read the resident memory of airlock serve")
        };
        let before = rss()?;
        let mut peak = before;
        let mut bytes = 0;
        let mut last_sample = Instant::now();
        let mut body = self
            .http
            .get(format!("{}/history/export", self.airlock.url))
            .header("cookie", &self.cookie)
            .send()
            .await?
            .error_for_status()?
            .bytes_stream();
        while let Some(chunk) = body.next().await {
            bytes += chunk?.len() as u64;
            if last_sample.elapsed() > Duration::from_millis(5) {
                peak = peak.max(rss()?);
                last_sample = Instant::now();
            }
        }
        peak = peak.max(rss()?);
        Ok((peak - before, bytes))
    }
}

/// Milliseconds between two calls: `calls` spread over [`DAYS`].
fn spacing_ms(calls: u64) -> u64 {
    (DAYS * 86_400_000 / calls).max(1)
}

/// Fills the file at `url` with `calls` calls ending now; the newest call's milliseconds.
async fn fill(url: &str, calls: u64) -> Fallible<u64> {
    let newest_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let spacing = spacing_ms(calls);
    let mut db = sqlx::SqliteConnection::connect(url).await?;
    // One statement: call i was made `(calls - 1 - i) * spacing` ms before the newest; its id is
    // a UUIDv7 of that moment; a decided call was decided a minute after it was made.
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}), \
         c(i, ms, args) AS (SELECT i, {newest_ms} - ({last} - i) * {spacing}, \
             '{{\"chat_id\": ' || i || ', \"text\": \"' || \
             CASE WHEN i % 10 = 0 THEN 'quarterly report ' ELSE 'hello ' END || i || '\"}}' FROM n) \
         INSERT INTO tool_calls (id, upstream, tool, agent, agent_session, instance_id, args_json, \
             args_shown, args_sha256, rule_json, approvals_needed, status, created_at, expires_at, \
             decided_at, decided_by, attach_key) \
         SELECT printf('%08x-%04x-7000-8000-%012x', ms >> 16, ms & 65535, i), \
             CASE i % 4 WHEN 0 THEN 'telegram' WHEN 1 THEN 'github' WHEN 2 THEN 'slack' ELSE 'files' END, \
             CASE i % 5 WHEN 0 THEN 'send_message' WHEN 1 THEN 'export_session' ELSE 'delete_repo' END, \
             CASE i % 3 WHEN 0 THEN 'claude' WHEN 1 THEN 'ci-bot' ELSE 'cursor' END, \
             '0123456789abcdef', 'bench', args, args, printf('%064x', i), '{{}}', 1, \
             CASE WHEN i > {last} - {PENDING} THEN 'pending' WHEN i % 7 = 0 THEN 'rejected' \
                  WHEN i % 11 = 0 THEN 'expired' ELSE 'completed' END, \
             strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch'), \
             strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0 + 86400, 'unixepoch'), \
             CASE WHEN i > {last} - {PENDING} THEN NULL \
                  ELSE strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0 + 60, 'unixepoch') END, \
             CASE WHEN i > {last} - {PENDING} THEN NULL ELSE '{EMAIL}' END, \
             printf('%064x', i) \
         FROM c",
        last = calls - 1,
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(insert))
        .execute(&mut db)
        .await?;
    sqlx::raw_sql(
        "INSERT INTO call_approvals (call_id, reviewer, via, at) \
         SELECT id, 'bob@example.org', 'dashboard', decided_at FROM tool_calls \
         WHERE decided_at IS NOT NULL AND rowid % 100 = 0",
    )
    .execute(&mut db)
    .await?;
    sqlx::raw_sql("ANALYZE").execute(&mut db).await?;
    db.close().await?;
    Ok(newest_ms)
}

/// Signs in through the form as a browser does; the session cookie (`name=value`).
async fn sign_in(http: &reqwest::Client, base: &str) -> Fallible<String> {
    let form = http.get(format!("{base}/login")).send().await?;
    let first = cookies(form.headers());
    let html = form.text().await?;
    let csrf = html
        .split_once("name=\"csrf\" value=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(token, _)| token.to_owned())
        .ok_or("the sign-in form has no CSRF token")?;
    let answer = http
        .post(format!("{base}/login"))
        .header("cookie", &first)
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([
            ("csrf", csrf.as_str()),
            ("next", "/"),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])?)
        .send()
        .await?;
    let session = cookies(answer.headers());
    if !answer.status().is_redirection() || session.is_empty() {
        return Err(format!("signing in failed: {}", answer.status()).into());
    }
    Ok(session)
}

/// The cookies a response sets, as a `Cookie` header.
fn cookies(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .filter(|pair| !pair.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}
