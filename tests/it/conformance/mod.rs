//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned and
//! installed by `.ci/run` with Node 22 into `AIRLOCK_CONFORMANCE_DIR`) run against the fixture
//! server in [`fixture`], directly and through Airlock (allow-all policy), with the same flags;
//! Airlock reaches the fixture both ways an upstream can be reached: over Streamable HTTP, and
//! as a stdio child (the same fixture as a program, `examples/conformance_fixture.rs`, with
//! `isolation = "session"`). A check that passes directly and fails through Airlock fails the
//! test, unless `tests/data/conformance-gaps.txt` lists it with its reason (and a listed gap
//! whose check passes through Airlock fails it too, so the list stays true).

mod fixture;
mod fixture_mrtr;
mod fixture_tools;
mod forwarder;
mod input_rounds;
mod passthrough;
mod results;

use std::path::{Path, PathBuf};

use crate::common::{self, Setup, TestApp};
use results::{Gap, Results};

const GAPS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/conformance-gaps.txt"
);

/// Where `.ci/run` installs the suite: `node_modules/.bin/node` (Node 22) and the suite's CLI.
struct Suite {
    node: PathBuf,
    cli: PathBuf,
}

fn suite() -> Option<Suite> {
    let dir = std::env::var_os("AIRLOCK_CONFORMANCE_DIR").map(PathBuf::from);
    let found = dir.map(|dir| Suite {
        node: dir.join("node_modules/.bin/node"),
        cli: dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"),
    });
    let here = found
        .as_ref()
        .is_some_and(|suite| suite.node.exists() && suite.cli.exists());
    common::outside_tool_available(
        "the MCP conformance suite and Node 22 (AIRLOCK_CONFORMANCE_DIR)",
        here,
    )
    .then_some(found)
    .flatten()
}

impl Suite {
    /// Runs the suite's server scenarios selected by `flags` against `url`, results into `out`.
    async fn run(&self, url: &str, flags: &[&str], out: &Path) -> Results {
        let output = tokio::process::Command::new(&self.node)
            .arg(&self.cli)
            .arg("server")
            .args(["--url", url])
            .args(flags)
            .arg("-o")
            .arg(out)
            .kill_on_drop(true)
            .output()
            .await
            .expect("the conformance suite starts");
        // The suite exits non-zero when any check fails; the checks are what count here.
        let results = Results::read(out);
        assert!(
            !results.is_empty(),
            "the suite wrote no checks for {flags:?} against {url}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        results
    }
}

/// The fixture directly and Airlock in front of it (as an HTTP upstream, and as a stdio one),
/// behind a forwarder that adds the agent's bearer token (the suite sends none).
struct Targets {
    direct: String,
    through_airlock: String,
    through_airlock_stdio: String,
    _app: TestApp,
    _dir: tempfile::TempDir,
    _fixture: tokio::task::JoinHandle<()>,
    _forwarder: tokio::task::JoinHandle<()>,
}

/// `fixture` served on a port of its own: its address, and the task serving it.
async fn spawn_fixture(
    fixture: fixture::Fixture,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the fixture");
    let addr = listener.local_addr().expect("the fixture's address");
    (addr, tokio::spawn(fixture::serve(listener, fixture)))
}

/// An allow-all policy.
const ALLOW_ALL: &str = r#"{"version":"1","default":"allow"}"#;

/// Airlock with the fixture at `fixture` as its upstream `conformance`, under `policy` (written
/// in `dir`), and `more` upstreams under the same policy; `server_toml` goes into its `[server]`
/// section.
async fn airlock_before(
    fixture: std::net::SocketAddr,
    dir: &tempfile::TempDir,
    policy: &str,
    server_toml: String,
    more: Vec<airlock::config::UpstreamConfig>,
) -> TestApp {
    let policy_file = dir.path().join("conformance.json");
    std::fs::write(&policy_file, policy).expect("policy");
    let mut upstreams = vec![common::http_upstream(
        "conformance",
        format!("http://{fixture}/mcp"),
        policy_file.clone(),
    )];
    upstreams.extend(
        more.into_iter()
            .map(|upstream| airlock::config::UpstreamConfig {
                policy: Some(policy_file.clone()),
                ..upstream
            }),
    );
    TestApp::spawn_with(Setup {
        upstreams,
        extra_toml: server_toml,
        ..Setup::default()
    })
    .await
}

/// The fixture as a program (`examples/conformance_fixture.rs`), which `cargo test` and
/// `cargo nextest run` build beside the test binary (`target/<profile>/examples/`).
fn fixture_program() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let program = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("examples/conformance_fixture"))
        .expect("the test binary is in target/<profile>/deps");
    assert!(
        program.exists(),
        "{} is missing: run the tests with `cargo test` or `cargo nextest run`, which build the \
         examples",
        program.display()
    );
    program
}

/// The fixture program as Airlock's stdio upstream `name` (a child per session), speaking no
/// revision after 2025-11-25 when `handshake_only`.
fn stdio_fixture(name: &str, handshake_only: bool) -> airlock::config::UpstreamConfig {
    let mut command = vec![fixture_program().display().to_string()];
    if handshake_only {
        command.push("--handshake-only".to_owned());
    }
    airlock::config::UpstreamConfig {
        name: name.to_owned(),
        command: Some(command),
        env: Default::default(),
        url: None,
        headers: Default::default(),
        policy: None,
        isolation: Some(airlock::config::Isolation::Session),
        new_tools: Default::default(),
    }
}

async fn targets() -> Targets {
    let (fixture_addr, fixture) = spawn_fixture(fixture::Fixture::default()).await;
    let front = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the forwarder");
    let front_addr = front.local_addr().expect("the forwarder's address");
    let dir = tempfile::tempdir().expect("tmp");
    // The suite's requests reach Airlock with the forwarder's Host.
    let hosts = format!(
        "allowed_hosts = [\"127.0.0.1:{port}\", \"localhost:{port}\"]\n",
        port = front_addr.port()
    );
    let app = airlock_before(
        fixture_addr,
        &dir,
        ALLOW_ALL,
        hosts,
        vec![stdio_fixture("conformance-stdio", false)],
    )
    .await;
    let forwarder = tokio::spawn(forwarder::serve(
        front,
        format!("http://{}", app.addr),
        app.token.clone(),
    ));
    Targets {
        direct: format!("http://{fixture_addr}/mcp"),
        through_airlock: format!("http://{front_addr}/mcp/conformance"),
        through_airlock_stdio: format!("http://{front_addr}/mcp/conformance-stdio"),
        _app: app,
        _dir: dir,
        _fixture: fixture,
        _forwarder: forwarder,
    }
}

/// Runs `flags` directly and through Airlock (to the fixture over HTTP, and as a stdio child) and
/// fails on any check that passes only directly and is not a listed gap, or on a listed gap
/// whose check passed through Airlock in this run.
async fn compare(run: &str, flags: &[&str]) {
    let Some(suite) = suite() else { return };
    let targets = targets().await;
    // `AIRLOCK_CONFORMANCE_OUT=DIR` keeps the suite's results (DIR/RUN/{direct,airlock,...}).
    let out = tempfile::tempdir().expect("tmp");
    let base = std::env::var_os("AIRLOCK_CONFORMANCE_OUT").map_or_else(
        || out.path().to_owned(),
        |kept| PathBuf::from(kept).join(run),
    );
    let outs = ["direct", "airlock", "airlock-stdio"].map(|name| base.join(name));
    let (direct, through, through_stdio) = tokio::join!(
        suite.run(&targets.direct, flags, &outs[0]),
        suite.run(&targets.through_airlock, flags, &outs[1]),
        suite.run(&targets.through_airlock_stdio, flags, &outs[2]),
    );
    eprintln!(
        "conformance {run}: direct {} passed of {}, through Airlock {} of {}, through Airlock \
         to a stdio child {} of {}",
        direct.passed(),
        direct.len(),
        through.passed(),
        through.len(),
        through_stdio.passed(),
        through_stdio.len()
    );
    let listed = Gap::listed(GAPS);
    let mut complaints = String::new();
    for (link, through) in [("http", &through), ("stdio", &through_stdio)] {
        let found = direct.lost_through(through, link);
        let unlisted: Vec<&Gap> = found.iter().filter(|gap| !listed.contains(gap)).collect();
        let listed: Vec<&Gap> = listed.iter().filter(|gap| gap.link == link).collect();
        // A listed gap is stale once its check ran in this run and passed through Airlock.
        let stale: Vec<&Gap> = listed
            .into_iter()
            .filter(|gap| through.holds(gap))
            .collect();
        if !unlisted.is_empty() || !stale.is_empty() {
            complaints.push_str(&format!(
                "\nthrough Airlock to the fixture over {link}: checks that pass directly and fail \
                 through Airlock, not listed in tests/data/conformance-gaps.txt:\n{}\nlisted \
                 there but passing now (remove them):\n{}",
                Gap::lines(&unlisted, through),
                Gap::lines(&stale, through)
            ));
        }
    }
    assert!(complaints.is_empty(), "conformance {run}:{complaints}");
}

#[tokio::test]
async fn the_default_suite_passes_through_airlock_wherever_it_passes_directly() {
    compare("default", &[]).await;
}

#[tokio::test]
async fn every_server_scenario_passes_through_airlock_wherever_it_passes_directly() {
    compare("all", &["--suite", "all"]).await;
}

#[tokio::test]
async fn the_2025_11_25_scenarios_pass_through_airlock_wherever_they_pass_directly() {
    compare("spec-2025-11-25", &["--spec-version", "2025-11-25"]).await;
}

#[tokio::test]
async fn the_2026_07_28_scenarios_pass_through_airlock_wherever_they_pass_directly() {
    compare("spec-2026-07-28", &["--spec-version", "2026-07-28"]).await;
}

#[tokio::test]
async fn the_2025_11_25_requirements_pass_through_airlock_wherever_they_pass_directly() {
    compare("requirements-2025-11-25", &["--requirements", "2025-11-25"]).await;
}

#[tokio::test]
async fn the_2026_07_28_requirements_pass_through_airlock_wherever_they_pass_directly() {
    compare("requirements-2026-07-28", &["--requirements", "2026-07-28"]).await;
}
