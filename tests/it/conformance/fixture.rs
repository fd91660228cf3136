//! The conformance fixture: an rmcp server offering what the official conformance suite's server
//! scenarios call (the `test_*` tools, `test://` resources and `test_*` prompts its reference
//! server `examples/servers/typescript/everything-server.ts` offers, and the
//! `test_input_required_result_*` tools of its 2026-07-28 multi-round-trip scenarios), on both
//! revisions at once: rmcp serves handshake-era sessions and 2026-07-28 stateless requests on
//! one endpoint. Built from the scenarios' own descriptions (`conformance list` and each
//! scenario's text); the expected strings are theirs.

// Logging, subscriptions and server-to-client requests are deprecated in rmcp for 2026-07-28
// (SEP-2577), and still what the handshake-era scenarios test.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerConfig, ServerRequest,
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::fixture_mrtr::{answered, elicit, input_required, sample};
use super::fixture_tools::{INPUT_REQUIRED_TOOLS, tools};

/// A 1x1 PNG and a minimal WAV, as the reference server sends them.
pub const IMAGE: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
pub const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// Serves `fixture` at `/mcp` on `listener` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, fixture: Fixture) {
    let config = StreamableHttpServerConfig::default();
    let service: StreamableHttpService<Fixture, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(fixture.clone()), Arc::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    if let Err(error) = axum::serve(listener, router).await {
        eprintln!("conformance fixture stopped: {error}");
    }
}

/// The fixture, speaking every revision rmcp knows or, `handshake_only`, none after 2025-11-25
/// (as servers built before 2026-07-28 do).
#[derive(Clone)]
pub struct Fixture {
    pub handshake_only: bool,
    /// Changes to its lists (the `test_trigger_*_change` tools), for `subscriptions/listen`.
    changes: tokio::sync::broadcast::Sender<Change>,
}

/// A list the fixture changed.
#[derive(Clone, Copy)]
enum Change {
    Tools,
    Prompts,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::speaking(false)
    }
}

impl Fixture {
    /// The fixture speaking every revision, or (`handshake_only`) none after 2025-11-25.
    pub fn speaking(handshake_only: bool) -> Self {
        Self {
            handshake_only,
            changes: tokio::sync::broadcast::channel(16).0,
        }
    }

    /// Announces a change: to every listener, and on the session's stream (handshake era).
    fn changed(&self, context: &RequestContext<RoleServer>, change: Change) {
        let stateless = context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
        let (changes, peer) = (self.changes.clone(), context.peer.clone());
        // A moment later: after the call's answer, so the notification goes out on its own (the
        // session's stream), not as part of the call; and after a listener acknowledged just
        // now has subscribed (rmcp runs `listen` only once the acknowledgement is sent, and the
        // suite changes the list as soon as it reads it).
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let _ = changes.send(change);
            if stateless {
                return;
            }
            let _ = match change {
                Change::Tools => peer.notify_tool_list_changed().await,
                Change::Prompts => peer.notify_prompt_list_changed().await,
            };
        });
    }
}

/// A JSON value as an rmcp model type; the fixture's own literals, so a mismatch is a bug here.
pub(super) fn model<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the fixture's JSON matches rmcp's model")
}

/// A complete result, saying so (`resultType`, which 2026-07-28 requires and earlier revisions
/// ignore), with caching hints where 2026-07-28 wants them.
fn complete<T: serde::de::DeserializeOwned>(mut result: Value, cacheable: bool) -> T {
    result["resultType"] = json!("complete");
    if cacheable {
        result["ttlMs"] = json!(0);
        result["cacheScope"] = json!("public");
    }
    model(result)
}

fn call_result(result: Value) -> CallToolResponse {
    CallToolResponse::Complete(complete(result, false))
}

pub(super) fn text_result(text: impl Into<String>) -> CallToolResponse {
    call_result(json!({"content": [{"type": "text", "text": text.into()}]}))
}

/// The client's capabilities: a 2026-07-28 request declares them in its `_meta`, a session in
/// its `initialize`.
pub(super) fn client_capabilities(context: &RequestContext<RoleServer>) -> Value {
    let meta = serde_json::to_value(&context.meta).unwrap_or_default();
    match meta.get("io.modelcontextprotocol/clientCapabilities") {
        Some(declared) => declared.clone(),
        None => context
            .peer
            .peer_info()
            .and_then(|info| serde_json::to_value(&info.capabilities).ok())
            .unwrap_or_else(|| json!({})),
    }
}

impl Fixture {
    /// The handshake-era tools that ask the client something mid-call: the client's answer (or
    /// why there is none) in the result text.
    async fn ask_client(
        &self,
        context: &RequestContext<RoleServer>,
        request: Value,
        answer: impl Fn(&Value) -> String,
    ) -> CallToolResponse {
        let request: ServerRequest = model(request);
        match context.peer.send_request(request).await {
            Ok(result) => {
                let result = serde_json::to_value(result).unwrap_or_default();
                text_result(answer(&result))
            }
            Err(error) => text_result(format!("Not supported or error: {error}")),
        }
    }
}

fn elicitation_text(prefix: &'static str) -> impl Fn(&Value) -> String {
    move |result| {
        format!(
            "{prefix}: action={}, content={}",
            result["action"].as_str().unwrap_or("unknown"),
            result.get("content").cloned().unwrap_or(json!({}))
        )
    }
}

impl ServerHandler for Fixture {
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.handshake_only {
            std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(model(json!({
            "tools": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "prompts": {"listChanged": true},
            "logging": {},
            "completions": {}
        })))
        .with_server_info(rmcp::model::Implementation::new(
            "airlock-conformance-fixture",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut listed = ListToolsResult::with_all_items(tools());
        listed.result_type = Some(rmcp::model::ResultType::COMPLETE);
        listed.ttl_ms = Some(0);
        listed.cache_scope = Some(rmcp::model::CacheScope::Public);
        Ok(listed)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.clone().unwrap_or_default();
        let argument = |key: &str| {
            arguments
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(match request.name.as_ref() {
            "test_simple_text" => text_result("This is a simple text response for testing."),
            "test_image_content" => call_result(json!({
                "content": [{"type": "image", "data": IMAGE, "mimeType": "image/png"}]
            })),
            "test_audio_content" => call_result(json!({
                "content": [{"type": "audio", "data": AUDIO, "mimeType": "audio/wav"}]
            })),
            "test_embedded_resource" => call_result(json!({
                "content": [{"type": "resource", "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content."
                }}]
            })),
            "test_multiple_content_types" => call_result(json!({
                "content": [
                    {"type": "text", "text": "Multiple content types test:"},
                    {"type": "image", "data": IMAGE, "mimeType": "image/png"},
                    {"type": "resource", "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": "{\"test\":\"data\",\"value\":123}"
                    }}
                ]
            })),
            "test_tool_with_logging" => {
                for line in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ] {
                    let _ = context
                        .peer
                        .notify_logging_message(model(json!({"level": "info", "data": line})))
                        .await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                text_result("Tool with logging executed successfully")
            }
            "test_tool_with_progress" => {
                let token = context.meta.get_progress_token();
                for step in [0, 50, 100] {
                    if let Some(token) = &token {
                        let _ = context
                            .peer
                            .notify_progress(model(json!({
                                "progressToken": token,
                                "progress": step,
                                "total": 100,
                                "message": format!("Completed step {step} of 100")
                            })))
                            .await;
                    }
                    if step < 100 {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                text_result(token.map_or_else(
                    || "no progress token".to_owned(),
                    |token| serde_json::to_string(&token).unwrap_or_default(),
                ))
            }
            "test_error_handling" => call_result(json!({
                "content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}],
                "isError": true
            })),
            "test_sampling" => {
                let prompt = argument("prompt");
                self.ask_client(&context, sample(&prompt, 100), |result| {
                    format!(
                        "LLM response: {}",
                        result["content"]["text"].as_str().unwrap_or("No response")
                    )
                })
                .await
            }
            "test_elicitation" => {
                let message = argument("message");
                let request = json!({
                    "method": "elicitation/create",
                    "params": {
                        "mode": "form",
                        "message": message,
                        "requestedSchema": {
                            "type": "object",
                            "properties": {"response": {"type": "string", "description": "User's response"}},
                            "required": ["response"]
                        }
                    }
                });
                self.ask_client(&context, request, elicitation_text("User response"))
                    .await
            }
            "test_elicitation_sep1034_defaults" => {
                let request = super::fixture_tools::sep1034_request();
                self.ask_client(&context, request, elicitation_text("Elicitation completed"))
                    .await
            }
            "test_elicitation_sep1330_enums" => {
                let request = super::fixture_tools::sep1330_request();
                self.ask_client(&context, request, elicitation_text("Elicitation completed"))
                    .await
            }
            "json_schema_2020_12_tool" => text_result(format!(
                "JSON Schema 2020-12 tool called with: {}",
                Value::Object(arguments.clone())
            )),
            "test_trigger_tool_change" => {
                self.changed(&context, Change::Tools);
                text_result("The tool list changed")
            }
            "test_trigger_prompt_change" => {
                self.changed(&context, Change::Prompts);
                text_result("The prompt list changed")
            }
            "test_missing_capability" => {
                if client_capabilities(&context).get("sampling").is_none() {
                    return Err(ErrorData::new(
                        rmcp::model::ErrorCode(-32021),
                        "this tool needs the sampling capability, which the request did not declare",
                        Some(json!({"requiredCapabilities": {"sampling": {}}})),
                    ));
                }
                text_result("The client declared sampling")
            }
            "test_logging_tool" => {
                let meta = serde_json::to_value(&context.meta).unwrap_or_default();
                if let Some(level) = meta.get("io.modelcontextprotocol/logLevel") {
                    let line = json!({"level": level, "data": "a line at the level asked for"});
                    let _ = context.peer.notify_logging_message(model(line)).await;
                }
                text_result("Logged only if asked")
            }
            name if INPUT_REQUIRED_TOOLS.contains(&name) => {
                return self.input_required_call(&request, &context);
            }
            name => {
                return Err(ErrorData::invalid_params(
                    format!("no such tool: {name}"),
                    None,
                ));
            }
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(complete(
            json!({"resources": [
                {"uri": "test://static-text", "name": "static-text", "title": "Static Text Resource",
                 "description": "A static text resource for testing", "mimeType": "text/plain"},
                {"uri": "test://static-binary", "name": "static-binary", "title": "Static Binary Resource",
                 "description": "A static binary resource (image) for testing", "mimeType": "image/png"},
                {"uri": "test://watched-resource", "name": "watched-resource", "title": "Watched Resource",
                 "description": "A resource that auto-updates every 3 seconds", "mimeType": "text/plain"}
            ]}),
            true,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(complete(
            json!({"resourceTemplates": [
                {"uriTemplate": "test://template/{id}/data", "name": "template",
                 "title": "Resource Template", "description": "A resource template with parameter substitution",
                 "mimeType": "application/json"}
            ]}),
            true,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => json!({"uri": uri, "mimeType": "text/plain",
                "text": "This is the content of the static text resource."}),
            "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": IMAGE}),
            "test://watched-resource" => json!({"uri": uri, "mimeType": "text/plain",
                "text": "Watched resource content"}),
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
            {
                Some(id) if !id.is_empty() && !id.contains('/') => json!({
                    "uri": uri,
                    "mimeType": "application/json",
                    "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()
                }),
                _ => {
                    return Err(ErrorData::invalid_params(
                        "Resource not found",
                        Some(json!({"uri": uri})),
                    ));
                }
            },
        };
        Ok(ReadResourceResponse::Complete(complete(
            json!({"contents": [contents]}),
            true,
        )))
    }

    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(complete(
            json!({"prompts": super::fixture_tools::prompts()}),
            true,
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let argument = |key: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|arguments| arguments.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let user = |content: Value| json!({"role": "user", "content": content});
        let text = |text: String| user(json!({"type": "text", "text": text}));
        let messages = match request.name.as_str() {
            "test_simple_prompt" => json!([text("This is a simple prompt for testing.".into())]),
            "test_prompt_with_arguments" => json!([text(format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                argument("arg1"),
                argument("arg2")
            ))]),
            "test_prompt_with_embedded_resource" => json!([
                user(json!({"type": "resource", "resource": {
                    "uri": argument("resourceUri"),
                    "mimeType": "text/plain",
                    "text": "Embedded resource content for testing."
                }})),
                text("Please process the embedded resource above.".into())
            ]),
            "test_prompt_with_image" => json!([
                user(json!({"type": "image", "data": IMAGE, "mimeType": "image/png"})),
                text("Please analyze the image above.".into())
            ]),
            "test_input_required_result_prompt" => {
                if !answered(&request.input_responses, &["user_context"]) {
                    return Ok(GetPromptResponse::InputRequired(input_required(
                        json!({"user_context": elicit("What context should the prompt use?", "context", "string")}),
                        None,
                    )));
                }
                json!([text("A prompt made with the context given.".into())])
            }
            name => {
                return Err(ErrorData::invalid_params(
                    format!("no such prompt: {name}"),
                    None,
                ));
            }
        };
        Ok(GetPromptResponse::Complete(complete(
            json!({"messages": messages}),
            false,
        )))
    }

    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.changes.subscribe();
        loop {
            let change = tokio::select! {
                () = context.cancelled() => return Ok(()),
                change = changes.recv() => change,
            };
            let notification = match change {
                Ok(Change::Tools) => {
                    rmcp::model::ServerNotification::ToolListChangedNotification(Default::default())
                }
                Ok(Change::Prompts) => {
                    rmcp::model::ServerNotification::PromptListChangedNotification(
                        Default::default(),
                    )
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            };
            // A notification the listener did not ask for is the sink's to leave out.
            let _ = context.sink().send(notification).await;
        }
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        Ok(complete(
            json!({"completion": {"values": [], "total": 0, "hasMore": false}}),
            false,
        ))
    }
}
