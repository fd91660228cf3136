//! MCP tasks for parked calls, as the agent sees them, in both forms:
//! - **Core** (2025-11-25 sessions). Airlock advertises `capabilities.tasks` (merged with the
//!   upstream's own) and lists the tools that can park with `execution.taskSupport: "optional"`;
//!   a parked call asked for with `params.task` is answered at once with a `CreateTaskResult`
//!   (`{task}`: `working`, the waiting text as its status message). `tasks/get` says the call's
//!   state; once it is approved, the first `tasks/get` (on any instance) runs it inside that
//!   request and keeps the result in this process's memory until a `tasks/result` takes it, once
//!   (results are never stored); `tasks/result` waits for the decision like a held request with no
//!   `hold`; `tasks/cancel` withdraws a call not yet sent; `tasks/list` lists the token's tasks.
//! - **Extension** (2026-07-28, `io.modelcontextprotocol/tasks`, when the request's
//!   `_meta` client capabilities declare it). A parked call is answered with `resultType: "task"`;
//!   `tasks/get` carries the result inline once the call has run (the first `tasks/get` after the
//!   approval runs it), a refusal as a completed `isError` result; `tasks/cancel` and
//!   `tasks/update` are acknowledged with an empty result.
//!
//! A task is visible only to the agent token that created it: any other `taskId` is answered as
//! unknown (-32602), or passed to the upstream when the upstream runs tasks of its own.

use serde_json::{Value, json};

use super::forward::CallContext;
use super::parked::ParkedCall;
use super::reply::Reply;
use crate::app::AppState;
use crate::approval::{Parked, TaskCall};
use crate::jsonrpc;
use crate::metrics::Outcome;

mod memory;
mod methods;
mod view;

pub use memory::{TaskResults, UpstreamTasks};
pub use methods::result_elsewhere;
use methods::{cancel, get, get_inline, list, result};
use view::view;

/// The handshake revision whose clients are offered tasks (2026-07-28 has them as an extension).
pub const TASKS_VERSION: &str = "2025-11-25";
/// The 2026-07-28 extension's name.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// Which form of MCP tasks a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// 2025-11-25's `tasks` capability, `params.task`, `tasks/result` and `tasks/list`.
    Core,
    /// 2026-07-28's `io.modelcontextprotocol/tasks` extension: results inline in `tasks/get`.
    Extension,
}

/// The `_meta` key naming the task a result belongs to.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// The `_meta` key of a `CreateTaskResult` with a text for the model while the task runs.
const IMMEDIATE_RESPONSE: &str = "io.modelcontextprotocol/model-immediate-response";
/// How often a client is asked to poll, in milliseconds.
const POLL_INTERVAL_MS: u64 = 5000;
/// Tasks per `tasks/list` page.
const LIST_PAGE: u32 = 100;

/// `answer`, naming the task it is the result of (when there is one).
pub fn relate(task: Option<&str>, mut answer: Value) -> Value {
    if let Some(task) = task
        && let Some(Value::Object(result)) = answer.get_mut("result")
    {
        let meta = result.entry("_meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            // An upstream's `_meta` that is not an object cannot carry the key; it gives way.
            *meta = json!({});
        }
        meta[RELATED_TASK] = json!({"taskId": task});
    }
    answer
}

/// Whether a `tools/call` asks to be run as a task (core), or may be (the extension declared in
/// the request's own client capabilities).
pub fn wants_task(ctx: &CallContext, msg: &Value) -> bool {
    match ctx.tasks {
        Some(Flavor::Core) => {
            crate::jsonrpc::pointer(msg, "/params/task").is_some_and(Value::is_object)
        }
        Some(Flavor::Extension) => crate::jsonrpc::pointer(
            msg,
            "/params/_meta/io.modelcontextprotocol~1clientCapabilities/extensions",
        )
        .and_then(|extensions| extensions.get(EXTENSION))
        .is_some(),
        None => false,
    }
}

/// Adds the tasks extension to a 2026-07-28 `server/discover` result.
pub fn advertise_extension(result: &mut Value) {
    if !result.get("capabilities").is_some_and(Value::is_object) {
        result["capabilities"] = json!({});
    }
    let capabilities = &mut result["capabilities"];
    if !capabilities.get("extensions").is_some_and(Value::is_object) {
        capabilities["extensions"] = json!({});
    }
    capabilities["extensions"][EXTENSION] = json!({});
}

/// Adds Airlock's task support to an `initialize` result (keeping the upstream's own).
pub fn advertise(result: &mut Value) {
    let Some(Value::Object(capabilities)) = result.get_mut("capabilities") else {
        result["capabilities"] = json!({});
        return advertise(result);
    };
    let tasks = capabilities.entry("tasks").or_insert_with(|| json!({}));
    if !tasks.is_object() {
        *tasks = json!({});
    }
    for key in ["list", "cancel"] {
        if tasks.get(key).is_none() {
            tasks[key] = json!({});
        }
    }
    if !tasks.get("requests").is_some_and(Value::is_object) {
        tasks["requests"] = json!({});
    }
    if !tasks["requests"].get("tools").is_some_and(Value::is_object) {
        tasks["requests"]["tools"] = json!({});
    }
    tasks["requests"]["tools"]["call"] = json!({});
}

/// Marks a `tools/list` entry as runnable as a task (a call of it may wait for a human), unless
/// it already says it can be.
pub fn offer_on_tool(tool: &mut Value) {
    let support = crate::jsonrpc::pointer(tool, "/execution/taskSupport").and_then(Value::as_str);
    if matches!(support, Some("optional" | "required")) {
        return;
    }
    if !tool.get("execution").is_some_and(Value::is_object) {
        tool["execution"] = json!({});
    }
    tool["execution"]["taskSupport"] = json!("optional");
}

/// The answer to a `tools/call` asked for as a task whose call parked (or joined): the task.
pub async fn created(call: &ParkedCall, parked: Parked) -> Reply {
    let app = &call.app;
    let id = call.msg.get("id").cloned().unwrap_or(Value::Null);
    let made = async {
        let row = app
            .store
            .call(&parked.id)
            .await?
            .ok_or(crate::store::StoreError::Query {
                context: "read a parked call for its task",
                source: sqlx::Error::RowNotFound,
            })?;
        let (task_id, task) = app
            .approvals
            .create_task(&row, &call.ctx.token_sha256, &call.ctx.task_key)
            .await?;
        Ok::<_, crate::store::StoreError>((task_id, TaskCall { task, call: row }))
    };
    let (task_id, task) = match made.await {
        Ok(made) => made,
        Err(e) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot record a task");
            return Reply::One(jsonrpc::error_response(
                id,
                jsonrpc::INTERNAL_ERROR,
                "the approval queue cannot record the task right now; the call waits for \
                 approval: call it again without a task to wait for it",
            ));
        }
    };
    drop(parked);
    tracing::info!(call = %task.call.id, "answered with a task");
    app.metrics
        .tool_call(&call.ctx.gateway.name, &call.tool, Outcome::Waiting);
    let flavor = call.ctx.tasks.unwrap_or(Flavor::Core);
    let view = view(app, flavor, &task_id, &task);
    let result = match flavor {
        Flavor::Core => {
            let message = view["statusMessage"].clone();
            json!({"task": view, "_meta": {IMMEDIATE_RESPONSE: message}})
        }
        Flavor::Extension => {
            let mut view = view;
            view["resultType"] = json!("task");
            view
        }
    };
    Reply::One(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Answers `tasks/*` requests for Airlock's tasks (the client's form of them); gives back the request (to forward upstream)
/// when it is not one, or names a task that is not Airlock's and the upstream runs tasks.
pub async fn answer(
    app: &AppState,
    ctx: CallContext,
    msg: Value,
) -> Result<Reply, (CallContext, Value)> {
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ours = match ctx.tasks {
        Some(Flavor::Core) => {
            matches!(
                method,
                "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/list"
            )
        }
        Some(Flavor::Extension) => matches!(method, "tasks/get" | "tasks/cancel" | "tasks/update"),
        None => false,
    };
    if !ours {
        return Err((ctx, msg));
    }
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if method == "tasks/list" {
        if upstream_runs_tasks(&ctx).await {
            return Err((ctx, msg));
        }
        return Ok(Reply::One(list(app, &ctx, id, &msg).await));
    }
    let Some(task_id) = crate::jsonrpc::pointer(&msg, "/params/taskId").and_then(Value::as_str)
    else {
        return Ok(Reply::One(jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("{method} needs params.taskId"),
        )));
    };
    let task_id = task_id.to_owned();
    let found = match app.approvals.task(&task_id, &ctx.token_sha256).await {
        Ok(found) => found.filter(|t| t.call.upstream == ctx.gateway.name),
        Err(e) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot read a task");
            return Ok(Reply::One(jsonrpc::error_response(
                id,
                jsonrpc::INTERNAL_ERROR,
                "the approval queue cannot be read right now; try again",
            )));
        }
    };
    let Some(task) = found else {
        let upstreams = !is_airlock_task_id(&task_id)
            && app
                .upstream_tasks
                .owned_by(&ctx.gateway.name, &task_id, &ctx.token_sha256);
        if upstreams && upstream_runs_tasks(&ctx).await {
            return Err((ctx, msg));
        }
        return Ok(Reply::One(jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            "Failed to retrieve task: Task not found",
        )));
    };
    let stateless = ctx.stateless;
    let answer = match (ctx.tasks, method) {
        (Some(Flavor::Extension), "tasks/get") => get_inline(app, ctx, id, &task_id, task).await,
        (Some(Flavor::Extension), "tasks/cancel") => {
            cancel(app, &ctx, id.clone(), &task_id, task).await;
            json!({"jsonrpc": "2.0", "id": id, "result": {}})
        }
        // No call of Airlock's ever asks for input: an update has nothing to answer.
        (Some(Flavor::Extension), _) => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        (_, "tasks/get") => get(app, ctx, id, &task_id, task).await,
        (_, "tasks/result") => return Ok(result(app, ctx, id, &task_id, task).await),
        _ => cancel(app, &ctx, id, &task_id, task).await,
    };
    Ok(Reply::One(finished(stateless, answer)))
}

/// `answer` as the revision the client speaks writes a final response.
fn finished(stateless: bool, mut answer: Value) -> Value {
    if stateless {
        crate::protocol::mark_complete(&mut answer);
    }
    answer
}

/// Whether `id` is shaped like the ids Airlock makes (never sent to an upstream).
fn is_airlock_task_id(id: &str) -> bool {
    id.strip_prefix("task_")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the upstream declared task support of its own.
async fn upstream_runs_tasks(ctx: &CallContext) -> bool {
    ctx.conn
        .ready()
        .await
        .is_ok_and(|init| crate::jsonrpc::pointer(&init, "/capabilities/tasks").is_some())
}
