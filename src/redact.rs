//! Masks argument fields that look like secrets before a person sees them: on the dashboard (and,
//! as the audit work lands, in emails, logs and exports). A field is masked when its name contains
//! one of the secret words, or when its value is a long unbroken run of base64-like characters (a
//! key or a session string, whatever its field is called). The digest a reviewer approves is taken
//! over the real arguments, so masking never changes what an approval binds to.

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
];

/// A string at least this long made only of base64 / base64url / hex characters reads as a secret.
const SECRET_VALUE_MIN: usize = 40;

/// `value` with secret-looking fields replaced by [`MASK`].
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let shown = if is_secret_name(key) && !value.is_null() {
                        Value::String(MASK.to_owned())
                    } else {
                        redact(value)
                    };
                    (key.clone(), shown)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) if looks_like_secret_value(text) => Value::String(MASK.to_owned()),
        other => other.clone(),
    }
}

fn is_secret_name(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_NAMES.iter().any(|word| folded.contains(word))
}

fn looks_like_secret_value(text: &str) -> bool {
    text.len() >= SECRET_VALUE_MIN
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.')
        })
        && text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_and_values_are_masked_and_the_rest_kept() {
        let shown = redact(&json!({
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
        assert_eq!(redact(&json!(word)), json!(word));
    }
}
