//! A task as the protocol shows it, in either form, from the call it stands for.

use serde_json::{Value, json};

use super::{Flavor, POLL_INTERVAL_MS};
use crate::app::AppState;
use crate::approval::TaskCall;
use crate::domain::CallStatus;

/// The task as the protocol shows it, in the client's form.
pub(super) fn view(app: &AppState, flavor: Flavor, task_id: &str, task: &TaskCall) -> Value {
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
pub(super) fn task_status(task: &TaskCall) -> (&'static str, String) {
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
pub(super) fn not_run_text(app: &AppState, task: &TaskCall) -> String {
    if task.call.status == CallStatus::Withdrawn {
        return "The task was cancelled; the call did not run".to_owned();
    }
    crate::approval::fate_text(&task.call, app.config.approval.pickup)
}
