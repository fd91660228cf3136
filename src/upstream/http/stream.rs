//! What an HTTP upstream sends back: an SSE stream of events (bounded per event) or one JSON body
//! (bounded in size), routed to the link message by message.

use std::sync::Arc;

use axum::http::header;
use futures_util::StreamExt;
use serde_json::Value;
use sse_stream::SseStream;

use super::{PostError, error_chain};
use crate::upstream::link::Shared;

/// Routes what came back for a message: the events of an SSE stream (read in a task of their
/// own, failing the request if the stream ends without its answer) or the messages of a JSON body.
pub(super) async fn route_response(
    shared: &Arc<Shared>,
    response: reqwest::Response,
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
        let shared = shared.clone();
        tokio::spawn(async move {
            read_events(&shared, response, related).await;
            if let Some(id) = related {
                shared.fail_one(
                    id,
                    shared.unavailable("the response stream ended without an answer".to_owned()),
                    true,
                );
            }
        });
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

pub(super) async fn read_events(
    shared: &Arc<Shared>,
    response: reqwest::Response,
    related: Option<u64>,
) {
    let mut events =
        SseStream::from_bytes_stream(bounded_events(response.bytes_stream(), MAX_BODY_BYTES));
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(upstream = %shared.upstream, error = %e, "upstream event stream broke");
                return;
            }
        };
        let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
            continue;
        };
        match serde_json::from_str::<Value>(&data) {
            Ok(msg) => shared.on_inbound(msg, related),
            Err(e) => {
                tracing::warn!(upstream = %shared.upstream, error = %e, "upstream sent an event that is not JSON")
            }
        }
    }
}

/// The most an upstream may send as one JSON answer; more is refused, not buffered.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How much of an error page is read for the message.
pub(super) const ERROR_SNIPPET_BYTES: usize = 4096;

/// Reads a response body of at most `limit` bytes: past it, the body is cut (`truncate`, for
/// error pages) or refused.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    truncate: bool,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        format!(
            "reading the response failed: {}",
            error_chain(&e.without_url())
        )
    })? {
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
