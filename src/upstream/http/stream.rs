//! What an HTTP upstream sends back: an SSE stream of events (bounded per event) or one JSON body
//! (bounded in size), routed to the link message by message.
//!
//! A server may close a request's stream before its answer, after an event with an id (a priming
//! event, often with `retry`): the client is to reconnect with `GET` and `Last-Event-ID`, and the
//! rest arrives there (2025-11-25, "Resumability"). Airlock does so, waiting `retry` (capped), up to
//! [`MAX_RESUMES`] times; a stream that ends without an id, or a resume the server refuses, fails
//! the request as before.

use std::sync::Arc;

use axum::http::header;
use futures_util::StreamExt;
use serde_json::Value;
use sse_stream::SseStream;

use super::client::{Response, body_stream};
use super::{PostError, error_chain};
use crate::upstream::link::Shared;

/// Routes what came back for a message: the events of an SSE stream (a request's read to its
/// answer, failing the request if the stream ends without it; any other's in a task of their
/// own) or the messages of a JSON body.
pub(super) async fn route_response(
    wire: &Arc<super::HttpWire>,
    shared: &Arc<Shared>,
    response: Response,
    related: Option<u64>,
) -> Result<(), PostError> {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        match related {
            // A request's answer is read in its own task (see `HttpWire::send_message`): no
            // second task, no second wake-up per call.
            Some(id) => follow(wire, shared, response, id).await,
            None => {
                let shared = shared.clone();
                tokio::spawn(async move { read_events(&shared, response, None).await });
            }
        }
    } else if content_type.starts_with("application/json") {
        let body = read_capped(response, MAX_BODY_BYTES, false)
            .await
            .map_err(|why| PostError::accepted(shared.unavailable(why)))?;
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(messages)) => {
                for m in messages {
                    shared.on_inbound(m, related);
                }
            }
            Ok(message) => shared.on_inbound(message, related),
            Err(e) => {
                return Err(PostError::accepted(
                    shared.unavailable(format!("invalid JSON from upstream: {e}")),
                ));
            }
        }
    } else if related.is_some() {
        return Err(PostError::accepted(shared.unavailable(format!(
            "HTTP {status} without an answer to the request"
        ))));
    }
    Ok(())
}

/// Reads request `id`'s event stream to its answer, resuming it with `GET` and `Last-Event-ID`
/// when the server cuts it first; a stream that cannot be resumed fails the request.
async fn follow(
    wire: &Arc<super::HttpWire>,
    shared: &Arc<Shared>,
    mut response: Response,
    id: u64,
) {
    let mut resumes = 0;
    loop {
        let seen = read_events(shared, response, Some(id)).await;
        if seen.answered {
            return;
        }
        let resumed = match seen.last_id {
            Some(last) if resumes < MAX_RESUMES => {
                resumes += 1;
                let wait = seen.retry.unwrap_or(DEFAULT_RETRY).min(MAX_RETRY);
                tokio::time::sleep(wait).await;
                wire.resume(shared, &last).await
            }
            _ => None,
        };
        match resumed {
            Some(next) => response = next,
            None => {
                shared.fail_one(
                    id,
                    shared.unavailable("the response stream ended without an answer".to_owned()),
                    true,
                );
                return;
            }
        }
    }
}

/// How often a request's stream is resumed before the request fails.
const MAX_RESUMES: u32 = 5;
/// The wait before resuming when the server named none (`retry`), and the longest honoured.
const DEFAULT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// What a stream showed by the time it ended.
#[derive(Default)]
pub(super) struct Seen {
    /// The request's answer came (`related`'s response).
    pub(super) answered: bool,
    /// The id of the last event that had one, to resume after.
    pub(super) last_id: Option<String>,
    /// The server's `retry`, the wait before resuming.
    pub(super) retry: Option<std::time::Duration>,
}

pub(super) async fn read_events(
    shared: &Arc<Shared>,
    response: Response,
    related: Option<u64>,
) -> Seen {
    let mut seen = Seen::default();
    let mut events =
        SseStream::from_bytes_stream(bounded_events(body_stream(response), MAX_BODY_BYTES));
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(upstream = %shared.upstream, error = %e, "upstream event stream broke");
                return seen;
            }
        };
        if let Some(id) = event.id.filter(|id| !id.is_empty()) {
            seen.last_id = Some(id);
        }
        if let Some(retry) = event.retry {
            seen.retry = Some(std::time::Duration::from_millis(retry));
        }
        let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
            continue;
        };
        match serde_json::from_str::<Value>(&data) {
            Ok(msg) => {
                let answers = msg.get("method").is_none()
                    && related.is_some()
                    && msg.get("id").and_then(Value::as_u64) == related;
                shared.on_inbound(msg, related);
                if answers {
                    seen.answered = true;
                }
            }
            Err(e) => {
                tracing::warn!(upstream = %shared.upstream, error = %e, "upstream sent an event that is not JSON")
            }
        }
    }
    seen
}

/// The most an upstream may send as one JSON answer; more is refused, not buffered.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How much of an error page is read for the message.
pub(super) const ERROR_SNIPPET_BYTES: usize = 4096;

/// Reads a response body of at most `limit` bytes: past it, the body is cut (`truncate`, for
/// error pages) or refused.
pub(super) async fn read_capped(
    response: Response,
    limit: usize,
    truncate: bool,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut chunks = std::pin::pin!(body_stream(response));
    while let Some(chunk) = chunks
        .next()
        .await
        .transpose()
        .map_err(|e| format!("reading the response failed: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > limit {
            if truncate {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                return Ok(body);
            }
            return Err(format!("the upstream's answer is over {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Passes an SSE byte stream through, but ends it with an error once one event runs past `limit`
/// bytes without the blank line that ends it: the event parser would otherwise buffer whatever an
/// upstream sends.
fn bounded_events<E: std::error::Error + Send + Sync + 'static>(
    bytes: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    limit: usize,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let mut in_event = 0usize;
    let mut at_line_start = true;
    bytes.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        for byte in chunk.iter() {
            match byte {
                b'\n' if at_line_start => in_event = 0,
                b'\n' => at_line_start = true,
                b'\r' => {}
                _ => {
                    at_line_start = false;
                    in_event += 1;
                }
            }
        }
        if in_event > limit {
            return Err(std::io::Error::other(format!(
                "an event over {limit} bytes"
            )));
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endless_event_is_cut_off_and_normal_events_pass() {
        let chunks = |parts: Vec<&'static str>| {
            futures_util::stream::iter(
                parts
                    .into_iter()
                    .map(|p| Ok::<_, std::io::Error>(bytes::Bytes::from_static(p.as_bytes()))),
            )
        };
        let fine: Vec<_> =
            bounded_events(chunks(vec!["data: 12345\n\n", "data: 678", "90\n\n"]), 10)
                .collect()
                .await;
        assert!(fine.iter().all(Result::is_ok));
        let endless: Vec<_> =
            bounded_events(chunks(vec!["data: 12345", "678901234\n", "data: x"]), 10)
                .collect()
                .await;
        assert!(endless.iter().any(Result::is_err));
    }
}
