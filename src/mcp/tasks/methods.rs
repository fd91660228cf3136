//! The `tasks/*` methods on Airlock's tasks: `tasks/get` (both forms), `tasks/result`,
//! `tasks/cancel` and `tasks/list`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::view::{not_run_text, task_status, view};
use super::{Flavor, LIST_PAGE, relate};
use crate::app::AppState;
use crate::approval::{Fate, TaskCall};
use crate::domain::{Actor, CallStatus, Timestamp};
use crate::jsonrpc;
use crate::mcp::forward::CallContext;
use crate::mcp::parked::{self, ParkedCall};
use crate::mcp::reply::Reply;

/// `tasks/get`: the task's state; an approved call is run now, inside this request.
pub(super) async fn get(
    app: &AppState,
    ctx: CallContext,
    id: Value,
    task_id: &str,
    task: TaskCall,
) -> Value {
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
pub(super) async fn get_inline(
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
        msg: call_message(request_id, task, ctx.stateless),
        ctx,
        tool: task.call.tool.clone(),
        task: Some(task_id.to_owned()),
    };
    let drain = async move {
        let mut last = None;
        while let Some(msg) = rx.recv().await.map(|msg| *msg) {
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
/// it is released). For a 2026-07-28 client (`stateless`) it carries that revision's `_meta`, as
/// Airlock's own request: an upstream that speaks the revision gets it as it came, and the
/// capabilities the client declared on its first call are not kept.
fn call_message(id: Value, task: &TaskCall, stateless: bool) -> Value {
    let mut params = json!({"name": task.call.tool.as_str(), "arguments": {}});
    if stateless {
        params["_meta"] = crate::protocol::stateless_meta();
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// `tasks/result`: the result, waiting for the decision if there is none yet.
pub(super) async fn result(
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
            msg: call_message(id, &task, false),
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
pub(super) async fn cancel(
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
pub(super) async fn list(app: &AppState, ctx: &CallContext, id: Value, msg: &Value) -> Value {
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
