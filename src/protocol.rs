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
/// The 2026-07-28 error code for a request that needs a client capability it did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// The 2026-07-28 errors answered with HTTP 400.
pub const BAD_REQUEST_ERRORS: [i64; 3] = [
    HEADER_MISMATCH,
    MISSING_CLIENT_CAPABILITY,
    UNSUPPORTED_VERSION,
];

/// `params._meta` keys every 2026-07-28 request carries.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The client's name and version, which a 2026-07-28 request may carry beside those two.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// The `_meta` key of a notification naming the `subscriptions/listen` request (its id) it
/// belongs to.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

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

/// Whether a message is a 2026-07-28 request as it left its client: its `params._meta` names that
/// revision (what [`strip_stateless_meta`] takes out for a handshake-era upstream).
pub fn is_stateless_message(msg: &Value) -> bool {
    crate::jsonrpc::pointer(msg, "/params/_meta")
        .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str)
        == Some(STATELESS_VERSION)
}

/// What the `Mcp-Name` header of a 2026-07-28 request names: the tool or prompt, or the
/// resource's URI; `None` for other methods.
pub fn routing_name<'a>(method: &str, msg: &'a Value) -> Option<&'a Value> {
    match method {
        "tools/call" | "prompts/get" => crate::jsonrpc::pointer(msg, "/params/name"),
        "resources/read" => crate::jsonrpc::pointer(msg, "/params/uri"),
        _ => None,
    }
}

/// The `_meta` a request of Airlock's own to a 2026-07-28 server carries.
pub fn stateless_meta() -> Value {
    json!({
        META_PROTOCOL_VERSION: STATELESS_VERSION,
        META_CLIENT_CAPABILITIES: {},
        META_CLIENT_INFO: {"name": "airlock", "version": env!("CARGO_PKG_VERSION")}
    })
}

/// Takes the 2026-07-28 per-request keys (protocol version, client capabilities and info) out
/// of a message's `params._meta`, for an upstream session of the handshake era: they describe
/// the client's hop to Airlock, and a 2025-11-25 server that reads them finds a version unlike
/// its session's (rmcp's HTTP server refuses the request with -32020). Other `_meta` keys, such
/// as `progressToken`, stay; an `_meta` left empty goes.
pub fn strip_stateless_meta(msg: &mut Value) {
    let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    for key in [
        META_PROTOCOL_VERSION,
        META_CLIENT_CAPABILITIES,
        META_CLIENT_INFO,
    ] {
        meta.shift_remove(key);
    }
    if meta.is_empty() {
        params.shift_remove("_meta");
    }
}

/// The 2026-07-28 results that carry caching hints (`ttlMs`, `cacheScope`).
pub const CACHEABLE_METHODS: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// An answer to a cacheable request, as a 2026-07-28 client gets it from Airlock: the
/// upstream's `ttlMs` (0, not to be reused, when it gave none) and always `private`, whatever
/// the upstream said: what Airlock lists and serves depends on the agent's policy, so no cache
/// may share it across agents.
pub fn mark_cacheable(method: &str, response: &mut Value) {
    if !CACHEABLE_METHODS.contains(&method) {
        return;
    }
    if let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) {
        result.entry("ttlMs").or_insert(json!(0));
        result.insert("cacheScope".to_owned(), json!("private"));
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

/// Whether a `server/discover` result lists 2026-07-28 among the versions the server speaks.
pub fn lists_stateless(discovered: &Value) -> bool {
    discovered
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|versions| versions.iter().any(|v| v == STATELESS_VERSION))
}

/// The `InitializeResult` a link that opened with `server/discover` stands on: what callers
/// read from one (capabilities, server info, instructions), taken from the discovery result;
/// [`discover_result`] turns it back.
pub fn initialize_result_of(discovered: &Value) -> Value {
    let mut init = json!({
        "protocolVersion": STATELESS_VERSION,
        "capabilities": discovered.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": crate::jsonrpc::pointer(discovered, "/_meta/io.modelcontextprotocol~1serverInfo")
            .cloned()
            .unwrap_or(Value::Null),
    });
    if let Some(instructions) = discovered.get("instructions") {
        init["instructions"] = instructions.clone();
    }
    init
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

    #[test]
    fn a_stateless_requests_protocol_keys_stay_on_airlocks_side() {
        let mut msg = json!({"method": "tools/call", "params": {"name": "t", "_meta": {
            META_PROTOCOL_VERSION: STATELESS_VERSION,
            META_CLIENT_CAPABILITIES: {"elicitation": {}},
            META_CLIENT_INFO: {"name": "agent", "version": "1"},
            "progressToken": 7
        }}});
        strip_stateless_meta(&mut msg);
        assert_eq!(
            msg["params"],
            json!({"name": "t", "_meta": {"progressToken": 7}})
        );
        let mut bare = json!({"method": "tools/list", "params": {"_meta": {
            META_PROTOCOL_VERSION: STATELESS_VERSION,
            META_CLIENT_CAPABILITIES: {}
        }}});
        strip_stateless_meta(&mut bare);
        assert_eq!(bare["params"], json!({}));
    }

    #[test]
    fn a_discovery_result_stands_for_an_initialize_result_and_back() {
        let discovered = json!({
            "resultType": "complete",
            "supportedVersions": [STATELESS_VERSION, "2025-11-25"],
            "capabilities": {"tools": {"listChanged": true}},
            "instructions": "be kind",
            "ttlMs": 0,
            "cacheScope": "public",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "up", "version": "1"}}
        });
        assert!(lists_stateless(&discovered));
        assert!(!lists_stateless(
            &json!({"supportedVersions": ["2025-11-25"]})
        ));
        let init = initialize_result_of(&discovered);
        assert_eq!(init["serverInfo"]["name"], "up");
        let again = discover_result(&init);
        assert_eq!(again["capabilities"], discovered["capabilities"]);
        assert_eq!(again["instructions"], "be kind");
        assert_eq!(again["_meta"], discovered["_meta"]);
    }

    #[test]
    fn listings_get_caching_hints_private_to_the_agent() {
        let mut listed = json!({"result": {"tools": []}});
        mark_cacheable("tools/list", &mut listed);
        assert_eq!(listed["result"]["ttlMs"], 0);
        assert_eq!(listed["result"]["cacheScope"], "private");
        let mut own = json!({"result": {"contents": [], "ttlMs": 5000, "cacheScope": "public"}});
        mark_cacheable("resources/read", &mut own);
        assert_eq!(own["result"]["ttlMs"], 5000);
        assert_eq!(own["result"]["cacheScope"], "private");
        let mut call = json!({"result": {"content": []}});
        mark_cacheable("tools/call", &mut call);
        assert!(call["result"].get("ttlMs").is_none());
    }
}
