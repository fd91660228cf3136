//! A stdio upstream: a supervised child process speaking newline-delimited JSON-RPC.
//!
//! The supervisor spawns the child, runs the handshake (or, for a child kept for 2026-07-28
//! clients, `server/discover`), and waits for it to exit; then it fails the
//! calls in flight (their agents get a clear error), waits with exponential backoff, and starts it
//! again. The child's stderr goes into Airlock's log (secret-looking words masked), one line per
//! event, never to the agent.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use super::UpstreamError;
use futures_util::future::BoxFuture;

use super::link::{HANDSHAKE_TIMEOUT, LinkState, Shared, Wire};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that stayed up this long is healthy again: the next crash restarts it quickly.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// Lines longer than this from a child are refused rather than buffered without bound.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// The way into the child's stdin, present while a child is running. Lines go through a channel
/// to one writer task: a caller that is cancelled mid-send (its agent hung up) can never leave half
/// a line in the pipe, which would corrupt every message after it. The channel is bounded, so a
/// child that stops reading holds senders back instead of filling memory.
#[derive(Default)]
pub(super) struct StdioWire {
    lines: std::sync::Mutex<Option<mpsc::Sender<Vec<u8>>>>,
}

/// Lines that may wait for a child that is slow to read its stdin.
const STDIN_QUEUE: usize = 256;

/// How to start the child.
pub(super) struct ChildSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub redactor: Arc<crate::redact::Redactor>,
}

impl StdioWire {
    async fn send_line(&self, shared: &Shared, msg: &Value) -> Result<(), UpstreamError> {
        let mut line = serde_json::to_vec(msg).map_err(|e| shared.unavailable(e.to_string()))?;
        line.push(b'\n');
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // `Sender::send` is cancel-safe: a line is queued whole or not at all.
        match lines {
            Some(tx) if tx.send(line).await.is_ok() => Ok(()),
            _ => Err(shared.unavailable("not running".to_owned())),
        }
    }

    fn set(&self, lines: Option<mpsc::Sender<Vec<u8>>>) {
        *self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lines;
    }
}

/// The child's stdin, as the link sends through it.
impl Wire for Arc<StdioWire> {
    fn send<'a>(
        &'a self,
        link: &'a Arc<Shared>,
        msg: &'a Value,
        _related: Option<u64>,
    ) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(self.send_line(link, msg))
    }
}

/// Writes queued lines to the child until the queue closes or the pipe breaks.
async fn write_stdin(
    upstream: Arc<str>,
    mut stdin: ChildStdin,
    mut lines: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(line) = lines.recv().await {
        let written = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(%upstream, error = %e, "cannot write to the child");
            return;
        }
    }
}

/// Keeps the child running until the connection is stopped.
pub(super) async fn supervise(shared: Arc<Shared>, wire: Arc<StdioWire>, spec: ChildSpec) {
    let mut backoff = FIRST_BACKOFF;
    while !shared.stop.is_cancelled() {
        shared.set_state(LinkState::Starting);
        let started = Instant::now();
        let cause = run_once(&shared, &wire, &spec).await;
        shared.fail_all(&cause);
        if shared.stop.is_cancelled() {
            break;
        }
        if shared.refused_revision() {
            // Asked for 2026-07-28 and answered without it: no restart will change that.
            tracing::debug!(upstream = %shared.upstream, %cause, "not a 2026-07-28 server");
            shared.set_state(LinkState::Down(cause));
            return;
        }
        if started.elapsed() > HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(upstream = %shared.upstream, %cause, retry_in_ms = backoff.as_millis() as u64, "upstream down");
        shared.set_state(LinkState::Down(cause));
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    shared.set_state(LinkState::Stopped);
}

/// Runs one child from spawn to exit; returns why it is gone.
async fn run_once(shared: &Arc<Shared>, wire: &StdioWire, spec: &ChildSpec) -> String {
    let mut child = match spawn(spec) {
        Ok(child) => child,
        Err(e) => return format!("cannot start {:?}: {e}", spec.argv[0]),
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return "child has no stdio pipes".to_owned();
    };
    let (lines, queued) = mpsc::channel(STDIN_QUEUE);
    wire.set(Some(lines));
    tokio::spawn(write_stdin(shared.upstream.clone(), stdin, queued));
    // The reader ends at EOF, on a read error or an oversized line; then the child is of no use
    // even if it is still running, so its end is watched like the child's exit.
    let (reader_ended, mut reader_done) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn({
        let shared = shared.clone();
        async move {
            read_stdout(shared, stdout).await;
            let _ = reader_ended.send(());
        }
    });
    tokio::spawn(log_stderr(
        shared.upstream.clone(),
        stderr,
        spec.redactor.clone(),
    ));
    tracing::info!(upstream = %shared.upstream, pid = child.id(), "upstream child started");

    let cause = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, shared.handshake()) => match handshake {
            Ok(Ok(_)) => {
                tracing::info!(upstream = %shared.upstream, "upstream initialized");
                tokio::select! {
                    status = child.wait() => exit_cause(status),
                    _ = &mut reader_done => {
                        match tokio::time::timeout(Duration::from_millis(200), child.wait()).await {
                            Ok(status) => exit_cause(status),
                            Err(_) => "its stdout closed or carried an unreadable message".to_owned(),
                        }
                    }
                    () = shared.stop.cancelled() => "stopped".to_owned(),
                }
            }
            Ok(Err(e)) => format!("handshake failed: {e}"),
            Err(_) => format!("no answer to its opening request within {} s", HANDSHAKE_TIMEOUT.as_secs()),
        },
        status = child.wait() => exit_cause(status),
        _ = &mut reader_done => "its stdout closed during the handshake".to_owned(),
        () = shared.stop.cancelled() => "stopped".to_owned(),
    };
    wire.set(None);
    let _ = child.start_kill();
    let _ = child.wait().await;
    // Let the reader hand over what the child wrote before it died (its last answers).
    let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
    cause
}

fn spawn(spec: &ChildSpec) -> std::io::Result<Child> {
    let mut command = Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .envs(&spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn()
}

fn exit_cause(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!("process exited ({status})"),
        Err(e) => format!("cannot wait for the process: {e}"),
    }
}

async fn read_stdout(shared: Arc<Shared>, stdout: ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) => return,
            Ok(_) if line.last() != Some(&b'\n') && line.len() >= MAX_LINE_BYTES => {
                tracing::error!(upstream = %shared.upstream, "a message over {MAX_LINE_BYTES} bytes; closing the pipe");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(upstream = %shared.upstream, error = %e, "reading the child's stdout failed");
                return;
            }
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Value>(text) {
            Ok(msg) => shared.on_inbound(msg, None),
            Err(e) => tracing::warn!(
                upstream = %shared.upstream,
                error = %e,
                "the child wrote a line that is not JSON-RPC to stdout; ignored"
            ),
        }
    }
}

async fn log_stderr(
    upstream: Arc<str>,
    stderr: tokio::process::ChildStderr,
    redactor: Arc<crate::redact::Redactor>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = redactor.redact_text(&line);
        tracing::info!(target: "airlock::upstream::stderr", upstream = %upstream, "{line}");
    }
}
