//! JSON-RPC 2.0 as MCP uses it, over `serde_json::Value`s (with `preserve_order`), so that messages
//! pass through Airlock with every member intact. Only what routing needs is looked at: the kind of
//! message, its id and its method.

use serde_json::{Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// What a message is, judged by its members.
#[derive(Debug, PartialEq)]
pub enum Kind<'a> {
    Request { id: &'a Value, method: &'a str },
    Notification { method: &'a str },
    Response { id: &'a Value },
}

/// Classifies a message, or says why it is not a valid JSON-RPC 2.0 message.
pub fn classify(msg: &Value) -> Result<Kind<'_>, &'static str> {
    let Some(obj) = msg.as_object() else {
        return Err("a JSON-RPC message must be a JSON object");
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("\"jsonrpc\" must be \"2.0\"");
    }
    if let Some(params) = obj.get("params")
        && !(params.is_object() || params.is_array())
    {
        return Err("\"params\" must be an object or an array");
    }
    let id = obj.get("id");
    if let Some(id) = id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err("\"id\" must be a string or an integer");
    }
    match (obj.get("method"), id) {
        (Some(Value::String(method)), Some(id)) => Ok(Kind::Request { id, method }),
        (Some(Value::String(method)), None) => Ok(Kind::Notification { method }),
        (Some(_), _) => Err("\"method\" must be a string"),
        (None, Some(id)) => match (obj.get("result"), obj.get("error")) {
            (Some(_), None) | (None, Some(_)) => Ok(Kind::Response { id }),
            _ => Err("a response needs exactly one of \"result\" and \"error\""),
        },
        (None, None) => Err("a message needs a \"method\" or an \"id\""),
    }
}

/// `serde_json::Value::pointer` without its allocations (it unescapes every token of the path
/// into a new string): the proxy looks up a handful of members in every message.
pub fn pointer<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = value;
    for token in tokens(path)? {
        at = match at {
            Value::Object(map) => map.get(token.as_ref())?,
            Value::Array(list) => list.get(index(&token)?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// [`pointer`], mutable.
pub fn pointer_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut at = value;
    for token in tokens(path)? {
        at = match at {
            Value::Object(map) => map.get_mut(token.as_ref())?,
            Value::Array(list) => list.get_mut(index(&token)?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// The member names a JSON pointer walks (none for `""`, the whole value), or `None` when it
/// does not start with `/`.
fn tokens(path: &str) -> Option<impl Iterator<Item = std::borrow::Cow<'_, str>>> {
    let rest = match path {
        "" => None,
        path => Some(path.strip_prefix('/')?),
    };
    Some(
        rest.into_iter()
            .flat_map(|rest| rest.split('/'))
            .map(unescape),
    )
}

/// A JSON pointer token as the member name it stands for (`~1` is `/`, `~0` is `~`).
fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~").into()
    } else {
        token.into()
    }
}

/// An array index as RFC 6901 writes one (no sign, no leading zeros).
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

/// A stable map key for a request id (`1` and `"1"` are different ids).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

pub fn error_response(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A `tools/call` result the model reads and can act on (`isError: true`, one text content).
pub fn tool_error_result(id: Value, text: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "content": [{"type": "text", "text": text.into()}],
        "isError": true,
    }})
}

pub fn response(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// `params._meta.progressToken` of a request, if it has one.
pub fn progress_token(msg: &Value) -> Option<&Value> {
    msg.get("params")?.get("_meta")?.get("progressToken")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_find_what_serde_json_finds() {
        let v = json!({"a": {"b/c": [1, {"~d": true}], "": 2}, "e": null});
        for path in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/~0d",
            "/a/",
            "/e",
            "/x",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/9",
            "a",
            "/e/f",
        ] {
            assert_eq!(pointer(&v, path), v.pointer(path), "{path}");
            let mut ours = v.clone();
            let mut theirs = v.clone();
            assert_eq!(
                pointer_mut(&mut ours, path),
                theirs.pointer_mut(path),
                "{path}"
            );
        }
    }

    #[test]
    fn classifies_the_three_kinds_and_rejects_the_rest() {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
        assert!(matches!(
            classify(&req),
            Ok(Kind::Request {
                method: "tools/list",
                ..
            })
        ));
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        assert!(matches!(classify(&note), Ok(Kind::Notification { .. })));
        let resp = json!({"jsonrpc":"2.0","id":"a","result":{}});
        assert!(matches!(classify(&resp), Ok(Kind::Response { .. })));
        for bad in [
            json!([]),
            json!({"id":1,"method":"x"}),
            json!({"jsonrpc":"2.0","id":null,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":3}),
            json!({"jsonrpc":"2.0","id":1}),
            json!({"jsonrpc":"2.0","id":1,"result":1,"error":{}}),
            json!({"jsonrpc":"2.0","method":7}),
        ] {
            assert!(classify(&bad).is_err(), "{bad}");
        }
    }
}
