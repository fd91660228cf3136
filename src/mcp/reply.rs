//! Turning a request's reply stream into an HTTP response: an SSE stream (related notifications and
//! server requests first, then the response, then the end) or, for clients that only accept JSON,
//! one JSON body.
//!
//! Every forwarded request ends here, so this is where its outcome is counted, its rate-limit slot
//! is given back if the upstream failed, and (for 2026-07-28 clients) a closed stream becomes a
//! cancellation upstream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

use super::tools_call::Quota;
use super::trail::Trail;
use crate::jsonrpc;
use crate::metrics::{Metrics, Outcome};
use crate::upstream::{Connection, Inbound, ReplyRx};

/// Keep-alive comments keep idle proxies and clients from closing a long call's stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Everything needed to finish one forwarded request.
pub struct Forwarded {
    pub upstream: Arc<str>,
    pub method: String,
    /// The tool's name when this is a `tools/call`.
    pub tool: Option<String>,
    pub original_id: Value,
    pub metrics: Arc<Metrics>,
    pub slot: Option<Quota>,
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
    pub _in_flight: Option<crate::mcp::session::InFlight>,
}

impl Forwarded {
    /// Turns a reply item into the message for the client; true when it is the final one.
    pub fn render(&mut self, item: Inbound) -> (Value, bool) {
        let (mut msg, last) = self.classify(item);
        if last && self.stateless {
            super::mark_complete(&mut msg);
        }
        (msg, last)
    }

    fn classify(&mut self, item: Inbound) -> (Value, bool) {
        match item {
            Inbound::Message(msg) => {
                let last = msg.get("method").is_none();
                if last {
                    self.finish(&msg);
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
        let outcome = if response.get("error").is_some() {
            self.release_slot();
            Outcome::Error
        } else if response.pointer("/result/isError") == Some(&Value::Bool(true)) {
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
            slot.release();
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

/// Streams the reply as SSE until the final message.
pub fn sse(forwarded: Forwarded, replies: ReplyRx) -> Response {
    unbuffered(
        Sse::new(events(forwarded, replies))
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response(),
    )
}

/// Asks reverse proxies (nginx) not to buffer an event stream, so progress arrives as it happens.
pub fn unbuffered(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("x-accel-buffering"),
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

fn events(forwarded: Forwarded, replies: ReplyRx) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some((forwarded, replies)), |state| async move {
        let (mut forwarded, mut replies) = state?;
        let item = replies.recv().await?;
        let (msg, last) = forwarded.render(item);
        let event = message_event(&msg);
        Some((Ok(event), (!last).then_some((forwarded, replies))))
    })
}

pub fn message_event(msg: &Value) -> Event {
    Event::default().event("message").data(msg.to_string())
}

/// Waits for the final message and answers with it as one JSON body.
pub async fn json(mut forwarded: Forwarded, mut replies: ReplyRx) -> Response {
    while let Some(item) = replies.recv().await {
        let (msg, last) = forwarded.render(item);
        if last {
            return Json(msg).into_response();
        }
        if let Some(overflow) = &forwarded.overflow
            && overflow.try_send(msg).is_err()
        {
            tracing::warn!("session queue full; dropping a server message");
        }
    }
    // The call was cancelled: there is no answer to give.
    StatusCode::NO_CONTENT.into_response()
}

/// One message as the whole answer, in the form the client asked for.
pub fn single(msg: Value, as_sse: bool) -> Response {
    if as_sse {
        let event = message_event(&msg);
        Sse::new(futures_util::stream::once(async move {
            Ok::<_, Infallible>(event)
        }))
        .into_response()
    } else {
        Json(msg).into_response()
    }
}
