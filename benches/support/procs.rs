//! The processes a bench starts (the real `airlock serve`, upstreams, other proxies) and how to
//! wait for them; included by the benches that run separate processes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The `airlock` binary under test (built with the bench, in its profile).
pub const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

/// A child process, killed when this is dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `command`; the process, and its standard output when that was piped.
    pub fn spawn(command: &mut Command) -> Fallible<(Self, Option<tokio::process::ChildStdout>)> {
        let mut child = command.kill_on_drop(true).spawn()?;
        let stdout = child.stdout.take();
        Ok((Self { child }, stdout))
    }

    /// CPU time it has used so far (user and system, from `/proc`), when that can be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?;
        // Fields 14 and 15 (utime, stime, in clock ticks of 1/100 s), after the `(comm)` field.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    /// Its resident memory (`VmRSS` in `/proc`), in bytes.
    pub fn rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

/// A free port on loopback (taken and let go: a moment's race with other programs).
pub fn free_port() -> Fallible<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `url` answers with a success status, for at most 30 s.
pub async fn wait_until_up(url: &str) -> Fallible<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{url} did not answer within 30 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running `airlock serve` and where it listens.
pub struct Airlock {
    pub url: String,
    pub process: Process,
}

impl Airlock {
    /// `airlock serve` with `toml` as its config (written to `dir/NAME.toml`; `[server] listen`
    /// and `public_url` are added), its log in `dir/NAME.log`, and `ulimit -n` raised to
    /// `open_files` (the shell's `ulimit`, then `exec`).
    pub async fn start(dir: &Path, name: &str, toml: &str, open_files: u32) -> Fallible<Self> {
        let port = free_port()?;
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
                 max_connections_per_client = {open_files}\nmax_connections = {open_files}\n{toml}"
            ),
        )?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let (process, _) = Process::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "ulimit -n {open_files} 2>/dev/null; exec \"$0\" serve --config \"$1\""
                ))
                .arg(AIRLOCK)
                .arg(&config)
                .env("AIRLOCK_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        wait_until_up(&format!("{url}/readyz")).await?;
        Ok(Self { url, process })
    }

    /// Runs `airlock ARGS --config dir/NAME.toml` (a CLI command on the same database); its
    /// standard output.
    pub async fn cli(dir: &Path, name: &str, args: &[&str], stdin: &str) -> Fallible<String> {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new(AIRLOCK)
            .args(args)
            .arg("--config")
            .arg(dir.join(format!("{name}.toml")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await?;
        }
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            return Err(format!("airlock {args:?} failed ({})", output.status).into());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile (0.5: the median) of `sample`, nearest rank.
pub fn quantile(sample: &[Duration], q: f64) -> Duration {
    let mut sorted = sample.to_vec();
    sorted.sort_unstable();
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}
