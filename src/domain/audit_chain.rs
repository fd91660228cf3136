//! One audit event and its hash.

use serde_json::json;

/// The hash the first event follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as stored (and as exported: an export line reads back into one, so a third party can
/// check the chain without the database).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub via: String,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub call_id: Option<String>,
    pub args_digest: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// The hash this event should have, from its content and `prev_hash`.
    pub fn expected_hash(&self) -> String {
        event_hash(&self.prev_hash, &self.canonical())
    }

    /// The fields the hash covers, as one JSON array in a fixed order.
    pub fn canonical(&self) -> String {
        json!([
            self.seq,
            self.at,
            self.kind,
            self.actor,
            self.via,
            self.upstream,
            self.tool,
            self.call_id,
            self.args_digest,
            self.detail,
        ])
        .to_string()
    }
}

/// SHA-256 of `prev_hash`, a newline and `canonical`, in hex.
pub fn event_hash(prev_hash: &str, canonical: &str) -> String {
    crate::secrets::sha256_hex(format!("{prev_hash}\n{canonical}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        let mut event = AuditEvent {
            seq: 1,
            at: "2026-11-25T14:05:00.000Z".to_owned(),
            kind: "pending".to_owned(),
            actor: "agent:claude".to_owned(),
            via: "mcp".to_owned(),
            upstream: Some("telegram".to_owned()),
            tool: Some("export_session".to_owned()),
            call_id: Some("c1".to_owned()),
            args_digest: Some("ab".repeat(32)),
            detail: None,
            prev_hash: GENESIS.to_owned(),
            hash: String::new(),
        };
        event.hash = event.expected_hash();
        event
    }

    #[test]
    fn any_field_change_changes_the_hash() {
        let original = event();
        assert_eq!(original.expected_hash(), original.hash);
        let mut edited = original.clone();
        edited.detail = Some("x".to_owned());
        assert_ne!(edited.expected_hash(), original.hash);
        let mut moved = original.clone();
        moved.seq = 2;
        assert_ne!(moved.expected_hash(), original.hash);
        let mut relinked = original;
        relinked.prev_hash = "1".repeat(64);
        assert_ne!(relinked.expected_hash(), relinked.hash);
    }
}
