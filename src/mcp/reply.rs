//! What the MCP core answers ([`Reply`]), and how it becomes HTTP at the edge: an SSE stream
//! (related notifications and server requests first, then the response, then the end) or, for
//! clients that only accept JSON, one JSON body.
//!
//! A forwarded request ends in [`Forwarded`], so that is where its outcome is counted, its
//! rate-limit slot given back if the upstream failed, and (for 2026-07-28 clients) a closed stream
//! becomes a cancellation upstream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;

use super::session::InFlight;
use super::tools_call::Quota;
use super::trail::Trail;
use crate::domain::ToolName;
use crate::jsonrpc;
use crate::metrics::{Metrics, Outcome};
use crate::upstream::{Connection, Inbound, ReplyRx};

/// What a message sent to `/mcp` is answered with, before it is HTTP.
pub enum Reply {
    /// Taken; nothing to say (202).
    Accepted,
    /// One JSON-RPC message.
    One(Value),
    /// Messages as they come: related ones, then the final response (a message without a
    /// `method`). A stream that ends without one was cancelled.
    Stream(Messages),
    /// The numbered events of a resumable stream ([`super::relay`]), for an SSE answer.
    Events(Events),
}

/// A resumable stream's events: its id, whether it starts with a priming event, and its
/// messages with their event numbers.
pub struct Events {
    stream: String,
    priming: bool,
    events: BoxStream<'static, (u64, Value)>,
    keep_alive: Duration,
}

impl Events {
    pub fn new(
        stream: String,
        priming: bool,
        events: BoxStream<'static, (u64, Value)>,
        keep_alive: Duration,
    ) -> Self {
        Self {
            stream,
            priming,
            events,
            keep_alive,
        }
    }

    /// The final message; `None` when the stream ended without one.
    pub async fn last(mut self) -> Option<Value> {
        while let Some((_, msg)) = self.events.next().await {
            if msg.get("method").is_none() {
                return Some(msg);
            }
        }
        None
    }
}

/// A reply's messages in order.
pub struct Messages {
    stream: BoxStream<'static, Value>,
    /// Where related messages go when the answer is one JSON body and cannot carry them.
    overflow: Option<mpsc::Sender<Value>>,
    keep_alive: Duration,
    /// SSE event ids (`STREAM:N`) for a resumable stream, and the number of its first event:
    /// 0 starts with a priming event (an id, empty data, `retry`).
    event_ids: Option<(String, u64)>,
}

impl Messages {
    pub fn new(
        stream: impl Stream<Item = Value> + Send + 'static,
        overflow: Option<mpsc::Sender<Value>>,
        keep_alive: Duration,
    ) -> Self {
        Self {
            stream: stream.boxed(),
            overflow,
            keep_alive,
            event_ids: None,
        }
    }

    /// The messages as events of the resumable stream `stream`, numbered from `first`.
    pub fn with_event_ids(mut self, stream: String, first: u64) -> Self {
        self.event_ids = Some((stream, first));
        self
    }

    /// Whether the messages already go out as events of a resumable stream.
    pub fn has_event_ids(&self) -> bool {
        self.event_ids.is_some()
    }

    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// The messages themselves, for whoever relays them.
    pub fn into_stream(self) -> BoxStream<'static, Value> {
        self.stream
    }

    /// The final message, related ones going to the session's stream; `None` when there was none.
    pub async fn last(mut self) -> Option<Value> {
        while let Some(msg) = self.stream.next().await {
            if msg.get("method").is_none() {
                return Some(msg);
            }
            if let Some(overflow) = &self.overflow
                && overflow.try_send(msg).is_err()
            {
                tracing::warn!("session queue full; dropping a server message");
            }
        }
        None
    }
}

impl Reply {
    /// The HTTP response, in the form the client asked for.
    pub async fn respond(self, as_sse: bool) -> Response {
        match self {
            Self::Accepted => StatusCode::ACCEPTED.into_response(),
            Self::One(msg) => single(msg, as_sse),
            Self::Events(events) if as_sse => {
                let frames = resumable_frames(events.events, events.stream, events.priming);
                sse(frames, events.keep_alive).await
            }
            Self::Events(events) => match events.last().await {
                Some(msg) => Json(msg).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            },
            Self::Stream(messages) if as_sse => {
                let keep_alive = messages.keep_alive;
                let frames = match messages.event_ids {
                    Some((id, first)) => {
                        let numbered = messages
                            .stream
                            .zip(futures_util::stream::iter(first.max(1)..=u64::MAX))
                            .map(|(msg, n)| (n, msg))
                            .boxed();
                        resumable_frames(numbered, id, first == 0)
                    }
                    None => messages.stream.map(|msg| event_frame(None, &msg)).boxed(),
                };
                sse(frames, keep_alive).await
            }
            Self::Stream(messages) => match messages.last().await {
                Some(msg) => Json(msg).into_response(),
                // The call was cancelled: there is no answer to give.
                None => StatusCode::NO_CONTENT.into_response(),
            },
        }
    }
}

/// How long a 2026-07-28 answer waits for its first message before it commits to HTTP 200.
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(1);

impl Reply {
    /// The HTTP response to a 2026-07-28 request: like [`Reply::respond`], except that an
    /// answer that is at once (within a second, before anything else) one of the errors that
    /// revision sends with HTTP 400 (a client capability the request did not declare, a header
    /// mismatch, an unsupported version) gets that status instead of a 200 stream.
    pub async fn respond_stateless(self, as_sse: bool) -> Response {
        let Self::Stream(mut messages) = self else {
            return self.respond(as_sse).await;
        };
        match tokio::time::timeout(FIRST_MESSAGE_WAIT, messages.stream.next()).await {
            Ok(Some(first)) if first.get("method").is_none() && is_bad_request(&first) => {
                (StatusCode::BAD_REQUEST, Json(first)).into_response()
            }
            Ok(Some(first)) => {
                messages.stream = futures_util::stream::once(std::future::ready(first))
                    .chain(messages.stream)
                    .boxed();
                Self::Stream(messages).respond(as_sse).await
            }
            // Nothing yet (or a cancelled call's empty stream): as it comes.
            Ok(None) | Err(_) => Self::Stream(messages).respond(as_sse).await,
        }
    }
}

fn is_bad_request(msg: &Value) -> bool {
    crate::jsonrpc::pointer(msg, "/error/code")
        .and_then(Value::as_i64)
        .is_some_and(|code| crate::protocol::BAD_REQUEST_ERRORS.contains(&code))
}

/// A resumable stream's events as SSE frames, framed here rather than by axum: its priming
/// event needs an empty `data:` line (`id`, `retry`, `data:`), which clients (the TypeScript
/// SDK) dispatch and read the id of, where an event without any data line is dropped unseen.
fn resumable_frames(
    events: BoxStream<'static, (u64, Value)>,
    id: String,
    priming: bool,
) -> BoxStream<'static, bytes::Bytes> {
    use futures_util::stream;
    let priming = priming.then(|| {
        bytes::Bytes::from(format!(
            "id: {}\nretry: {}\ndata:\n\n",
            super::resume::event_id(&id, 0),
            super::resume::RETRY.as_millis()
        ))
    });
    let numbered =
        events.map(move |(n, msg)| event_frame(Some(&super::resume::event_id(&id, n)), &msg));
    stream::iter(priming).chain(numbered).boxed()
}

/// One message as an SSE event (with its id, on a resumable stream). Compact JSON never holds
/// a line break, so one `data:` line carries it.
fn event_frame(id: Option<&str>, msg: &Value) -> bytes::Bytes {
    let mut frame = Vec::with_capacity(128);
    frame.extend_from_slice(b"event: message\n");
    if let Some(id) = id {
        frame.extend_from_slice(b"id: ");
        frame.extend_from_slice(id.as_bytes());
        frame.push(b'\n');
    }
    frame.extend_from_slice(b"data: ");
    write_json(&mut frame, msg);
    frame.extend_from_slice(b"\n\n");
    bytes::Bytes::from(frame)
}

/// How long an SSE answer gathers its frames before it streams them: an answer complete by
/// then (most calls) goes out whole, headers and every event in one write with a
/// `Content-Length`, instead of a write (and, on loopback, a wake-up of the reader) per event.
/// A longer one streams from then on, with keep-alive comments.
const GATHER: Duration = Duration::from_millis(5);

/// `frames` as an SSE response: whole if they end within [`GATHER`], streamed otherwise.
async fn sse(mut frames: BoxStream<'static, bytes::Bytes>, keep_alive: Duration) -> Response {
    use futures_util::stream;
    let deadline = tokio::time::Instant::now() + GATHER;
    let mut gathered = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, frames.next()).await {
            Ok(Some(frame)) => gathered.extend_from_slice(&frame),
            Ok(None) => return sse_response(axum::body::Body::from(gathered)),
            Err(_) => break,
        }
    }
    let start = tokio::time::Instant::now() + keep_alive;
    let ticks = stream::unfold(
        tokio::time::interval_at(start, keep_alive),
        |mut every| async {
            every.tick().await;
            Some((Some(bytes::Bytes::from_static(b":\n\n")), every))
        },
    );
    let events = stream::iter((!gathered.is_empty()).then(|| bytes::Bytes::from(gathered)))
        .chain(frames)
        .map(Some)
        .chain(stream::once(async { None }));
    let body = stream::select(events, ticks)
        .take_while(|frame| std::future::ready(frame.is_some()))
        .filter_map(std::future::ready)
        .map(Ok::<_, Infallible>);
    sse_response(axum::body::Body::from_stream(body))
}

fn sse_response(body: axum::body::Body) -> Response {
    let response = Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .header(axum::http::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    unbuffered(response)
}

/// One message as the whole answer, in the form the client asked for.
pub fn single(msg: Value, as_sse: bool) -> Response {
    if as_sse {
        sse_response(axum::body::Body::from(event_frame(None, &msg)))
    } else {
        Json(msg).into_response()
    }
}

/// Asks reverse proxies (nginx) not to buffer an event stream, so progress arrives as it happens.
pub fn unbuffered(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("x-accel-buffering"),
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

pub fn message_event(msg: &Value) -> Event {
    let mut data = Vec::new();
    write_json(&mut data, msg);
    Event::default()
        .event("message")
        .data(String::from_utf8(data).unwrap_or_default())
}

/// Appends `msg` as compact JSON (straight into bytes: `Display` goes through the formatting
/// machinery, which showed in the proxy's profile).
fn write_json(out: &mut Vec<u8>, msg: &Value) {
    // A `Value` always serializes (its keys are strings), and a `Vec` never fails to grow.
    let _ = serde_json::to_writer(out, msg);
}

/// Keep-alive comments keep idle proxies and clients from closing a long call's stream.
pub const FORWARDED_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Everything needed to finish one forwarded request.
pub struct Forwarded {
    pub upstream: Arc<str>,
    pub method: String,
    /// The tool's name when this is a `tools/call`.
    pub tool: Option<ToolName>,
    pub original_id: Value,
    pub metrics: Arc<Metrics>,
    pub slot: Option<Quota>,
    /// The database's part of a quota being given back: the answer waits for it.
    pub releasing: Option<tokio::task::JoinHandle<()>>,
    /// The audit trail of a call the policy allowed (parked calls are recorded by the queue).
    pub trail: Option<Box<Trail>>,
    pub started: Instant,
    /// Set for 2026-07-28 requests until the answer is in: closing the stream cancels the call.
    pub cancel_on_close: Option<(Connection, u64)>,
    /// Where related messages go when the reply is one JSON body and cannot carry them.
    pub overflow: Option<mpsc::Sender<Value>>,
    /// The client speaks 2026-07-28: its final result gets a `resultType`.
    pub stateless: bool,
    /// Keeps the session counted as busy while the call is open.
    pub in_flight: Option<InFlight>,
    /// For a `tools/list`: what Airlock does to the answer (see `listing.rs`).
    pub tool_list: Option<super::listing::ToolList>,
    /// Who is asking (the agent token's SHA-256), for the upstream's own tasks: a task a
    /// `tools/call` answers with is noted as theirs, and a `tasks/list` shows only theirs.
    pub task_owner: Option<(Arc<super::tasks::UpstreamTasks>, String)>,
    /// For a `tools/call` Airlock let through: where an `InputRequiredResult`'s `requestState`
    /// is noted, so the retry that carries it continues the call.
    pub continuation: Option<(
        Arc<super::continuations::Continuations>,
        super::continuations::Bound,
    )>,
    /// For a 2026-07-28 client's request to an upstream Airlock translates for: the upstream's
    /// server requests become input requests to the client (see `input_rounds.rs`).
    pub asking: Option<super::input_rounds::Asking>,
}

impl Forwarded {
    /// The reply of the request, as the upstream's reply items arrive: ends after the final one.
    pub fn into_reply(self, replies: ReplyRx) -> Reply {
        use super::input_rounds::{Item, sort};
        let overflow = self.overflow.clone();
        let stream = futures_util::stream::unfold(Some((self, replies)), |state| async move {
            let (mut forwarded, mut replies) = state?;
            let item = loop {
                let item = replies.recv().await?;
                let Some(asking) = &forwarded.asking else {
                    break item;
                };
                match sort(asking, item) {
                    Item::Pass(item) => break item,
                    Item::Refused => {}
                    Item::Ask(request, state) => {
                        // Held for the retry; this answer ends this request.
                        let rounds = asking.rounds();
                        let answer = rounds.hold(forwarded, replies, request, state);
                        return Some((answer, None));
                    }
                }
            };
            let (msg, last) = forwarded.render(item);
            if let Some(releasing) = forwarded.releasing.take() {
                let _ = releasing.await;
            }
            Some((msg, (!last).then_some((forwarded, replies))))
        });
        Reply::Stream(Messages::new(stream, overflow, FORWARDED_KEEP_ALIVE))
    }

    /// The answer goes to request `id` from now on (the retry of a request held for input).
    pub fn answer_as(&mut self, id: Value) {
        self.original_id = id;
    }

    /// Turns a reply item into the message for the client; true when it is the final one.
    pub fn render(&mut self, item: Inbound) -> (Value, bool) {
        let (mut msg, last) = self.classify(item);
        if last && self.stateless {
            crate::protocol::mark_complete(&mut msg);
            crate::protocol::mark_cacheable(&self.method, &mut msg);
        }
        (msg, last)
    }

    fn classify(&mut self, item: Inbound) -> (Value, bool) {
        match item {
            Inbound::Message(mut msg) => {
                let last = msg.get("method").is_none();
                if last {
                    // The request it answers may be a later round's (`input_rounds`).
                    msg["id"] = self.original_id.clone();
                    self.finish(&msg);
                    if let Some(list) = &self.tool_list {
                        list.apply(&self.upstream, &mut msg);
                    }
                    if let Some((tasks, token)) = &self.task_owner {
                        match self.method.as_str() {
                            "tools/call" => tasks.record(&self.upstream, token, &msg),
                            "tasks/list" => tasks.filter_list(&self.upstream, token, &mut msg),
                            _ => {}
                        }
                    }
                }
                (msg, last)
            }
            Inbound::Failed {
                error: e,
                may_have_run,
            } => {
                // A call that may have run keeps its rate-limit slot; one that surely did not
                // (the upstream refused or was unreachable) gives it back.
                if !may_have_run {
                    self.release_slot();
                }
                if let Some(trail) = &mut self.trail {
                    trail.failed(&e.to_string(), may_have_run);
                }
                self.record(Outcome::Unavailable);
                let id = self.original_id.clone();
                let msg = if self.tool.is_some() {
                    jsonrpc::tool_error_result(id, format!("{e}; try again later"))
                } else {
                    jsonrpc::error_response(id, jsonrpc::INTERNAL_ERROR, e.to_string())
                };
                (msg, true)
            }
        }
    }

    fn finish(&mut self, response: &Value) {
        if let Some(trail) = &mut self.trail {
            trail.answered(response);
        }
        if let Some((continuations, bound)) = &self.continuation {
            continuations.note(bound, response);
        }
        let outcome = if response.get("error").is_some() {
            self.release_slot();
            Outcome::Error
        } else if crate::jsonrpc::pointer(response, "/result/isError") == Some(&Value::Bool(true)) {
            Outcome::ToolError
        } else {
            Outcome::Ok
        };
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome) {
        self.cancel_on_close = None;
        self.metrics
            .observe_latency(&self.upstream, &self.method, self.started.elapsed());
        if let Some(tool) = &self.tool {
            self.metrics.tool_call(&self.upstream, tool, outcome);
        }
    }

    /// A call the upstream did not carry out gives its rate-limit slot back.
    fn release_slot(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.releasing = slot.release();
        }
    }
}

impl Drop for Forwarded {
    /// A 2026-07-28 client that closes its stream cancels the call. The call was already sent, so
    /// it keeps its rate-limit slot: hanging up must not be a way around the limit.
    fn drop(&mut self) {
        if let Some((conn, upstream_id)) = self.cancel_on_close.take() {
            tokio::spawn(async move {
                conn.cancel(upstream_id, "the client closed the response stream")
                    .await;
            });
        }
    }
}
