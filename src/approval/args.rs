//! A call's arguments as approval binds to them: the text the agent sent (forwarded unchanged) and
//! the SHA-256 of their canonical form (object keys sorted, no whitespace), so the digest does not
//! depend on key order or spacing, and any change of a value changes it.

use serde_json::Value;

use crate::secrets::sha256_hex;

/// The hex SHA-256 of the canonical form of `args`.
pub fn digest(args: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(args, &mut canonical);
    sha256_hex(canonical.as_bytes())
}

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
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&json!({"a": "hi", "b": [1, {"x": 1, "y": 3}]}))
        );
        assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": "1"})));
        assert_eq!(digest(&json!({})), sha256_hex(b"{}"));
    }
}
