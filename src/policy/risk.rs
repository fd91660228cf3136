//! Risk hints about an upstream's tools, for `airlock check`: which tools look like they hand over
//! credentials, and which say they are destructive. A tool's own annotations come from the server
//! and are untrusted (the Telegram server calls `export_session` read-only), so the name is what
//! counts here; annotations are only reported, never relied on.

use serde_json::Value;

/// Words in a tool's name that suggest it returns or handles a credential.
const CREDENTIAL_WORDS: [&str; 14] = [
    "session",
    "sessions",
    "token",
    "tokens",
    "secret",
    "secrets",
    "password",
    "passwords",
    "credential",
    "credentials",
    "apikey",
    "cookie",
    "cookies",
    "privatekey",
];

/// Whether a tool's name looks credential-exporting (`export_session`, `getApiToken`, ...).
pub fn looks_credential_exporting(tool: &str) -> bool {
    words(tool)
        .iter()
        .any(|w| CREDENTIAL_WORDS.contains(&w.as_str()))
}

/// Notes on a tool as the upstream lists it (its `tools/list` entry) under the rule it gets.
pub fn notes(tool: &Value, rule_allows: bool) -> Vec<String> {
    let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    let hint = |key: &str| {
        tool.pointer(&format!("/annotations/{key}"))
            .and_then(Value::as_bool)
    };
    let mut notes = Vec::new();
    if looks_credential_exporting(name) {
        notes.push(if rule_allows {
            "looks credential-exporting but is allowed: consider require_approval".to_owned()
        } else {
            "looks credential-exporting".to_owned()
        });
        if hint("readOnlyHint") == Some(true) {
            notes.push("claims readOnlyHint (untrusted; Airlock ignores it)".to_owned());
        }
    }
    if rule_allows && hint("destructiveHint") == Some(true) {
        notes.push("says it is destructive but is allowed".to_owned());
    }
    notes
}

/// Lower-case words of `export_session`, `exportSession`, `export-session`.
fn words(name: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            spaced.push(' ');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        spaced.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            ' '
        });
    }
    spaced.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_like_names_are_spotted_in_every_spelling() {
        for name in [
            "export_session",
            "exportSession",
            "get-api-token",
            "read_secrets",
            "getPassword",
        ] {
            assert!(looks_credential_exporting(name), "{name}");
        }
        for name in ["get_chats", "send_message", "tokenize_text", "delete_chat"] {
            assert!(!looks_credential_exporting(name), "{name}");
        }
    }

    #[test]
    fn an_allowed_credential_tool_that_claims_read_only_is_called_out() {
        let tool = json!({"name": "export_session", "annotations": {"readOnlyHint": true}});
        let allowed = notes(&tool, true);
        assert!(
            allowed[0].contains("consider require_approval"),
            "{allowed:?}"
        );
        assert!(allowed[1].contains("readOnlyHint"), "{allowed:?}");
        let gated = notes(&tool, false);
        assert_eq!(gated[0], "looks credential-exporting");
        let destructive = json!({"name": "delete_chat", "annotations": {"destructiveHint": true}});
        assert_eq!(
            notes(&destructive, true),
            ["says it is destructive but is allowed"]
        );
        assert!(notes(&destructive, false).is_empty());
    }
}
