//! Masks argument fields that look like secrets before they are shown or kept: on the dashboard,
//! in the API, in emails, and in the store once a call is over (`tool_calls.args_shown`, which
//! replaces the real arguments when the call leaves `pending`/`forwarding`). A field is masked
//! when its name contains one of the secret words, when its value starts with a configured token
//! prefix, or when its value is a long unbroken run of base64-like characters (a key or a session
//! string, whatever its field is called). The digest a reviewer approves is taken over the real
//! arguments, so masking never changes what an approval binds to.
//!
//! The rules are the built-in ones plus `[redaction]` in the config (see [`RedactionConfig`]).

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// What a masked value shows: the reviewer knows a field is there and hidden.
pub const MASK: &str = "•••• (redacted)";

/// Field-name fragments (compared in lower case, ignoring `-` and `_`) that mark a secret.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    "session",
    "apikey",
    "authorization",
    "privatekey",
    "cookie",
    "credential",
    "accesskey",
];

/// `[redaction]`: rules added to the built-in ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// More field-name fragments that mark a secret (`"iban"` masks `iban`, `payer_IBAN`, ...).
    pub fields: Vec<String>,
    /// Values starting with one of these are secrets whatever their field (`"sk-"`, `"ghp_"`).
    pub prefixes: Vec<String>,
    /// A string at least this long made only of base64 / base64url / hex characters, with a
    /// digit and a letter, reads as a secret; 0 turns that rule off.
    pub long_values: usize,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            fields: Vec::new(),
            prefixes: Vec::new(),
            long_values: 40,
        }
    }
}

impl RedactionConfig {
    /// The first rule that cannot work, as (key, message).
    pub fn problem(&self) -> Option<(String, String)> {
        for (i, field) in self.fields.iter().enumerate() {
            if fold(field).is_empty() {
                return Some((
                    format!("redaction.fields[{i}]"),
                    "is empty: it would mask every field".to_owned(),
                ));
            }
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            if prefix.chars().count() < 3 {
                return Some((
                    format!("redaction.prefixes[{i}]"),
                    format!("{prefix:?} is too short: give at least 3 characters, such as \"sk-\""),
                ));
            }
        }
        None
    }
}

/// The masking rules in force.
#[derive(Debug, Clone)]
pub struct Redactor {
    names: Vec<String>,
    prefixes: Vec<String>,
    long_values: usize,
}

static BUILT_IN: LazyLock<Redactor> = LazyLock::new(|| Redactor::new(&RedactionConfig::default()));

impl Redactor {
    pub fn new(config: &RedactionConfig) -> Self {
        let mut names: Vec<String> = SECRET_NAMES.iter().map(|n| (*n).to_owned()).collect();
        names.extend(config.fields.iter().map(|f| fold(f)));
        Self {
            names,
            prefixes: config.prefixes.clone(),
            long_values: config.long_values,
        }
    }

    /// The built-in rules alone (for rows stored before `args_shown` existed).
    pub fn built_in() -> &'static Self {
        &BUILT_IN
    }

    /// `value` with secret-looking fields replaced by [`MASK`].
    pub fn redact(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| {
                        let shown = if self.is_secret_name(key) && !value.is_null() {
                            Value::String(MASK.to_owned())
                        } else {
                            self.redact(value)
                        };
                        (key.clone(), shown)
                    })
                    .collect::<Map<String, Value>>(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact(v)).collect()),
            Value::String(text) if self.is_secret_value(text) => Value::String(MASK.to_owned()),
            other => other.clone(),
        }
    }

    /// A line of free text (an upstream's stderr) with secret-looking words masked: words that
    /// match the value rules, and the value after a secret name and `:` or `=` (also in debug
    /// dumps such as `"password": String("...")`).
    pub fn redact_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        // After a secret name: whether a `:` or `=` has followed it yet.
        let mut armed: Option<bool> = None;
        for c in text.chars().chain(std::iter::once('\n')) {
            let separator = c.is_whitespace()
                || matches!(
                    c,
                    '"' | '\'' | ',' | ';' | '&' | '(' | ')' | '[' | ']' | '{' | '}' | ':' | '='
                );
            if !separator {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                let shown = match armed {
                    // Wrappers a debug dump puts around the value, and auth schemes.
                    Some(true)
                        if matches!(
                            word.as_str(),
                            "String" | "Some" | "Str" | "Bearer" | "Basic" | "Token" | "token"
                        ) =>
                    {
                        false
                    }
                    Some(true) => {
                        armed = None;
                        true
                    }
                    _ if self.is_secret_name(&word) => {
                        armed = Some(false);
                        false
                    }
                    _ => {
                        armed = None;
                        self.is_secret_value(&word)
                    }
                };
                out.push_str(if shown { MASK } else { &word });
                word.clear();
            }
            if matches!(c, ':' | '=') && armed.is_some() {
                armed = Some(true);
            }
            out.push(c);
        }
        out.pop();
        out
    }

    fn is_secret_name(&self, name: &str) -> bool {
        let folded = fold(name);
        self.names.iter().any(|word| folded.contains(word.as_str()))
    }

    fn is_secret_value(&self, text: &str) -> bool {
        self.prefixes.iter().any(|p| text.starts_with(p.as_str()))
            || (self.long_values > 0 && text.len() >= self.long_values && base64_like(text))
    }
}

/// A name in lower case without `-` and `_`, as names are compared.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn base64_like(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.'))
        && text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_and_values_are_masked_and_the_rest_kept() {
        let shown = Redactor::built_in().redact(&json!({
            "chat_id": 42,
            "text": "hello there, this is an ordinary sentence of some length",
            "Api-Key": "abc",
            "nested": {"sessionString": "x", "list": ["1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"]},
            "password": null,
        }));
        assert_eq!(
            shown,
            json!({
                "chat_id": 42,
                "text": "hello there, this is an ordinary sentence of some length",
                "Api-Key": MASK,
                "nested": {"sessionString": MASK, "list": [MASK]},
                "password": null,
            })
        );
    }

    #[test]
    fn long_words_without_digits_are_not_secrets() {
        let word = "a".repeat(60);
        assert_eq!(Redactor::built_in().redact(&json!(word)), json!(word));
    }

    #[test]
    fn secrets_in_free_text_are_masked() {
        let redactor = Redactor::new(&RedactionConfig {
            prefixes: vec!["sk-".to_owned()],
            ..RedactionConfig::default()
        });
        let session = "1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc";
        assert_eq!(
            redactor.redact_text(&format!(
                "login ok password=hunter2 key: sk-abc session={session} \"{session}\" chat 42"
            )),
            format!("login ok password={MASK} key: {MASK} session={MASK} \"{MASK}\" chat 42")
        );
        assert_eq!(redactor.redact_text("plain words"), "plain words");
        assert_eq!(
            redactor.redact_text("Authorization: Bearer 0123456789abcdef0123"),
            format!("Authorization: Bearer {MASK}")
        );
        assert_eq!(
            redactor
                .redact_text(r#"arguments: Some({"password": String("horse-staple"), "n": 1})"#),
            format!(r#"arguments: Some({{"password": String("{MASK}"), "n": 1}})"#)
        );
    }

    #[test]
    fn configured_fields_and_prefixes_are_masked_too() {
        let redactor = Redactor::new(&RedactionConfig {
            fields: vec!["IBAN".to_owned()],
            prefixes: vec!["sk-".to_owned()],
            long_values: 0,
        });
        let long = "A1".repeat(30);
        assert_eq!(
            redactor.redact(
                &json!({"payer_iban": "DE44", "note": "sk-live-1", "blob": long, "token": 1})
            ),
            json!({"payer_iban": MASK, "note": MASK, "blob": long, "token": MASK})
        );
        let empty = RedactionConfig {
            fields: vec!["_".to_owned()],
            ..RedactionConfig::default()
        };
        assert_eq!(
            empty.problem().map(|p| p.0).as_deref(),
            Some("redaction.fields[0]")
        );
    }
}
