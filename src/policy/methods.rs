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
    /// The subject of a request with this `method` and `params`.
    pub fn of(method: &str, params: Option<&Value>) -> Self {
        let text = |pointer: &str| {
            params
                .and_then(|p| p.pointer(pointer))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match method {
            "resources/read" | "resources/subscribe" => Self::Resource(text("/uri")),
            "prompts/get" => Self::Prompt(text("/name")),
            "completion/complete" => match params
                .and_then(|p| p.pointer("/ref/type"))
                .and_then(Value::as_str)
            {
                Some("ref/prompt") => Self::Prompt(text("/ref/name")),
                Some("ref/resource") => Self::Resource(text("/ref/uri")),
                _ => Self::Other(method.to_owned()),
            },
            m if PROTOCOL_METHODS.contains(&m) || m.starts_with("tasks/") => Self::Protocol,
            m => Self::Other(m.to_owned()),
        }
    }

    /// How messages name it after the upstream: the URI, the prompt or the method.
    pub fn name(&self) -> &str {
        match self {
            Self::Protocol => "",
            Self::Resource(name) | Self::Prompt(name) | Self::Other(name) => name,
        }
    }
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
        let of = |method: &str, params: Value| Subject::of(method, Some(&params));
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
