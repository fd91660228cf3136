//! Reading an HTTP request to `/mcp`: what it accepts back, which protocol revision it names, and
//! the 2026-07-28 routing headers that must agree with its body.

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::error::McpError;
use crate::jsonrpc;
use crate::protocol::{
    HANDSHAKE_VERSIONS, METHOD_HEADER, NAME_HEADER, STATELESS_VERSION, UNSUPPORTED_VERSION,
    VERSION_HEADER,
};

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the client takes SSE (else it gets one JSON body); `None` if it takes neither.
pub fn accepts_sse(headers: &HeaderMap) -> Option<bool> {
    let Some(accept) = header_str(headers, header::ACCEPT.as_str()) else {
        return Some(true);
    };
    let accept = accept.to_ascii_lowercase();
    if accept.contains("text/event-stream") || accept.contains("*/*") {
        Some(true)
    } else if accept.contains("application/json") {
        Some(false)
    } else {
        None
    }
}

/// The revision the `MCP-Protocol-Version` header names, if any; one Airlock does not speak is
/// 2026-07-28's UnsupportedProtocolVersion, with the list a client can pick from.
pub fn protocol_version(headers: &HeaderMap) -> Result<Option<&str>, McpError> {
    let Some(v) = header_str(headers, VERSION_HEADER) else {
        return Ok(None);
    };
    if v == STATELESS_VERSION || HANDSHAKE_VERSIONS.contains(&v) {
        return Ok(Some(v));
    }
    let mut supported = vec![STATELESS_VERSION];
    supported.extend(HANDSHAKE_VERSIONS.iter().rev());
    Err(McpError::new(
        StatusCode::BAD_REQUEST,
        UNSUPPORTED_VERSION,
        format!(
            "Unsupported MCP-Protocol-Version {v:?}; supported: {}",
            supported.join(", ")
        ),
    )
    .with_data(json!({"supported": supported, "requested": v})))
}

/// A message without an id gets no answer, so a `tools/call` sent that way would run unseen by the
/// policy gate (a generic JSON-RPC server executes such "notifications"). Only MCP's own
/// notification methods may travel without an id.
pub fn is_notification_method(method: &str) -> bool {
    method.starts_with("notifications/")
}

pub const NOT_A_NOTIFICATION: &str =
    "only notifications/* may be sent without an id; a request needs an id";

/// `Mcp-Method` must name the body's method, and `Mcp-Name` the tool, resource or prompt
/// (HTTP 400, -32020 HeaderMismatch).
pub fn check_routing_headers(headers: &HeaderMap, msg: &Value) -> Result<(), McpError> {
    routing_mismatch(headers, msg).map_err(|why| {
        McpError::new(
            StatusCode::BAD_REQUEST,
            crate::protocol::HEADER_MISMATCH,
            format!("Header mismatch: {why}"),
        )
    })
}

fn routing_mismatch(headers: &HeaderMap, msg: &Value) -> Result<(), String> {
    let method = msg.get("method").and_then(Value::as_str);
    let Some(method) = method else {
        return Err(
            "a 2026-07-28 request carries a method (responses have no place here)".to_owned(),
        );
    };
    match header_str(headers, METHOD_HEADER) {
        Some(h) if decode_header(h) == method => {}
        Some(h) => {
            return Err(format!(
                "Mcp-Method {h:?} does not match the body's method {method:?}"
            ));
        }
        None => return Err("the Mcp-Method header is required".to_owned()),
    }
    if !matches!(method, "tools/call" | "prompts/get" | "resources/read") {
        return Ok(());
    }
    let name = crate::protocol::routing_name(method, msg).and_then(Value::as_str);
    match (header_str(headers, NAME_HEADER), name) {
        (Some(h), Some(name)) if decode_header(h) == name => Ok(()),
        (Some(h), _) => Err(format!("Mcp-Name {h:?} does not match the body")),
        (None, _) => Err(format!("the Mcp-Name header is required for {method}")),
    }
}

/// Header values that are not plain ASCII travel as `=?base64?...?=`.
fn decode_header(value: &str) -> String {
    use base64::Engine;
    value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| value.to_owned())
}

/// The body as JSON, within `limit` bytes.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Value, McpError> {
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(McpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!("request body over {limit} bytes (server.max_body_bytes)"),
        ));
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        McpError::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::PARSE_ERROR,
            format!("Parse error: {e}"),
        )
    })
}
