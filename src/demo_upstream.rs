//! The demo MCP server (`airlock demo-upstream`): a Telegram-like upstream with an in-memory fake
//! account, for trying Airlock out and for testing it against a real MCP server over real
//! transports (stdio and Streamable HTTP).
//!
//! It is modelled on the Telegram MCP server, including its weak spots: `export_session` hands out
//! a (fake) session string while its annotations claim it is read-only, which is exactly the kind
//! of catalogue entry a gateway must not trust. `slow_task` exercises progress and cancellation.
//!
//! Invariant: when a call log is configured, every `tools/call` that reaches the server is logged
//! before the tool runs (see [`call_log`]), and a call that cannot be logged does not run.

mod account;
mod call_log;
mod serve;

pub use serve::{serve_http, serve_http_until, serve_stdio};

use std::{
    io,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        tool::ToolCallContext,
        wrapper::Parameters,
    },
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptResult,
        Implementation, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ProgressNotificationParam, PromptMessage, ProtocolVersion, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, Role,
        ServerCapabilities, ServerConfig,
    },
    prompt, prompt_handler, prompt_router,
    service::{RequestContext, ServerInitializeError},
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use self::{
    account::{Account, DEFAULT_MESSAGE_LIMIT},
    call_log::{CallLog, now_rfc3339},
};

/// The name the server gives in `serverInfo`.
pub const SERVER_NAME: &str = "airlock-demo-telegram";

/// The URI of the one resource the server offers.
pub const PROFILE_URI: &str = "telegram://account/profile";

const INSTRUCTIONS: &str = "This is Airlock's demo upstream: a Telegram-like MCP server backed by \
a fake, in-memory account. Nothing you do here reaches Telegram. Use get_chats to find a chat id, \
get_messages to read it and send_message to reply. delete_chat and export_session are there to \
show what a gateway should stop for a human decision.";

const MAX_STEPS: u32 = 1_000;
const MAX_STEP_MS: u64 = 60_000;

/// How the demo upstream runs.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Where to append the call log (JSON lines); no log when `None`.
    pub call_log: Option<PathBuf>,
    /// A JSON object of tool names to descriptions, read at every `tools/list`: a way to play a
    /// server that rewrites a tool's description after it was accepted (a rug pull).
    pub descriptions: Option<PathBuf>,
    /// Speak only the handshake-era revisions (up to 2025-11-25), as servers built before
    /// 2026-07-28 do.
    pub handshake_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write the call log {path}")]
    CallLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    // `getrandom::Error` only implements `std::error::Error` with its `std` feature, which this
    // crate does not enable, so it is shown rather than chained.
    #[error("the operating system gave no random bytes for the fake session string: {0}")]
    Random(getrandom::Error),
    // Boxed: rmcp's handshake error carries a whole JSON-RPC message.
    #[error("the MCP handshake on stdio failed")]
    Handshake(#[source] Box<ServerInitializeError>),
    #[error("the MCP service task failed")]
    Service(#[source] tokio::task::JoinError),
    #[error("cannot read the address the HTTP listener is bound to")]
    LocalAddr(#[source] io::Error),
    #[error("the HTTP server failed")]
    Http(#[source] io::Error),
}

/// The demo server as an rmcp [`ServerHandler`], for serving over any transport. Clones share one
/// fake account, session string and call log, so every session of a process sees the same state.
#[derive(Clone)]
pub struct DemoServer {
    state: Arc<State>,
    tool_router: Arc<ToolRouter<Self>>,
    prompt_router: Arc<PromptRouter<Self>>,
}

struct State {
    account: Mutex<Account>,
    session_string: String,
    call_log: CallLog,
    descriptions: Option<PathBuf>,
    handshake_only: bool,
}

impl DemoServer {
    /// Creates the fake account and session string, opens the call log and writes its `started`
    /// line.
    pub fn new(opts: DemoOptions) -> Result<Self, DemoError> {
        let log_error = |source| DemoError::CallLog {
            path: opts.call_log.clone().unwrap_or_default(),
            source,
        };
        let call_log = CallLog::open(opts.call_log.as_deref()).map_err(log_error)?;
        call_log.started().map_err(log_error)?;
        let session_string = account::fake_session_string().map_err(DemoError::Random)?;
        Ok(Self {
            state: Arc::new(State {
                account: Mutex::new(Account::demo()),
                session_string,
                call_log,
                descriptions: opts.descriptions,
                handshake_only: opts.handshake_only,
            }),
            tool_router: Arc::new(Self::tool_router()),
            prompt_router: Arc::new(Self::prompt_router()),
        })
    }

    fn account(&self) -> MutexGuard<'_, Account> {
        // Every mutation of the account is a single push or remove, so state seen after a panic
        // elsewhere is still consistent.
        self.state
            .account
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct GetChatsArgs {
    /// Maximum number of chats to return, most recently active first. All chats when absent.
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct GetMessagesArgs {
    /// The chat's id, as returned by get_chats.
    chat_id: i64,
    /// Maximum number of recent messages to return (default 20).
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SendMessageArgs {
    /// The chat's id, as returned by get_chats.
    chat_id: i64,
    /// The message text.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct DeleteChatArgs {
    /// The chat's id, as returned by get_chats.
    chat_id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SlowTaskArgs {
    /// Number of steps to run (1 to 1000).
    #[serde(default = "default_steps")]
    steps: u32,
    /// How long each step takes, in milliseconds (at most 60000).
    #[serde(default = "default_step_ms")]
    step_ms: u64,
}

fn default_steps() -> u32 {
    5
}

fn default_step_ms() -> u64 {
    200
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SummarizeChatArgs {
    /// The chat's id, as returned by get_chats.
    chat_id: String,
}

fn error_result(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn unknown_chat(chat_id: i64) -> CallToolResult {
    error_result(format!(
        "Chat {chat_id} not found. Use get_chats to list chat ids."
    ))
}

fn usize_from(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

#[tool_router]
impl DemoServer {
    #[tool(
        description = "Get the list of chats, most recently active first.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    fn get_chats(&self, Parameters(args): Parameters<GetChatsArgs>) -> CallToolResult {
        let chats = self.account().chats(args.limit.map(usize_from));
        CallToolResult::structured(json!({ "chats": chats }))
    }

    #[tool(
        description = "Get the recent messages of a chat, oldest first.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    fn get_messages(&self, Parameters(args): Parameters<GetMessagesArgs>) -> CallToolResult {
        let limit = args.limit.map_or(DEFAULT_MESSAGE_LIMIT, usize_from);
        match self.account().messages(args.chat_id, limit) {
            Some(messages) => {
                CallToolResult::structured(json!({ "chat_id": args.chat_id, "messages": messages }))
            }
            None => unknown_chat(args.chat_id),
        }
    }

    #[tool(
        description = "Send a text message to a chat.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    fn send_message(&self, Parameters(args): Parameters<SendMessageArgs>) -> CallToolResult {
        if args.text.trim().is_empty() {
            return error_result("The message text is empty.");
        }
        match self.account().send(args.chat_id, args.text, now_rfc3339()) {
            Some(message) => CallToolResult::structured(json!({
                "status": "sent",
                "chat_id": args.chat_id,
                "message_id": message.id,
                "date": message.date,
            })),
            None => unknown_chat(args.chat_id),
        }
    }

    #[tool(
        description = "Delete a chat and its whole history.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    fn delete_chat(&self, Parameters(args): Parameters<DeleteChatArgs>) -> CallToolResult {
        match self.account().delete_chat(args.chat_id) {
            Some(title) => CallToolResult::structured(json!({
                "status": "deleted",
                "chat_id": args.chat_id,
                "title": title,
            })),
            None => unknown_chat(args.chat_id),
        }
    }

    // The read-only claim is deliberate: it is what the real server's catalogue says, and the
    // gateway must not take an upstream's word for it.
    #[tool(
        description = "Export the current session string",
        annotations(read_only_hint = true)
    )]
    fn export_session(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(self.state.session_string.clone())])
    }

    #[tool(
        description = "Run a slow job in steps, reporting progress after each step. Stops when \
                       the request is cancelled.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn slow_task(
        &self,
        Parameters(args): Parameters<SlowTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let SlowTaskArgs { steps, step_ms } = args;
        if !(1..=MAX_STEPS).contains(&steps) {
            return error_result(format!("steps must be between 1 and {MAX_STEPS}."));
        }
        if step_ms > MAX_STEP_MS {
            return error_result(format!("step_ms must be at most {MAX_STEP_MS}."));
        }
        // rmcp's own clients put a token on every request, but other clients only ask for
        // progress when they want it, and the spec forbids sending it unasked.
        let progress_token = context.meta.get_progress_token();
        for step in 1..=steps {
            tokio::select! {
                biased;
                () = context.ct.cancelled() => {
                    if let Err(error) = self.state.call_log.cancelled("slow_task") {
                        tracing::warn!(%error, "cannot log the cancellation of slow_task");
                    }
                    // rmcp drops the answer to a cancelled request; this only ends the handler.
                    return error_result(format!("Cancelled after {} of {steps} steps.", step - 1));
                }
                () = tokio::time::sleep(Duration::from_millis(step_ms)) => {}
            }
            if let Some(token) = &progress_token {
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step} of {steps} done"));
                // A lost notification is no reason to fail the job; a gone client shows up as
                // cancellation.
                if let Err(error) = context.peer.notify_progress(progress).await {
                    tracing::debug!(%error, "progress notification not delivered");
                }
            }
        }
        CallToolResult::success(vec![ContentBlock::text(format!("completed {steps} steps"))])
    }
}

#[prompt_router]
impl DemoServer {
    #[prompt(
        name = "summarize_chat",
        description = "Summarise the recent messages of a chat."
    )]
    async fn summarize_chat(
        &self,
        Parameters(args): Parameters<SummarizeChatArgs>,
    ) -> Result<GetPromptResult, McpError> {
        let chat_id: i64 = args.chat_id.trim().parse().map_err(|_| {
            McpError::invalid_params(
                format!("chat_id must be a chat id number, got {:?}", args.chat_id),
                None,
            )
        })?;
        let account = self.account();
        let (Some(title), Some(messages)) = (
            account.chat_title(chat_id),
            account.messages(chat_id, DEFAULT_MESSAGE_LIMIT),
        ) else {
            return Err(McpError::invalid_params(
                format!("chat {chat_id} not found"),
                None,
            ));
        };
        let transcript: String = messages
            .iter()
            .map(|message| format!("[{}] {}: {}\n", message.date, message.from, message.text))
            .collect();
        let request = format!(
            "Summarise this Telegram chat with {title} in a few bullet points, then list anything \
             that still needs an answer.\n\n{transcript}"
        );
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, request)])
                .with_description(format!("Summary of the chat with {title}")),
        )
    }
}

fn profile_resource() -> Resource {
    Resource::new(PROFILE_URI, "account_profile")
        .with_title("Account profile")
        .with_description("The Telegram account this server acts as")
        .with_mime_type("application/json")
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DemoServer {
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.state.handshake_only {
            std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(
                &ProtocolVersion::LATEST_WITH_INITIALIZE,
            ))
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(
            Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                .with_title("Airlock demo Telegram"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    /// The tools, with the descriptions of the `descriptions` file in place of their own.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = self.tool_router.list_all();
        let replaced: std::collections::HashMap<String, String> = self
            .state
            .descriptions
            .as_deref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        for tool in &mut tools {
            if let Some(description) = replaced.get(tool.name.as_ref()) {
                tool.description = Some(description.clone().into());
            }
        }
        let cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            cache_scope: cache_hints.then_some(rmcp::model::CacheScope::Public),
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Logged before routing, so calls to unknown tools and with bad arguments show up too.
        if let Err(error) = self.state.call_log.tool_call(
            &request.name,
            request.arguments.as_ref(),
            context
                .protocol_version()
                .as_ref()
                .map(ProtocolVersion::as_str),
        ) {
            // Running unlogged would let "the upstream never saw it" checks pass falsely.
            tracing::error!(%error, tool = %request.name, "cannot write the call log; refusing the call");
            return Err(McpError::internal_error(
                "the demo upstream cannot write its call log",
                None,
            ));
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(
            vec![profile_resource()],
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != PROFILE_URI {
            return Err(McpError::resource_not_found(
                format!("no resource at {}", request.uri),
                None,
            ));
        }
        let profile = serde_json::to_string_pretty(self.account().profile()).map_err(|error| {
            McpError::internal_error(format!("cannot encode the profile: {error}"), None)
        })?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(profile, PROFILE_URI).with_mime_type("application/json"),
        ])
        .into())
    }
}
