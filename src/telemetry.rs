//! Logging: structured `tracing` events to stderr (stdout belongs to command output and, for
//! `demo-upstream`, to JSON-RPC). The filter comes from `AIRLOCK_LOG` (or `RUST_LOG`), default
//! `info`; `AIRLOCK_LOG_FORMAT=json` switches to one JSON object per line.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
