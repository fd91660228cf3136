//! The call log: the demo upstream's own record of what reached it, one JSON object per line, so
//! tests (and curious humans) can prove what an upstream behind the gateway actually saw.
//!
//! Invariant: the line for a `tools/call` is on disk before the tool runs, so a tool the log does
//! not show never ran. Several processes may share one file (a gateway may spawn a child per
//! agent); each entry is written with a single `write` on a file opened for appending, which keeps
//! lines whole, and every entry carries the writer's pid.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::Path,
    sync::{Mutex, PoisonError},
};

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub(super) struct CallLog {
    file: Option<Mutex<File>>,
    pid: u32,
}

impl CallLog {
    /// Opens (creating if needed) the log at `path`; with no path every method is a no-op.
    pub(super) fn open(path: Option<&Path>) -> io::Result<Self> {
        let file = path
            .map(|path| OpenOptions::new().create(true).append(true).open(path))
            .transpose()?;
        Ok(Self {
            file: file.map(Mutex::new),
            pid: std::process::id(),
        })
    }

    /// Announces the process, so a test can learn the pid of a child it may want to kill.
    pub(super) fn started(&self) -> io::Result<()> {
        self.append(json!({"pid": self.pid, "event": "started", "at": now_rfc3339()}))
    }

    /// A call of `tool`, and the protocol revision it came in (`null` if none was negotiated).
    pub(super) fn tool_call(
        &self,
        tool: &str,
        arguments: Option<&serde_json::Map<String, Value>>,
        revision: Option<&str>,
    ) -> io::Result<()> {
        // Absent arguments stay `null` rather than `{}`: the log shows what arrived, not a
        // normalised version of it.
        self.append(json!({
            "pid": self.pid,
            "tool": tool,
            "arguments": arguments,
            "revision": revision,
            "at": now_rfc3339(),
        }))
    }

    pub(super) fn cancelled(&self, tool: &str) -> io::Result<()> {
        self.append(json!({
            "pid": self.pid,
            "tool": tool,
            "event": "cancelled",
            "at": now_rfc3339(),
        }))
    }

    fn append(&self, entry: Value) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut line = entry.to_string();
        line.push('\n');
        // A panic elsewhere while holding the lock cannot leave a half-written line behind (the
        // line is written in one call), so a poisoned lock is still safe to use.
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(line.as_bytes())?;
        file.flush()
    }
}

/// The current UTC time in RFC 3339.
pub(super) fn now_rfc3339() -> String {
    // Formatting fails only for years outside 0000-9999, which a UTC clock reading never is; the
    // epoch keeps the field well-formed should that ever change.
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}
