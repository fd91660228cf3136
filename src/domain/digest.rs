//! A call's arguments as approval binds to them: the text the agent sent (forwarded unchanged) and
//! the SHA-256 of their canonical form (object keys sorted, no whitespace), so the digest does not
//! depend on key order or spacing, and any change of a value changes it.

use std::fmt;

use serde_json::Value;

use super::{AgentName, ToolName, UpstreamName, stored_as_text};
use crate::secrets::sha256_hex;

/// The hex SHA-256 of a call's canonical arguments: what an approval binds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ArgsDigest(String);

impl ArgsDigest {
    /// The digest of `args`.
    pub fn of(args: &Value) -> Self {
        let mut canonical = String::new();
        write_canonical(args, &mut canonical);
        Self(sha256_hex(canonical.as_bytes()))
    }

    /// The digest `text` spells, if it is one (64 lowercase hex digits), as a face receives it
    /// back from a reviewer.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        hex.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ArgsDigest {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArgsDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ArgsDigest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

stored_as_text!(ArgsDigest, |digest| digest.0.clone(), |text| {
    ArgsDigest::parse(&text).ok_or_else(|| format!("{text:?} is not an argument digest"))
});

/// What a parked call belongs to: the hex SHA-256 over its agent, the agent's token (its
/// SHA-256), the upstream, the tool and the argument digest. A `tools/call` with the same key
/// joins the call instead of parking another one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttachKey(String);

impl AttachKey {
    pub fn new(
        agent: &AgentName,
        token_sha256: &str,
        upstream: &UpstreamName,
        tool: &ToolName,
        args: &ArgsDigest,
    ) -> Self {
        let mut text = String::new();
        for part in [&**agent, token_sha256, upstream, tool, args] {
            // Length-prefixed, so no two different keys spell the same text.
            text.push_str(&format!("{}:{part};", part.len()));
        }
        Self(sha256_hex(text.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

stored_as_text!(AttachKey, |key| key.0.clone(), |text| {
    ArgsDigest::parse(&text)
        .map(|digest| AttachKey(digest.0))
        .ok_or_else(|| format!("{text:?} is not an attach key"))
});

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_spacing_do_not_change_the_digest_but_values_do() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "hi"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"hi","b":[1,{"x":1,"y":2}]}"#).unwrap();
        let digest = ArgsDigest::of;
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&json!({"a": "hi", "b": [1, {"x": 1, "y": 3}]}))
        );
        assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": "1"})));
        assert_eq!(digest(&json!({})).as_str(), sha256_hex(b"{}"));
        assert_eq!(ArgsDigest::parse(&digest(&a)), Some(digest(&a)));
        assert_eq!(ArgsDigest::parse("ABC"), None);
    }

    #[test]
    fn an_attach_key_changes_with_each_of_its_parts() {
        let agent = AgentName::new("bot");
        let upstream = UpstreamName::new("telegram");
        let tool = ToolName::new("export_session");
        let args = ArgsDigest::of(&json!({}));
        let key = |agent: &AgentName, token: &str, tool: &ToolName, args: &ArgsDigest| {
            AttachKey::new(agent, token, &upstream, tool, args)
        };
        let base = key(&agent, "t1", &tool, &args);
        assert_eq!(base, key(&agent, "t1", &tool, &args));
        assert_ne!(base, key(&AgentName::new("bot2"), "t1", &tool, &args));
        assert_ne!(base, key(&agent, "t2", &tool, &args));
        assert_ne!(base, key(&agent, "t1", &ToolName::new("get_chats"), &args));
        assert_ne!(
            base,
            key(&agent, "t1", &tool, &ArgsDigest::of(&json!({"a": 1})))
        );
    }
}
