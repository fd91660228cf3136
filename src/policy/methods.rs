//! The policy beyond `tools/call`: every other request that reads or acts is judged too, so a
//! denied tool's data cannot be had through a prompt or a resource instead.
//!
//! - `resources/read` and `resources/subscribe` follow the rule of the resource's URI
//!   (`resources` in the policy: an exact URI, else the matching glob with the most literal
//!   characters, else the first listed of those);
//! - `prompts/get` follows the rule of the prompt's name (`prompts`, matched the same way);
//! - `completion/complete` follows the rule of what it completes (`params.ref`: a prompt or a
//!   resource template);
//! - the protocol's own requests (handshake, listings, `ping`, tasks, logging level) pass;
//! - any other method follows `default` (a method Airlock does not know may read or act).
//!
//! Outside `tools/call` nothing can wait for a human, so `require_approval` refuses too, with its
//! own text. Refusals are JSON-RPC errors [`POLICY_REFUSAL`], answered before any upstream sees
//! the request.
//!
//! A rule matches what the upstream will read, so a URI is judged in a canonical form: scheme and
//! authority in lower case, percent-escapes of unreserved characters decoded. A URI that could
//! mean another resource to an upstream that resolves it (`.` or `..` segments, an encoded `/` or
//! `\`), or a `uri`/`name` that is missing, not a string or over [`MAX_SUBJECT`] bytes, is not
//! judged at all: the request is refused as invalid (-32602).

use serde_json::Value;

use super::evaluate::{DENIED_WITHOUT_REASON, NOT_LISTED, ResolvedRule};
use super::model::{Policy, Rule};

/// The JSON-RPC error code of a request the policy refused (outside `tools/call`).
pub const POLICY_REFUSAL: i64 = -32003;

/// Requests of the protocol itself, which read or do nothing an upstream's data is in.
const PROTOCOL_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/unsubscribe",
    "prompts/list",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
];

/// The longest resource URI or prompt name judged (longer ones are refused as invalid).
pub const MAX_SUBJECT: usize = 2048;

/// What a request (other than `tools/call`) is about, as the policy names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A protocol request: not judged.
    Protocol,
    /// A resource, by URI.
    Resource(String),
    /// A prompt, by name.
    Prompt(String),
    /// A method the policy cannot classify: judged by `default`.
    Other(String),
}

impl Subject {
    /// The subject of a request with this `method` and `params`, or why it cannot be judged
    /// (the request is then refused as invalid).
    pub fn of(method: &str, params: Option<&Value>) -> Result<Self, String> {
        if method.len() > MAX_SUBJECT {
            return Err(format!(
                "the method name is too long ({} bytes; at most {MAX_SUBJECT})",
                method.len()
            ));
        }
        let text = |pointer: &str, what: &str| -> Result<String, String> {
            let value = params
                .and_then(|p| crate::jsonrpc::pointer(p, pointer))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    format!(
                        "{method} needs params{} ({what}) as a string",
                        pointer.replace('/', ".")
                    )
                })?;
            if value.len() > MAX_SUBJECT {
                return Err(format!(
                    "{method}: the {what} is too long ({} bytes; at most {MAX_SUBJECT})",
                    value.len()
                ));
            }
            Ok(value.to_owned())
        };
        let resource = |pointer: &str| -> Result<Self, String> {
            let uri = text(pointer, "resource URI")?;
            canonical_uri(&uri)
                .map(Self::Resource)
                .map_err(|why| format!("{method}: the resource URI {why}"))
        };
        Ok(match method {
            "resources/read" | "resources/subscribe" => resource("/uri")?,
            "prompts/get" => Self::Prompt(text("/name", "prompt name")?),
            "completion/complete" => match params
                .and_then(|p| crate::jsonrpc::pointer(p, "/ref/type"))
                .and_then(Value::as_str)
            {
                Some("ref/prompt") => Self::Prompt(text("/ref/name", "prompt name")?),
                Some("ref/resource") => resource("/ref/uri")?,
                _ => Self::Other(method.to_owned()),
            },
            m if PROTOCOL_METHODS.contains(&m) || m.starts_with("tasks/") => Self::Protocol,
            m => Self::Other(m.to_owned()),
        })
    }

    /// How messages name it after the upstream: the URI, the prompt or the method.
    pub fn name(&self) -> &str {
        match self {
            Self::Protocol => "",
            Self::Resource(name) | Self::Prompt(name) | Self::Other(name) => name,
        }
    }
}

/// `uri` as a rule sees it: scheme and authority in lower case, escapes of unreserved characters
/// decoded; refused when it has `.` or `..` path segments or an encoded `/` or `\`, which a
/// resolving upstream could turn into another resource.
pub fn canonical_uri(uri: &str) -> Result<String, &'static str> {
    let mut decoded = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        let escape = rest
            .get(at + 1..at + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                decoded.push(char::from(b));
                rest = &rest[at + 3..];
            }
            Some(b'/' | b'\\') => {
                return Err("has an encoded / or \\, which could name another resource");
            }
            _ => {
                decoded.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    decoded.push_str(rest);
    if decoded.contains('\\') {
        return Err("has a \\, which could name another resource");
    }
    let (head, tail) = lowercase_head(&decoded);
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("has . or .. segments, which could name another resource");
    }
    Ok(format!("{head}{tail}"))
}

/// A resource pattern as it is matched: scheme and authority in lower case, like the URIs.
pub(super) fn canonical_pattern(pattern: &str) -> String {
    let (head, tail) = lowercase_head(pattern);
    format!("{head}{tail}")
}

/// `uri` split after its authority (`scheme://host`), that part in lower case.
fn lowercase_head(uri: &str) -> (String, &str) {
    let Some(colon) = uri.find(':') else {
        return (String::new(), uri);
    };
    let after_scheme = &uri[colon + 1..];
    let head_len = match after_scheme.strip_prefix("//") {
        Some(rest) => colon + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len()),
        None => colon + 1,
    };
    (uri[..head_len].to_lowercase(), &uri[head_len..])
}

/// `*` matches any run of characters (`/` included), `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The rule of `name` among `entries`: an exact entry, else the matching glob with the most
/// literal characters (the first of equals).
fn matching<'a>(entries: &'a [(String, Rule)], name: &str) -> Option<&'a Rule> {
    if let Some((_, rule)) = entries.iter().find(|(pattern, _)| pattern == name) {
        return Some(rule);
    }
    let literal = |pattern: &str| pattern.chars().filter(|c| !matches!(c, '*' | '?')).count();
    entries
        .iter()
        .filter(|(pattern, _)| glob_match(pattern, name))
        .fold(None::<&(String, Rule)>, |best, entry| match best {
            Some(best) if literal(&best.0) >= literal(&entry.0) => Some(best),
            _ => Some(entry),
        })
        .map(|(_, rule)| rule)
}

impl Policy {
    /// The rule a request about `subject` meets (`None` for protocol requests).
    pub fn rule_for_subject(&self, subject: &Subject) -> Option<ResolvedRule<'_>> {
        let listed = match subject {
            Subject::Protocol => return None,
            // (Resource patterns are stored with their scheme and authority in lower case.)
            Subject::Resource(uri) => matching(&self.resources, uri),
            Subject::Prompt(name) => matching(&self.prompts, name),
            Subject::Other(_) => None,
        };
        Some(match listed {
            Some(rule) => ResolvedRule { rule, listed: true },
            None => ResolvedRule {
                rule: &self.default_rule,
                listed: false,
            },
        })
    }

    /// Why a request about `subject` to `upstream` is refused, if it is: the text of its
    /// JSON-RPC error.
    pub fn refusal(&self, upstream: &str, subject: &Subject) -> Option<String> {
        let resolved = self.rule_for_subject(subject)?;
        let name = format!("{upstream}.{}", subject.name());
        match resolved.rule {
            Rule::Allow { .. } => None,
            Rule::Deny { reason } => {
                let reason = match (resolved.listed, reason) {
                    (false, _) => NOT_LISTED,
                    (true, Some(reason)) => reason.as_str(),
                    (true, None) => DENIED_WITHOUT_REASON,
                };
                Some(format!("Denied by policy ({name}): {reason}"))
            }
            Rule::RequireApproval(_) => Some(format!(
                "Approval required by policy ({name}), but only tool calls can wait for approval; not run"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match(
            "telegram://account/*",
            "telegram://account/profile"
        ));
        assert!(glob_match("*", "anything/at:all"));
        assert!(glob_match("file:///srv/*.md", "file:///srv/docs/a.md"));
        assert!(glob_match("chat-?", "chat-1"));
        assert!(!glob_match("chat-?", "chat-12"));
        assert!(!glob_match("telegram://account/*", "telegram://chats/1"));
        assert!(!glob_match("a*b", "a-b-c"));
    }

    #[test]
    fn every_request_that_reads_has_a_subject() {
        let of =
            |method: &str, params: Value| Subject::of(method, Some(&params)).expect("a subject");
        assert_eq!(
            of(
                "resources/read",
                json!({"uri": "telegram://account/profile"})
            ),
            Subject::Resource("telegram://account/profile".to_owned())
        );
        assert_eq!(
            of(
                "completion/complete",
                json!({"ref": {"type": "ref/prompt", "name": "p"}})
            ),
            Subject::Prompt("p".to_owned())
        );
        assert_eq!(of("tools/list", json!({})), Subject::Protocol);
        assert_eq!(of("tasks/get", json!({})), Subject::Protocol);
        assert_eq!(
            of("admin/reset", json!({})),
            Subject::Other("admin/reset".to_owned())
        );
    }

    #[test]
    fn uris_are_judged_as_the_upstream_will_read_them() {
        assert_eq!(
            canonical_uri("TELEGRAM://Account/%70rofile").as_deref(),
            Ok("telegram://account/profile")
        );
        assert_eq!(
            canonical_uri("file:///srv/A%20b").as_deref(),
            Ok("file:///srv/A%20b")
        );
        for bad in [
            "file:///srv/../etc/shadow",
            "file:///srv/%2e%2e/etc/shadow",
            "file:///srv/..%2Fetc",
            "file:///srv/x\\..\\y",
            "file:///srv/./x",
        ] {
            assert!(canonical_uri(bad).is_err(), "{bad}");
        }
        let refused = |method: &str, params: Value| Subject::of(method, Some(&params)).is_err();
        assert!(refused(
            "resources/read",
            json!({"uri": ["telegram://account/profile"]})
        ));
        assert!(refused("resources/read", json!({})));
        assert!(refused(
            "prompts/get",
            json!({"name": "x".repeat(MAX_SUBJECT + 1)})
        ));
        assert!(refused(
            "resources/read",
            json!({"uri": "file:///srv/../etc/shadow"})
        ));
    }

    #[test]
    fn listed_subjects_get_their_rule_and_the_rest_the_default() {
        let policy = Policy::parse(
            std::path::Path::new("p.json"),
            r#"{"version": "1", "default": "deny",
                "resources": {"telegram://account/*": {"action": "deny", "reason": "the account"},
                              "telegram://account/public": {}},
                "prompts": {"summarize_*": {"action": "require_approval"}, "greet": {}}}"#,
        )
        .expect("valid");
        let refusal = |subject: Subject| policy.refusal("telegram", &subject);
        assert_eq!(
            refusal(Subject::Resource("telegram://account/profile".to_owned())).as_deref(),
            Some("Denied by policy (telegram.telegram://account/profile): the account")
        );
        assert_eq!(
            refusal(Subject::Resource("telegram://account/public".to_owned())),
            None
        );
        assert_eq!(
            refusal(Subject::Prompt("summarize_chat".to_owned())).as_deref(),
            Some(
                "Approval required by policy (telegram.summarize_chat), but only tool calls can wait for approval; not run"
            )
        );
        assert_eq!(refusal(Subject::Prompt("greet".to_owned())), None);
        assert_eq!(
            refusal(Subject::Other("admin/reset".to_owned())).as_deref(),
            Some(
                "Denied by policy (telegram.admin/reset): not listed in the policy (default: deny)"
            )
        );
        assert_eq!(refusal(Subject::Protocol), None);
    }
}
