//! The MCP protocol's names Airlock speaks on both sides: the revisions it serves, the HTTP
//! headers of Streamable HTTP, version negotiation, and the 2026-07-28 shapes it writes on a
//! handshake-era upstream's behalf. No behaviour lives here, only the protocol's words.

use serde_json::{Value, json};

/// Handshake-era revisions served downstream, oldest first.
pub const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
pub const LATEST_HANDSHAKE_VERSION: &str = "2025-11-25";
/// The stateless revision: no `initialize`, no sessions, routing headers on every POST.
pub const STATELESS_VERSION: &str = "2026-07-28";

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";

/// The 2026-07-28 error code for a protocol version the server does not speak.
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// The 2026-07-28 error code for routing headers (`Mcp-Method`, `Mcp-Name`,
/// `MCP-Protocol-Version`) that disagree with the body.
pub const HEADER_MISMATCH: i64 = -32020;

/// `params._meta` keys every 2026-07-28 request carries.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// Methods of the handshake era that 2026-07-28 removed (HTTP 404, -32601 when asked for).
pub const REMOVED_IN_STATELESS: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The request methods of 2026-07-28 (with the tasks extension's); any other is "not found".
pub const STATELESS_METHODS: [&str; 15] = [
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "subscriptions/listen",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "tasks/result",
    "tasks/list",
];

/// The version to answer an `initialize` with: the requested one when served; an older request
/// (2024-11-05) gets the oldest served, anything else the latest (as the spec's negotiation says).
pub fn negotiate_version(requested: &str) -> &'static str {
    if let Some(known) = HANDSHAKE_VERSIONS.iter().find(|v| **v == requested) {
        return known;
    }
    if requested < HANDSHAKE_VERSIONS[0] {
        HANDSHAKE_VERSIONS[0]
    } else {
        LATEST_HANDSHAKE_VERSION
    }
}

/// 2026-07-28 results say what they are (`resultType`); a handshake-era upstream's results do
/// not, so Airlock, speaking that revision on the upstream's behalf, marks them complete.
pub fn mark_complete(response: &mut Value) {
    if let Some(result) = response.get_mut("result").and_then(Value::as_object_mut)
        && !result.contains_key("resultType")
    {
        result.insert("resultType".to_owned(), json!("complete"));
    }
}

/// A 2026-07-28 `server/discover` result built from the upstream's `InitializeResult`: Airlock holds
/// the handshake-era upstream session and speaks the stateless revision on its behalf.
pub fn discover_result(init: &Value) -> Value {
    let mut versions: Vec<&str> = vec![STATELESS_VERSION];
    versions.extend(HANDSHAKE_VERSIONS.iter().rev());
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": init.get("serverInfo").cloned().unwrap_or(Value::Null)},
    });
    if let Some(instructions) = init.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_spec() {
        assert_eq!(negotiate_version("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate_version("2024-11-05"), "2025-03-26");
        assert_eq!(negotiate_version("2030-01-01"), "2025-11-25");
        assert_eq!(negotiate_version(""), "2025-03-26");
    }
}
