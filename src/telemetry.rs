//! Logging: structured `tracing` events to stderr (stdout belongs to command output and, for
//! `demo-upstream`, to JSON-RPC). The filter comes from `AIRLOCK_LOG` (or `RUST_LOG`), default
//! `info` (rmcp's own chatter at `warn`); `AIRLOCK_LOG_FORMAT=json` switches to one JSON object per
//! line. Colours only on a terminal: a stdio upstream's stderr lands in Airlock's log as text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str = "info,rmcp=warn";

pub fn init() {
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests calling in) is harmless: the first subscriber stays.
    let _ = if std::env::var("AIRLOCK_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// An error and its causes on one line: "cannot open database x: unable to open database file".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Logs the first of a run of failures as a warning and the rest quietly, then says when it
/// recovered: a database outage should be one line in the log, not two a second.
#[derive(Default)]
pub struct FailureLog {
    failing_since: Option<tokio::time::Instant>,
}

impl FailureLog {
    pub fn record<E: std::error::Error>(&mut self, what: &str, result: Result<(), E>) {
        match (result, self.failing_since) {
            (Ok(()), None) => {}
            (Ok(()), Some(since)) => {
                tracing::info!(
                    what,
                    after_secs = since.elapsed().as_secs(),
                    "working again"
                );
                self.failing_since = None;
            }
            (Err(e), None) => {
                tracing::warn!(what, error = %crate::telemetry::error_chain(&e), "failed; retrying (further failures are logged at debug level)");
                self.failing_since = Some(tokio::time::Instant::now());
            }
            (Err(e), Some(_)) => {
                tracing::debug!(what, error = %crate::telemetry::error_chain(&e), "still failing");
            }
        }
    }
}
