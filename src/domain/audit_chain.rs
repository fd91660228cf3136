//! One audit event and its hash.

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
        event_hash(&self.prev_hash, &self.content().canonical(self.seq))
    }

    /// What the event says, borrowed.
    pub fn content(&self) -> NewAuditEvent<'_> {
        NewAuditEvent {
            at: &self.at,
            kind: &self.kind,
            actor: &self.actor,
            via: &self.via,
            upstream: self.upstream.as_deref(),
            tool: self.tool.as_deref(),
            call_id: self.call_id.as_deref(),
            args_digest: self.args_digest.as_deref(),
            detail: self.detail.as_deref(),
        }
    }
}

/// An event's content, without its number and hashes: what is appended, and what is hashed.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub at: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub via: &'a str,
    pub upstream: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub call_id: Option<&'a str>,
    pub args_digest: Option<&'a str>,
    pub detail: Option<&'a str>,
}

impl NewAuditEvent<'_> {
    /// The fields the hash covers, numbered `seq`, as one JSON array in a fixed order.
    pub fn canonical(&self, seq: i64) -> String {
        // A tuple is written as the JSON array it stands for, without copying its fields into
        // a `Value` first (the same bytes: the chain of an older log still verifies).
        let fields = (
            seq,
            self.at,
            self.kind,
            self.actor,
            self.via,
            self.upstream,
            self.tool,
            self.call_id,
            self.args_digest,
            self.detail,
        );
        // Strings, an integer and nulls: writing them cannot fail.
        serde_json::to_string(&fields).unwrap_or_default()
    }
}

/// SHA-256 of `prev_hash`, a newline and `canonical`, in hex.
pub fn event_hash(prev_hash: &str, canonical: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
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

    #[test]
    fn the_canonical_form_is_the_json_array_of_the_fields() {
        // The form the chain of every log written so far was hashed over.
        let mut event = event();
        event.tool = Some("a\"b\\c\u{7}é".to_owned());
        event.detail = None;
        let old = serde_json::json!([
            event.seq,
            event.at,
            event.kind,
            event.actor,
            event.via,
            event.upstream,
            event.tool,
            event.call_id,
            event.args_digest,
            event.detail,
        ])
        .to_string();
        assert_eq!(event.content().canonical(event.seq), old);
        assert_eq!(
            event_hash("p", &old),
            crate::secrets::sha256_hex(format!("p\n{old}").as_bytes())
        );
    }
}
