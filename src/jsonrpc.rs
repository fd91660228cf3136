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
