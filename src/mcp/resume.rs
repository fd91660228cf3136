//! Resumable parked streams (handshake era, 2025-11-25). The SSE stream of a request waiting for
//! a parked call starts with a priming event (an event id, empty data, `retry`), and every event
//! carries an id (`STREAM:N`). When the stream is cut while the call waits, only that request's
//! wait ends (the call stays); a `GET` in the same session with `Last-Event-ID` joins the call
//! again as that request and delivers its result on the new stream (events missed in between,
//! progress only, are not replayed). The TypeScript SDK reconnects this way on its own.
//!
//! A session remembers its last [`REMEMBERED`] parked streams, by the SHA-256 of their ids.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::forward::CallContext;
use super::parked::{self, ParkedCall};
use super::reply::Reply;
use super::session::Session;
use crate::app::AppState;
use crate::domain::{CallId, ToolName};
use crate::jsonrpc;

/// Parked streams a session can resume.
const REMEMBERED: usize = 64;
/// How long a client is asked to wait before reconnecting a cut stream.
pub const RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What a cut stream was carrying.
#[derive(Clone)]
pub enum Resumable {
    /// A request waiting for a parked call.
    Parked(Waiting),
    /// A forwarded call's messages ([`super::relay`]).
    Relayed(Arc<super::relay::Relay>),
}

/// What a cut parked stream was waiting for.
#[derive(Clone)]
pub struct Waiting {
    pub call: CallId,
    /// The agent's `tools/call` request (its arguments are read back from the store when the
    /// call is released).
    pub msg: Value,
    pub tool: ToolName,
    /// The task whose `tasks/result` the stream was (it then waits without a hold).
    pub task: Option<String>,
}

/// The parked streams of one session.
#[derive(Default)]
pub struct ResumableStreams(Mutex<VecDeque<(String, Resumable)>>);

impl ResumableStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Resumable)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a new stream; returns its id.
    pub fn remember(&self, waiting: Resumable) -> Option<String> {
        let id = crate::secrets::generate_session_id().ok()?;
        self.keep(&id, waiting);
        Some(id)
    }

    /// Remembers the stream `id`.
    pub fn keep(&self, id: &str, waiting: Resumable) {
        let mut streams = self.lock();
        if streams.len() == REMEMBERED {
            streams.pop_front();
        }
        streams.push_back((digest(id), waiting));
    }

    /// Forgets the stream `id` (it has delivered all it had).
    pub fn forget(&self, id: &str) {
        let digest = digest(id);
        self.lock().retain(|(known, _)| *known != digest);
    }

    fn find(&self, id: &str) -> Option<Resumable> {
        let digest = digest(id);
        self.lock()
            .iter()
            .find(|(known, _)| *known == digest)
            .map(|(_, waiting)| waiting.clone())
    }
}

fn digest(id: &str) -> String {
    crate::secrets::sha256_hex(id.as_bytes())
}

/// The id of event `n` of stream `stream`.
pub fn event_id(stream: &str, n: u64) -> String {
    format!("{stream}:{n}")
}

/// `STREAM:N` read back from a `Last-Event-ID`.
fn read_event_id(text: &str) -> Option<(&str, u64)> {
    let (stream, n) = text.rsplit_once(':')?;
    Some((stream, n.parse().ok()?))
}

/// The stream that resumes the stream `last_event_id` names, in `session`; `None` when the
/// session has no such stream (the caller opens the session's plain GET stream).
pub async fn resume(app: &AppState, session: &Arc<Session>, last_event_id: &str) -> Option<Reply> {
    let (stream, n) = read_event_id(last_event_id)?;
    let waiting = match session.streams.find(stream)? {
        Resumable::Parked(waiting) => waiting,
        Resumable::Relayed(relay) => {
            tracing::info!(session = %session.id, "a forwarded call's stream resumed");
            let (streams, id) = (session.streams.clone(), stream.to_owned());
            let events = relay.follow(n, move || streams.forget(&id));
            return Some(Reply::Events(super::reply::Events::new(
                stream.to_owned(),
                false,
                events,
                super::reply::FORWARDED_KEEP_ALIVE,
            )));
        }
    };
    let row = match app.store.call(&waiting.call).await {
        Ok(Some(row)) => row,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read a parked call to resume");
            let id = waiting.msg.get("id").cloned().unwrap_or(Value::Null);
            return Some(Reply::One(jsonrpc::error_response(
                id,
                jsonrpc::INTERNAL_ERROR,
                "the approval queue cannot be read right now; reconnect again",
            )));
        }
    };
    tracing::info!(session = %session.id, call = %row.id, "a parked stream resumed");
    let id = waiting.msg.get("id").cloned().unwrap_or(Value::Null);
    // The cut stream's own wait may not have noticed yet (a half-open connection): it ends now,
    // so the result goes to this stream.
    app.approvals
        .end_request(&session.id, &jsonrpc::id_key(&id));
    let hold = waiting.task.is_none();
    let parked = app
        .approvals
        .join_call(&row, &session.id, jsonrpc::id_key(&id), hold);
    let call = ParkedCall {
        app: app.clone(),
        ctx: CallContext::of_session(session),
        msg: waiting.msg,
        tool: waiting.tool,
        task: waiting.task,
    };
    Some(parked::stream_events(
        call,
        parked,
        Some((stream.to_owned(), n.saturating_add(1))),
    ))
}
