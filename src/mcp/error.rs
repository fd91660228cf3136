//! The one error of the MCP face: a request refused before it reaches a session or an upstream.
//! It is an HTTP status with a JSON-RPC error body the client can show (the contract's order of
//! checks and codes is in DESIGN.md; `endpoint` makes them). Answers that are JSON-RPC errors
//! on an accepted request (an upstream that is down, a bad `params`) are replies, not this.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::jsonrpc;

#[derive(Debug, Clone)]
pub struct McpError {
    status: StatusCode,
    code: i64,
    message: String,
    data: Option<Box<Value>>,
    /// The refused request's id (`null` when it had none, or was not read yet).
    id: Box<Value>,
    /// A 401 that asks for a bearer token (`WWW-Authenticate`).
    challenge: bool,
}

impl McpError {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: None,
            id: Box::new(Value::Null),
            challenge: false,
        }
    }

    /// 400, -32600: the message is not a request this endpoint takes.
    pub fn invalid(why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            format!("Invalid Request: {why}"),
        )
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, jsonrpc::INVALID_REQUEST, message)
        }
    }

    /// The error with `data` (what a client can pick from, for example).
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(Box::new(data));
        self
    }

    /// The error as the answer to the request with `id` (unless it already names one).
    pub fn answering(mut self, id: Value) -> Self {
        if self.id.is_null() {
            *self.id = id;
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON-RPC error response, to the request's id when it was read.
    pub fn body(&self) -> Value {
        let mut body = jsonrpc::error_response((*self.id).clone(), self.code, self.message.clone());
        if let Some(data) = &self.data {
            body["error"]["data"] = (**data).clone();
        }
        body
    }
}

impl IntoResponse for McpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"airlock\""),
            );
        }
        response
    }
}
