//! The names a call carries, each its own type. They read as `&str` (`Deref`), so formatting and
//! comparing them is plain; making one is explicit, and a [`CallId`] must be a UUID.

use std::fmt;
use std::sync::Arc;

use super::stored_as_text;

/// A text newtype: read access as `str`, serialised as the bare string, stored as text.
macro_rules! name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(name: impl Into<String>) -> Self {
                Self(name.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        stored_as_text!($name, |name| name.0.clone(), |text| Ok($name(text)));
    };
}

name!(
    /// An agent, as its token names it (`[[agent]]` or `airlock token create --agent`).
    AgentName
);
name!(
    /// An upstream MCP server, as `[[upstream]] name` names it (the `/mcp/{upstream}` path).
    UpstreamName
);
name!(
    /// A tool of an upstream, as the agent's `tools/call` names it.
    ToolName
);

/// A parked call's id: a UUID (v7 for new calls, so ids sort by time).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct CallId(String);

/// Text that is not a call id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no call with id {0}")]
pub struct NotACallId(pub String);

impl CallId {
    /// A new id for a call parked now.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id `text` names, if it is a UUID (as every call id is), in its canonical spelling.
    pub fn parse(text: &str) -> Result<Self, NotACallId> {
        uuid::Uuid::parse_str(text)
            .map(|id| Self(id.to_string()))
            .map_err(|_| NotACallId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for CallId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for CallId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl std::borrow::Borrow<str> for CallId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

stored_as_text!(CallId, |id| id.0.clone(), |text| CallId::parse(&text)
    .map_err(|e| e.to_string()));

/// The downstream session a request came on (its `Mcp-Session-Id`, or a per-request key for
/// 2026-07-28 clients); shared, cheap to clone.
pub type SessionKey = Arc<str>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_id_is_a_uuid_in_canonical_spelling() {
        let id = CallId::generate();
        assert_eq!(CallId::parse(&id).as_ref(), Ok(&id));
        let upper = id.to_uppercase();
        assert_eq!(CallId::parse(&upper).as_ref(), Ok(&id), "one spelling");
        assert!(CallId::parse("forwarding-call").is_err());
        assert!(CallId::parse("").is_err());
    }
}
