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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::forward::CallContext;
use super::parked::{self, ParkedCall};
use super::reply::Reply;
use crate::app::AppState;
use crate::approval::{Fate, Parked, TaskCall};
use crate::domain::{Actor, CallStatus, Timestamp};
use crate::jsonrpc;
use crate::metrics::Outcome;
use crate::policy::{Policy, Rule};

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
/// Results held for tasks at most (each needed an approval); beyond, the soonest to expire goes.
const KEPT_RESULTS: usize = 10_000;

/// Results of calls run for a task in this process, until their `tasks/result` takes them (once)
/// or their task's lifetime ends. Never stored.
#[derive(Default)]
pub struct TaskResults(Mutex<HashMap<String, (Value, Instant)>>);

impl TaskResults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Value, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, task: &str, response: Value, until: Instant) {
        let mut results = self.lock();
        let now = Instant::now();
        results.retain(|_, (_, until)| *until > now);
        if results.len() >= KEPT_RESULTS
            && let Some(soonest) = results
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(task, _)| task.clone())
        {
            results.remove(&soonest);
        }
        results.insert(task.to_owned(), (response, until));
    }

    fn take(&self, task: &str) -> Option<Value> {
        self.lock()
            .remove(task)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(response, _)| response)
    }
}

/// The upstream's own tasks that agents created through Airlock, and which token created each:
/// only that token may reach one (`tasks/get`, `tasks/result`, `tasks/cancel`), and `tasks/list`
/// answers show each token only its own. Kept in this process (sessions live in one anyway);
/// a task Airlock did not see created is reachable by nobody.
#[derive(Default)]
pub struct UpstreamTasks(Mutex<HashMap<(String, String), (String, Instant)>>);

/// How long Airlock remembers who created an upstream's task, and how many it remembers.
const UPSTREAM_TASK_MEMORY: Duration = Duration::from_secs(24 * 3600);
const UPSTREAM_TASKS: usize = 100_000;

impl UpstreamTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes the task a forwarded `tools/call` answered with, if it did.
    pub fn record(&self, upstream: &str, token_sha256: &str, response: &Value) {
        let Some(task) = response
            .pointer("/result/task/taskId")
            .or_else(|| {
                (response.pointer("/result/resultType") == Some(&json!("task")))
                    .then(|| response.pointer("/result/taskId"))
                    .flatten()
            })
            .and_then(Value::as_str)
        else {
            return;
        };
        let mut tasks = self.lock();
        let now = Instant::now();
        tasks.retain(|_, (_, at)| now.duration_since(*at) < UPSTREAM_TASK_MEMORY);
        if tasks.len() < UPSTREAM_TASKS {
            tasks.insert(
                (upstream.to_owned(), task.to_owned()),
                (token_sha256.to_owned(), now),
            );
        }
    }

    fn owned_by(&self, upstream: &str, task: &str, token_sha256: &str) -> bool {
        self.lock()
            .get(&(upstream.to_owned(), task.to_owned()))
            .is_some_and(|(owner, _)| owner == token_sha256)
    }

    /// Leaves out of an upstream's `tasks/list` answer the tasks `token_sha256` did not create.
    pub fn filter_list(&self, upstream: &str, token_sha256: &str, response: &mut Value) {
        let Some(Value::Array(listed)) = response.pointer_mut("/result/tasks") else {
            return;
        };
        listed.retain(|task| {
            task.get("taskId")
                .and_then(Value::as_str)
                .is_some_and(|id| self.owned_by(upstream, id, token_sha256))
        });
    }
}

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
        Some(Flavor::Core) => msg.pointer("/params/task").is_some_and(Value::is_object),
        Some(Flavor::Extension) => msg
            .pointer("/params/_meta/io.modelcontextprotocol~1clientCapabilities/extensions")
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

/// Marks the tools `policy` parks as runnable as tasks in a `tools/list` response.
pub fn offer_on_tools(response: &mut Value, policy: &Policy) {
    let Some(Value::Array(tools)) = response.pointer_mut("/result/tools") else {
        return;
    };
    for tool in tools {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !matches!(policy.rule_for(name).rule, Rule::RequireApproval(_)) {
            continue;
        }
        let support = tool
            .pointer("/execution/taskSupport")
            .and_then(Value::as_str);
        if matches!(support, Some("optional" | "required")) {
            continue;
        }
        if !tool.get("execution").is_some_and(Value::is_object) {
            tool["execution"] = json!({});
        }
        tool["execution"]["taskSupport"] = json!("optional");
    }
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
    let Some(task_id) = msg.pointer("/params/taskId").and_then(Value::as_str) else {
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
        .is_ok_and(|init| init.pointer("/capabilities/tasks").is_some())
}

/// `tasks/get`: the task's state; an approved call is run now, inside this request.
async fn get(app: &AppState, ctx: CallContext, id: Value, task_id: &str, task: TaskCall) -> Value {
    let task = if task.call.status == CallStatus::Approved {
        let token = ctx.token_sha256.clone();
        run_and_keep(app, ctx, id.clone(), task_id, &task).await;
        match app.approvals.task(task_id, &token).await {
            Ok(Some(now)) => now,
            _ => task,
        }
    } else {
        task
    };
    json!({"jsonrpc": "2.0", "id": id, "result": view(app, Flavor::Core, task_id, &task)})
}

/// The extension's `tasks/get`: the task, with the call's result inline once it has run (an
/// approved call is run now, inside this request); a refusal is a completed `isError` result.
async fn get_inline(
    app: &AppState,
    ctx: CallContext,
    id: Value,
    task_id: &str,
    task: TaskCall,
) -> Value {
    let token = ctx.token_sha256.clone();
    if task.call.status == CallStatus::Approved {
        run_and_keep(app, ctx, id.clone(), task_id, &task).await;
    }
    let task = match app.approvals.task(task_id, &token).await {
        Ok(Some(now)) => now,
        _ => task,
    };
    let mut view = view(app, Flavor::Extension, task_id, &task);
    let status = task.call.status;
    if status.is_refusal() {
        if let Err(e) = app.store.mark_told(&task.call.id).await {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot record that the agent was told");
        }
        let refusal = jsonrpc::tool_error_result(Value::Null, not_run_text(app, &task));
        view["result"] = refusal["result"].clone();
    } else if !status.is_open() && status != CallStatus::Withdrawn {
        let response = match app.task_results.take(task_id) {
            Some(response) => response,
            None if matches!(status, CallStatus::Completed | CallStatus::Failed) => {
                return jsonrpc::error_response(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    "Failed to retrieve task: its result was delivered already, or is held by \
                     another Airlock instance (results are never stored)",
                );
            }
            // Sent, but how it ended is unknown (or the call was abandoned): no result exists.
            None => {
                jsonrpc::error_response(Value::Null, jsonrpc::INTERNAL_ERROR, task_status(&task).1)
            }
        };
        match (response.get("result"), response.get("error")) {
            (_, Some(error)) => {
                view["status"] = json!("failed");
                view["error"] = error.clone();
            }
            (Some(result), None) => {
                view["status"] = json!("completed");
                view["result"] = result.clone();
            }
            (None, None) => {}
        }
    }
    json!({"jsonrpc": "2.0", "id": id, "result": view})
}

/// When a task's kept result is forgotten: the end of the task's lifetime, and never in less
/// than a minute (a call run near its task's end can still be fetched).
fn task_lifetime(task: &TaskCall) -> Instant {
    let left = Timestamp::now()
        .seconds_until(task.task.created_at + time::Duration::milliseconds(task.task.ttl_ms))
        .max(60.0);
    Instant::now() + Duration::from_secs_f64(left)
}

/// Runs the approved call of `task` for this request in a task of its own (a client that gives
/// up on the request cannot leave the call half-sent: its outcome is still recorded), keeping
/// the result for the task; returns when it has run.
async fn run_and_keep(app: &AppState, ctx: CallContext, id: Value, task_id: &str, task: &TaskCall) {
    let (app, task_id, call) = (app.clone(), task_id.to_owned(), task.call.clone());
    let lifetime = task_lifetime(task);
    let task = TaskCall {
        task: task.task.clone(),
        call,
    };
    let ran = tokio::spawn(async move {
        if let Some(response) = run(&app, ctx, id, &task_id, &task).await {
            app.task_results.keep(&task_id, response, lifetime);
        }
    });
    if let Err(e) = ran.await {
        tracing::error!(error = %e, "running a task's call failed");
    }
}

/// Runs the approved call of `task` inside this request, if this request wins it; the upstream's
/// final response.
async fn run(
    app: &AppState,
    ctx: CallContext,
    request_id: Value,
    task_id: &str,
    task: &TaskCall,
) -> Option<Value> {
    let parked = app.approvals.join_call(
        &task.call,
        &ctx.session,
        jsonrpc::id_key(&request_id),
        false,
    );
    let (tx, mut rx) = mpsc::channel(64);
    let Fate::Approved(release) = parked.fate(&tx).await else {
        return None;
    };
    let call = ParkedCall {
        app: app.clone(),
        ctx,
        msg: call_message(request_id, task),
        tool: task.call.tool.clone(),
        task: Some(task_id.to_owned()),
    };
    let drain = async move {
        let mut last = None;
        while let Some(msg) = rx.recv().await {
            if msg.get("method").is_none() {
                last = Some(msg);
            }
        }
        last
    };
    let ((), last) = tokio::join!(parked::send_released(call, release, tx), drain);
    last
}

/// The `tools/call` a task stands for, as request `id` (its arguments come from the store when
/// it is released).
fn call_message(id: Value, task: &TaskCall) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": task.call.tool.as_str(), "arguments": {}},
    })
}

/// `tasks/result`: the result, waiting for the decision if there is none yet.
async fn result(
    app: &AppState,
    ctx: CallContext,
    id: Value,
    task_id: &str,
    task: TaskCall,
) -> Reply {
    let status = task.call.status;
    if status.is_attachable() {
        let parked = app
            .approvals
            .join_call(&task.call, &ctx.session, jsonrpc::id_key(&id), false);
        let call = ParkedCall {
            app: app.clone(),
            ctx,
            msg: call_message(id, &task),
            tool: task.call.tool.clone(),
            task: Some(task_id.to_owned()),
        };
        return parked::stream(call, parked);
    }
    let answer = if status.is_refusal() || status == CallStatus::Withdrawn {
        if status.is_refusal()
            && let Err(e) = app.store.mark_told(&task.call.id).await
        {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot record that the agent was told");
        }
        jsonrpc::tool_error_result(id, not_run_text(app, &task))
    } else {
        match result_elsewhere(app, task_id, &task.call.id, id.clone()).await {
            Some(answer) => return Reply::One(answer),
            None => jsonrpc::error_response(
                id,
                jsonrpc::INVALID_PARAMS,
                "Failed to retrieve task: its result was delivered already, or is held by another \
                 Airlock instance (results are never stored)",
            ),
        }
    };
    Reply::One(relate(Some(task_id), answer))
}

/// The result of a task whose call another request of this process runs (or ran): waits while
/// it is being sent, then takes the result kept for the task, as the answer to request `id`.
/// `None` when there is none here.
pub async fn result_elsewhere(
    app: &AppState,
    task_id: &str,
    call: &crate::domain::CallId,
    id: Value,
) -> Option<Value> {
    loop {
        let row = app.store.call(call).await.ok()??;
        match row.status {
            CallStatus::Forwarding => tokio::time::sleep(crate::approval::POLL).await,
            CallStatus::Completed | CallStatus::Failed | CallStatus::OutcomeUnknown => {
                let mut response = app.task_results.take(task_id)?;
                response["id"] = id;
                return Some(relate(Some(task_id), response));
            }
            _ => return None,
        }
    }
}

/// `tasks/cancel`: withdraws a call not yet sent.
async fn cancel(
    app: &AppState,
    ctx: &CallContext,
    id: Value,
    task_id: &str,
    task: TaskCall,
) -> Value {
    let status = task.call.status;
    if !status.is_attachable() {
        let why = if status == CallStatus::Forwarding {
            "it is already running upstream".to_owned()
        } else {
            format!("it is already {}", task_status(&task).0)
        };
        return jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("Cannot cancel the task: {why}"),
        );
    }
    if let Err(e) = app
        .approvals
        .withdraw(&task.call.id, &Actor::agent(&ctx.agent))
        .await
    {
        tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot withdraw a call");
        return jsonrpc::error_response(
            id,
            jsonrpc::INTERNAL_ERROR,
            "the approval queue cannot record the cancel right now; try again",
        );
    }
    let task = match app.approvals.task(task_id, &ctx.token_sha256).await {
        Ok(Some(now)) => now,
        _ => task,
    };
    if task.call.status != CallStatus::Withdrawn {
        // Decided or sent between the look and the withdrawal.
        return jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            format!(
                "Cannot cancel the task: it is already {}",
                task_status(&task).0
            ),
        );
    }
    json!({"jsonrpc": "2.0", "id": id, "result": view(app, Flavor::Core, task_id, &task)})
}

/// `tasks/list`: the token's tasks on this upstream, newest first, [`LIST_PAGE`] at a time.
async fn list(app: &AppState, ctx: &CallContext, id: Value, msg: &Value) -> Value {
    let cursor = msg.pointer("/params/cursor").and_then(Value::as_str);
    let before = match cursor.map(read_cursor) {
        None => None,
        Some(Some(before)) => Some(before),
        Some(None) => {
            return jsonrpc::error_response(
                id,
                jsonrpc::INVALID_PARAMS,
                "Invalid cursor for tasks/list",
            );
        }
    };
    let page = app
        .approvals
        .tasks(
            &ctx.token_sha256,
            before.as_ref().map(|(at, digest)| (*at, digest.as_str())),
            LIST_PAGE,
        )
        .await;
    let (page, next) = match page {
        Ok(page) => page,
        Err(e) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot list tasks");
            return jsonrpc::error_response(
                id,
                jsonrpc::INTERNAL_ERROR,
                "the approval queue cannot be read right now; try again",
            );
        }
    };
    let next = next.map(|(at, digest)| format!("{at}|{digest}"));
    let tasks: Vec<Value> = page
        .iter()
        .filter(|t| t.call.upstream == ctx.gateway.name)
        .map(|t| {
            view(
                app,
                Flavor::Core,
                &ctx.task_key.task_id(t.call.id.as_str()),
                t,
            )
        })
        .collect();
    let mut result = json!({"tasks": tasks});
    if let Some(next) = next {
        result["nextCursor"] = json!(next);
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn read_cursor(cursor: &str) -> Option<(Timestamp, String)> {
    let (at, digest) = cursor.split_once('|')?;
    Some((Timestamp::parse(at).ok()?, digest.to_owned()))
}

/// The task as the protocol shows it, in the client's form.
fn view(app: &AppState, flavor: Flavor, task_id: &str, task: &TaskCall) -> Value {
    let (status, message) = task_status(task);
    // The extension's `failed` is for JSON-RPC errors: a call that ended with an `isError`
    // result (as a refusal does) is completed.
    let status = match (flavor, task.call.status) {
        (Flavor::Extension, CallStatus::Completed) => "completed",
        (Flavor::Extension, s) if s.is_refusal() => "completed",
        _ => status,
    };
    let message = match task.call.status {
        CallStatus::Rejected | CallStatus::Expired | CallStatus::Unclaimed => {
            not_run_text(app, task)
        }
        _ => message,
    };
    let call = &task.call;
    let updated = [call.finished_at, call.decided_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(call.created_at)
        .max(task.task.created_at);
    let (ttl, poll) = match flavor {
        Flavor::Core => ("ttl", "pollInterval"),
        Flavor::Extension => ("ttlMs", "pollIntervalMs"),
    };
    let mut view = json!({
        "taskId": task_id,
        "status": status,
        "statusMessage": message,
        "createdAt": task.task.created_at.text(),
        "lastUpdatedAt": updated.text(),
    });
    view[ttl] = json!(task.task.ttl_ms);
    view[poll] = json!(POLL_INTERVAL_MS);
    view
}

/// The task status of the task's call, and what it means in words.
fn task_status(task: &TaskCall) -> (&'static str, String) {
    let call = &task.call;
    match call.status {
        CallStatus::Pending => (
            "working",
            format!(
                "Waiting for approval of {}.{} (call {}, expires {} UTC); it has not run. Poll \
                 tasks/get, or wait on tasks/result for its result.",
                call.upstream,
                call.tool,
                call.id,
                call.expires_at.clock()
            ),
        ),
        CallStatus::Approved => (
            "working",
            "Approved; it runs at the next tasks/get or tasks/result".to_owned(),
        ),
        CallStatus::Forwarding => ("working", "Approved; running upstream".to_owned()),
        CallStatus::Completed if call.result_is_error == Some(1) => (
            "failed",
            "Approved and run; the upstream answered with an error".to_owned(),
        ),
        CallStatus::Completed => ("completed", "Approved and run".to_owned()),
        CallStatus::Failed => (
            "failed",
            "Approved, but the upstream call failed".to_owned(),
        ),
        CallStatus::OutcomeUnknown => (
            "failed",
            "Approved and sent, but how it ended is unknown".to_owned(),
        ),
        CallStatus::Withdrawn => (
            "cancelled",
            "The task was cancelled; the call did not run".to_owned(),
        ),
        CallStatus::Rejected | CallStatus::Expired | CallStatus::Unclaimed => {
            ("failed", String::new())
        }
        CallStatus::Abandoned => ("failed", "The call was abandoned; not run".to_owned()),
    }
}

/// Why the task's call did not run, as its agent is told.
fn not_run_text(app: &AppState, task: &TaskCall) -> String {
    if task.call.status == CallStatus::Withdrawn {
        return "The task was cancelled; the call did not run".to_owned();
    }
    crate::approval::fate_text(&task.call, app.config.approval.pickup)
}
