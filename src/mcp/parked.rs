//! A `tools/call` held for approval, as the agent experiences it: its request stays open (SSE
//! keep-alive comments, and `notifications/progress` when it sent a `progressToken`) until the call
//! is decided, expires, or the agent goes away; then it receives the upstream's real result, or an
//! `isError` result saying why the call did not run.
//!
//! The wait runs in its own task, so the call's fate does not depend on the response body being
//! polled: a closed connection is noticed (the call is withdrawn), and a released call's outcome is
//! recorded even if the agent stops reading. The task is the only one that may send the call: it
//! wins `approved → forwarding` before it reads the stored arguments back and sends them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::reply::{self, Forwarded};
use super::session::InFlight;
use crate::app::AppState;
use crate::approval::{CallStatus, ParkRequest, Parked, expiry_text};
use crate::jsonrpc;
use crate::metrics::Outcome;
use crate::policy::ApprovalRule;
use crate::store::{CallRow, ResultSummary};
use crate::upstream::{Connection, Inbound, SessionKey, Upstream};

/// How often a waiting agent that asked for progress is told how long is left.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Keep-alive comments on a waiting stream, so idle proxies and clients do not hang up.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Everything the wait needs, owned: it outlives the HTTP handler.
pub struct ParkedCall {
    pub app: AppState,
    pub upstream: Arc<Upstream>,
    pub conn: Connection,
    pub session: SessionKey,
    pub agent: String,
    pub stateless: bool,
    pub overflow: Option<mpsc::Sender<Value>>,
    /// Keeps the session counted as busy (not idle) while the call waits or runs.
    pub in_flight: Option<InFlight>,
    pub msg: Value,
    pub tool: String,
    pub rule: ApprovalRule,
}

impl ParkedCall {
    fn rule_name(&self) -> String {
        format!("{}.{}", self.upstream.name, self.tool)
    }

    fn id(&self) -> Value {
        self.msg.get("id").cloned().unwrap_or(Value::Null)
    }

    /// An `isError` result with `text`, in the revision the client speaks.
    fn refusal(&self, text: impl Into<String>) -> Value {
        let mut answer = jsonrpc::tool_error_result(self.id(), text);
        if self.stateless {
            super::mark_complete(&mut answer);
        }
        answer
    }

    fn count(&self, outcome: Outcome) {
        self.app
            .metrics
            .tool_call(&self.upstream.name, &self.tool, outcome);
    }
}

/// Parks the call and answers with the stream that waits for its fate.
pub async fn respond(mut call: ParkedCall, as_sse: bool) -> Response {
    // The arguments move into the store; the waiting request keeps none (a release reads them
    // back from there).
    let arguments = match call.msg.pointer_mut("/params/arguments").map(Value::take) {
        None | Some(Value::Null) => json!({}),
        Some(args @ Value::Object(_)) => args,
        Some(_) => {
            let answer = jsonrpc::error_response(
                call.id(),
                jsonrpc::INVALID_PARAMS,
                "tools/call params.arguments must be an object",
            );
            return reply::single(answer, as_sse);
        }
    };
    let parked = call
        .app
        .approvals
        .park(ParkRequest {
            upstream: &call.upstream.name,
            tool: &call.tool,
            agent: &call.agent,
            session: &call.session,
            request_key: jsonrpc::id_key(&call.id()),
            arguments,
            rule: &call.rule,
        })
        .await;
    let parked = match parked {
        Ok(parked) => parked,
        Err(e) if e.is_limit() => {
            tracing::warn!(upstream = %call.upstream.name, tool = %call.tool, agent = %call.agent, why = %e, "call not parked");
            call.count(Outcome::NotApproved);
            let text = format!(
                "Approval required by policy ({}), but {e}; not run",
                call.rule_name()
            );
            return reply::single(call.refusal(text), as_sse);
        }
        Err(e) => {
            // Fail closed: a call that cannot be recorded for review is not run.
            tracing::error!(upstream = %call.upstream.name, tool = %call.tool, error = %crate::telemetry::error_chain(&e), "cannot park a call");
            call.count(Outcome::NotApproved);
            let text = format!(
                "Approval required by policy ({}), but the approval queue cannot record the call right now; not run",
                call.rule_name()
            );
            return reply::single(call.refusal(text), as_sse);
        }
    };
    tracing::info!(call = %parked.id, upstream = %call.upstream.name, tool = %call.tool, agent = %call.agent, "call parked for approval");
    let (tx, rx) = mpsc::channel(64);
    let overflow = call.overflow.clone();
    tokio::spawn(wait(call, parked, tx));
    if as_sse {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let msg = rx.recv().await?;
            Some((Ok::<_, Infallible>(reply::message_event(&msg)), rx))
        });
        reply::unbuffered(
            Sse::new(stream)
                .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
                .into_response(),
        )
    } else {
        json_answer(rx, overflow).await
    }
}

/// For clients that take only JSON: related messages go to the session's stream, the final one is
/// the body.
async fn json_answer(
    mut rx: mpsc::Receiver<Value>,
    overflow: Option<mpsc::Sender<Value>>,
) -> Response {
    while let Some(msg) = rx.recv().await {
        if msg.get("method").is_none() {
            return Json(msg).into_response();
        }
        if let Some(overflow) = &overflow
            && overflow.try_send(msg).is_err()
        {
            tracing::warn!("session queue full; dropping a server message");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Waits for the call's fate and tells the agent; releases it if approved.
async fn wait(call: ParkedCall, parked: Parked, tx: mpsc::Sender<Value>) {
    let queue = call.app.approvals.clone();
    let token = jsonrpc::progress_token(&call.msg).cloned();
    let started = Instant::now();
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    loop {
        // Biased: a cancel or a hang-up that arrives with a decision wins over it.
        let row = tokio::select! {
            biased;
            () = parked.withdrawn() => {
                withdraw(&call, &parked, "the agent cancelled the call").await;
                return;
            }
            () = tx.closed() => {
                withdraw(&call, &parked, "the agent closed its connection").await;
                return;
            }
            () = call.app.shutdown.cancelled() => {
                let why = "Airlock is shutting down; the call was not approved and did not run; try again later";
                if let Err(e) = queue.abandon(&parked, why).await {
                    tracing::error!(call = %parked.id, error = %crate::telemetry::error_chain(&e), "cannot record an abandoned call");
                }
                call.count(Outcome::NotApproved);
                let _ = tx.send(call.refusal(why)).await;
                return;
            }
            () = tokio::time::sleep_until(parked.deadline) => {
                match queue.expire(&parked).await {
                    Ok(true) => {
                        tracing::info!(call = %parked.id, "call expired without a decision");
                        call.app.metrics.approval_decision(CallStatus::Expired.as_str(), None);
                        call.count(Outcome::NotApproved);
                        let _ = tx.send(call.refusal(expiry_text(parked.rule.timeout_secs))).await;
                        return;
                    }
                    // Decided just before the deadline: act on what was decided.
                    Ok(false) => queue.current(&parked).await,
                    Err(e) => {
                        // Fail closed: not run, whatever the store says later.
                        tracing::error!(call = %parked.id, error = %crate::telemetry::error_chain(&e), "cannot record an expiry");
                        call.count(Outcome::NotApproved);
                        let _ = tx.send(call.refusal(expiry_text(parked.rule.timeout_secs))).await;
                        return;
                    }
                }
            }
            () = parked.woken() => queue.current(&parked).await,
            _ = progress.tick(), if token.is_some() => {
                if let Some(token) = &token {
                    let _ = tx.send(progress_note(&call, &parked, token, started)).await;
                }
                continue;
            }
        };
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => {
                tracing::error!(call = %parked.id, "a parked call's row is gone; not run");
                let _ = tx
                    .send(call.refusal("The call's approval record is gone; not run"))
                    .await;
                return;
            }
            Err(e) => {
                // The poll wakes us again; until the store answers, the call keeps waiting.
                tracing::warn!(call = %parked.id, error = %crate::telemetry::error_chain(&e), "cannot read a parked call");
                continue;
            }
        };
        if row.status() == CallStatus::Pending {
            continue;
        }
        queue.observe_decision(&row);
        if row.status() == CallStatus::Approved {
            release(call, parked, &row, tx).await;
        } else {
            call.count(Outcome::NotApproved);
            let _ = tx.send(call.refusal(fate_text(&row))).await;
        }
        return;
    }
}

/// What the agent reads when its call was not run.
fn fate_text(row: &CallRow) -> String {
    let reason = row.reason.as_deref().unwrap_or("no reason given");
    match row.status() {
        CallStatus::Rejected => format!(
            "Rejected by {}: {reason}",
            row.decided_by.as_deref().unwrap_or("a reviewer")
        ),
        CallStatus::Expired => reason.to_owned(),
        status => format!("The call was {status} before it could run; not run"),
    }
}

fn progress_note(call: &ParkedCall, parked: &Parked, token: &Value, started: Instant) -> Value {
    let left = parked
        .deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs();
    let who = if parked.rule.reviewers.is_empty() {
        "a reviewer".to_owned()
    } else {
        parked.rule.reviewers.join(", ")
    };
    jsonrpc::notification(
        "notifications/progress",
        json!({
            "progressToken": token,
            "progress": started.elapsed().as_secs(),
            "total": parked.rule.timeout_secs,
            "message": format!("Waiting for approval of {} by {who}; {left} s left", call.rule_name()),
        }),
    )
}

async fn withdraw(call: &ParkedCall, parked: &Parked, why: &str) {
    match call.app.approvals.withdraw(parked, &call.agent, why).await {
        Ok(true) => {
            tracing::info!(call = %parked.id, why, "parked call withdrawn");
            call.app
                .metrics
                .approval_decision(CallStatus::Withdrawn.as_str(), None);
            call.count(Outcome::NotApproved);
        }
        Ok(false) => {}
        Err(e) => {
            // Nobody waits for it any more, so it can never be forwarded; the sweep expires it.
            tracing::error!(call = %parked.id, error = %crate::telemetry::error_chain(&e), "cannot record a withdrawal");
        }
    }
}

/// Why the agent can no longer receive its call's result, if it cannot.
fn agent_gone(parked: &Parked, tx: &mpsc::Sender<Value>) -> Option<&'static str> {
    if parked.is_withdrawn() {
        Some("the agent cancelled the call")
    } else if tx.is_closed() {
        Some("the agent closed its connection")
    } else {
        None
    }
}

/// Sends the approved call upstream, once, with the stored arguments, and relays the answer.
async fn release(mut call: ParkedCall, parked: Parked, row: &CallRow, tx: mpsc::Sender<Value>) {
    let queue = call.app.approvals.clone();
    // The agent may have left between the decision and now: nobody could receive the result.
    if let Some(why) = agent_gone(&parked, &tx) {
        withdraw(&call, &parked, why).await;
        return;
    }
    let args = match queue.begin_forward(&parked, row).await {
        Ok(Some(args)) => args,
        Ok(None) => {
            let _ = tx
                .send(
                    call.refusal(
                        "Approved, but the call could not be released as approved; not run",
                    ),
                )
                .await;
            return;
        }
        Err(e) => {
            tracing::error!(call = %parked.id, error = %crate::telemetry::error_chain(&e), "cannot record a release");
            let _ = tx
                .send(call.refusal(
                    "Approved, but the approval queue cannot record the release right now; not run",
                ))
                .await;
            return;
        }
    };
    // Waiting for the upstream link (it may be restarting) must not outlast the agent.
    let link = tokio::select! {
        biased;
        () = parked.withdrawn() => Err("the agent cancelled the call before it could be sent; not run"),
        () = tx.closed() => Err("the agent closed its connection before the call could be sent; not run"),
        ready = call.conn.ready() => Ok(ready),
    };
    let link = match link {
        Ok(link) => link,
        Err(why) => {
            record(&call, &parked, CallStatus::Failed, None, why).await;
            call.count(Outcome::NotApproved);
            return;
        }
    };
    let started = Instant::now();
    let sent = match link {
        Ok(_) => {
            let mut msg = call.msg.clone();
            msg["params"]["arguments"] = args;
            call.conn.request(&call.session, msg).await
        }
        Err(e) => Err(e),
    };
    let (upstream_id, mut replies) = match sent {
        Ok(sent) => sent,
        Err(e) => {
            let detail = e.to_string();
            record(&call, &parked, CallStatus::Failed, None, &detail).await;
            call.count(Outcome::Unavailable);
            let _ = tx
                .send(call.refusal(format!("{detail}; the approved call did not run")))
                .await;
            return;
        }
    };
    tracing::info!(call = %parked.id, "approved call forwarded");
    // A cancel that came while the call was being sent found no route upstream yet: send it now.
    // The reply stream then ends, and the outcome is recorded as unknown.
    if parked.is_withdrawn() || (call.stateless && tx.is_closed()) {
        call.conn
            .cancel(upstream_id, "the agent cancelled the call")
            .await;
    }
    let mut forwarded = Forwarded {
        upstream: call.upstream.name.clone(),
        method: "tools/call".to_owned(),
        tool: Some(call.tool.clone()),
        original_id: call.id(),
        metrics: call.app.metrics.clone(),
        slot: None,
        trail: None,
        started,
        cancel_on_close: call.stateless.then(|| (call.conn.clone(), upstream_id)),
        overflow: call.overflow.clone(),
        stateless: call.stateless,
        _in_flight: call.in_flight.take(),
    };
    let mut listening = true;
    loop {
        let item = tokio::select! {
            item = replies.recv() => item,
            () = tx.closed(), if listening => {
                listening = false;
                if call.stateless {
                    // A 2026-07-28 client that hangs up cancels (dropping `forwarded` does it).
                    drop(forwarded);
                    record(&call, &parked, CallStatus::OutcomeUnknown, None, "the agent closed its stream mid-call; cancelled upstream").await;
                    return;
                }
                // The call runs on for its outcome, but the session is no longer kept busy by it.
                forwarded._in_flight = None;
                continue;
            }
        };
        let Some(item) = item else {
            record(
                &call,
                &parked,
                CallStatus::OutcomeUnknown,
                None,
                "cancelled after it was sent upstream",
            )
            .await;
            return;
        };
        let outcome = outcome_of(&item, started, &call.app.redactor);
        let (msg, last) = forwarded.render(item);
        // The agent gets its answer first; recording the outcome is not on its path.
        if listening {
            let _ = tx.send(msg).await;
        }
        if let Some((status, summary, detail)) = outcome {
            record(&call, &parked, status, summary.as_ref(), &detail).await;
        }
        if last {
            return;
        }
    }
}

/// How a reply item ends the call, if it is the final one.
fn outcome_of(
    item: &Inbound,
    started: Instant,
    redactor: &crate::redact::Redactor,
) -> Option<(CallStatus, Option<ResultSummary>, String)> {
    match item {
        Inbound::Message(msg) if msg.get("method").is_none() => {
            if let Some(error) = msg.get("error") {
                let detail = super::trail::upstream_error(error, redactor);
                return Some((CallStatus::Failed, None, detail));
            }
            let summary = ResultSummary::of(msg.get("result").unwrap_or(&Value::Null));
            let detail = format!(
                "{}, {} ms",
                summary.describe(),
                started.elapsed().as_millis()
            );
            Some((CallStatus::Completed, Some(summary), detail))
        }
        Inbound::Message(_) => None,
        Inbound::Failed {
            error,
            may_have_run,
        } => {
            let status = if *may_have_run {
                CallStatus::OutcomeUnknown
            } else {
                CallStatus::Failed
            };
            Some((status, None, error.to_string()))
        }
    }
}

async fn record(
    call: &ParkedCall,
    parked: &Parked,
    status: CallStatus,
    summary: Option<&ResultSummary>,
    detail: &str,
) {
    if let Err(e) = call
        .app
        .approvals
        .finish(parked, status, summary, Some(detail))
        .await
    {
        tracing::error!(call = %parked.id, %status, error = %crate::telemetry::error_chain(&e), "cannot record a forwarded call's outcome");
    }
}
