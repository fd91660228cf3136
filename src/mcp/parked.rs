//! A `tools/call` held for approval, as the agent experiences it: its request stays open (SSE
//! keep-alive comments, and `notifications/progress` when it sent a `progressToken`) until the call
//! is decided, expires, or the agent goes away; then it receives the upstream's real result, or an
//! `isError` result saying why the call did not run.
//!
//! The call's fate is `approval`'s ([`Parked::fate`]); this module renders it. The wait runs in
//! its own task, so the fate does not depend on the response body being polled: a closed
//! connection is noticed (the call is withdrawn), and a released call's outcome is recorded even if
//! the agent stops reading. Only a [`Release`] (the one task that won `approved → forwarding`)
//! sends the call.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::forward::{CallContext, Sent};
use super::reply::{Messages, Reply};
use crate::app::AppState;
use crate::approval::{Fate, ParkRequest, Parked, Release, Requester};
use crate::domain::{CallStatus, ToolName};
use crate::jsonrpc;
use crate::metrics::Outcome;
use crate::policy::ApprovalRule;
use crate::store::ResultSummary;
use crate::upstream::{Inbound, ReplyRx};

/// How often a waiting agent that asked for progress is told how long is left.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Keep-alive comments on a waiting stream, so idle proxies and clients do not hang up: under
/// the 5 s read timeout of a default `httpx` client (which agents on the Python SDK often pass in
/// to set their token), where 10 s cut their wait short.
const KEEP_ALIVE: Duration = Duration::from_secs(4);

/// Everything the wait needs, owned: it outlives the HTTP handler.
pub struct ParkedCall {
    pub app: AppState,
    pub ctx: CallContext,
    /// The `tools/call` request (for a task's `tasks/result`, one made from the call, with that
    /// request's id).
    pub msg: Value,
    pub tool: ToolName,
    /// The MCP task whose `tasks/result` (or `tasks/get`) this request is, when it is one: the
    /// result then says so (`_meta`), and "call again" is never the answer.
    pub task: Option<String>,
}

/// Where a waiting request's messages go. Boxed: a channel allocates its slots 32 at a time,
/// and every request waiting for a decision holds one (a `Value` is 80 bytes, its box 8).
pub(super) type ToAgent = mpsc::Sender<Box<Value>>;

/// The agent's request, as the wait sees it: over when its answer channel closed.
impl Requester for ToAgent {
    fn ended(&self) -> impl std::future::Future<Output = ()> + Send {
        self.closed()
    }

    fn has_ended(&self) -> bool {
        self.is_closed()
    }
}

impl ParkedCall {
    fn rule_name(&self) -> String {
        format!("{}.{}", self.ctx.gateway.name, self.tool)
    }

    fn id(&self) -> Value {
        self.msg.get("id").cloned().unwrap_or(Value::Null)
    }

    /// An `isError` result with `text`, in the revision the client speaks.
    fn refusal(&self, text: impl Into<String>) -> Value {
        let mut answer = jsonrpc::tool_error_result(self.id(), text);
        if self.ctx.stateless {
            crate::protocol::mark_complete(&mut answer);
        }
        super::tasks::relate(self.task.as_deref(), answer)
    }

    fn count(&self, outcome: Outcome) {
        self.app
            .metrics
            .tool_call(&self.ctx.gateway.name, &self.tool, outcome);
    }
}

/// Parks the call (or joins the call with its key) and answers with the stream that waits for its
/// fate, or at once with a task when the request asked for one.
pub async fn respond(mut call: ParkedCall, rule: ApprovalRule) -> Reply {
    let wants_task = super::tasks::wants_task(&call.ctx, &call.msg);
    // The arguments move into the store; the waiting request keeps none (a release reads them
    // back from there).
    let arguments =
        match crate::jsonrpc::pointer_mut(&mut call.msg, "/params/arguments").map(Value::take) {
            None | Some(Value::Null) => json!({}),
            Some(args @ Value::Object(_)) => args,
            Some(_) => {
                return Reply::One(jsonrpc::error_response(
                    call.id(),
                    jsonrpc::INVALID_PARAMS,
                    "tools/call params.arguments must be an object",
                ));
            }
        };
    let parked = call
        .app
        .approvals
        .park(ParkRequest {
            upstream: &call.ctx.gateway.name,
            tool: &call.tool,
            agent: &call.ctx.agent,
            token_sha256: &call.ctx.token_sha256,
            session: &call.ctx.session,
            request_key: jsonrpc::id_key(&call.id()),
            arguments,
            rule: &rule,
        })
        .await;
    let parked = match parked {
        Ok(parked) => parked,
        Err(e) => {
            let why = if e.is_limit() {
                tracing::warn!(why = %e, "call not parked");
                e.to_string()
            } else {
                // Fail closed: a call that cannot be recorded for review is not run.
                tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot park a call");
                "the approval queue cannot record the call right now".to_owned()
            };
            call.count(Outcome::NotApproved);
            let text = format!(
                "Approval required by policy ({}), but {why}; not run",
                call.rule_name()
            );
            if wants_task && call.ctx.tasks == Some(super::tasks::Flavor::Core) {
                // A client that asked for a task reads a task or an error, not a tool result.
                let code = if e.is_limit() {
                    jsonrpc::INVALID_REQUEST
                } else {
                    jsonrpc::INTERNAL_ERROR
                };
                return Reply::One(jsonrpc::error_response(call.id(), code, text));
            }
            return Reply::One(call.refusal(text));
        }
    };
    if parked.joined {
        tracing::info!(call = %parked.id, "request joined a parked call");
    } else {
        tracing::info!(call = %parked.id, "call parked for approval");
    }
    if wants_task {
        return super::tasks::created(&call, parked).await;
    }
    stream(call, parked)
}

/// The answer of a request waiting for a parked call: a stream that carries progress and
/// keep-alives until the call's fate, then the answer.
pub fn stream(call: ParkedCall, parked: Parked) -> Reply {
    stream_events(call, parked, None)
}

/// [`stream`], resumable where the session offers it: a new stream is remembered by the
/// session and starts with a priming event; `resumed` (a stream's id and the number of its next
/// event) continues one that was cut.
pub fn stream_events(call: ParkedCall, parked: Parked, resumed: Option<(String, u64)>) -> Reply {
    let event_ids = resumed.or_else(|| {
        let streams = call.ctx.streams.as_ref()?;
        let mut msg = call.msg.clone();
        if let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) {
            params.remove("arguments");
        }
        let id = streams.remember(super::resume::Resumable::Parked(super::resume::Waiting {
            call: parked.id.clone(),
            msg,
            tool: call.tool.clone(),
            task: call.task.clone(),
        }))?;
        Some((id, 0))
    });
    let (tx, rx) = mpsc::channel(64);
    let overflow = call.ctx.overflow.clone();
    tokio::spawn(wait(Box::new(call), parked, tx));
    // The stream ends with the answer: recording how the call ended (a commit) is not on the
    // agent's path.
    let stream = futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx: mpsc::Receiver<Box<Value>> = rx?;
        let msg = *rx.recv().await?;
        let answer = msg.get("method").is_none();
        Some((msg, (!answer).then_some(rx)))
    });
    let messages = Messages::new(stream, overflow, KEEP_ALIVE);
    Reply::Stream(match event_ids {
        Some((id, first)) => messages.with_event_ids(id, first),
        None => messages,
    })
}

/// Waits for the call's fate, telling the agent how long is left if it asked; releases the call
/// if it is approved.
async fn wait(mut call: Box<ParkedCall>, parked: Parked, tx: ToAgent) {
    let token = jsonrpc::progress_token(&call.msg).cloned();
    // While it waits, the request is kept as its text: parsed, its maps take ~1.4 KB, as text
    // ~0.3 KB, and a thousand requests held open each hold one. It is parsed again (exactly:
    // serde_json reads back what it wrote) to answer.
    let kept = serde_json::to_string(&call.msg).ok();
    if kept.is_some() {
        call.msg = Value::Null;
    }
    let mut fate = fate_with_progress(&call, &parked, &tx, token.as_ref()).await;
    if let Some(text) = kept {
        match serde_json::from_str(&text) {
            Ok(msg) => call.msg = msg,
            Err(e) => {
                // Never expected; fail closed: an approved call is not sent without its request.
                tracing::error!(error = %e, "cannot read back a waiting request");
                if let Fate::Approved(release) = fate {
                    let why = "the waiting request could not be read back; not run";
                    release.finish(CallStatus::Failed, None, why).await;
                    fate = Fate::Refused(format!("Approved, but {why}"));
                }
            }
        }
    }
    // Boxed: what answers the request is held only once the wait is over, not by every request
    // still waiting.
    Box::pin(answer(call, parked, fate, tx)).await;
}

/// The call's fate, with a progress note every [`PROGRESS_EVERY`] meanwhile when the agent asked
/// for progress (with `token`).
async fn fate_with_progress(
    call: &ParkedCall,
    parked: &Parked,
    tx: &ToAgent,
    token: Option<&Value>,
) -> Fate {
    let mut progress = token.map(|_| tokio::time::interval(PROGRESS_EVERY));
    let started = Instant::now();
    let fate = parked.fate(tx);
    tokio::pin!(fate);
    loop {
        tokio::select! {
            fate = &mut fate => return fate,
            () = tick(progress.as_mut()) => {
                if let Some(token) = token {
                    let _ = tx.send(Box::new(progress_note(call, parked, token, started))).await;
                }
            }
        }
    }
}

/// The next tick of `progress`; never without one.
async fn tick(progress: Option<&mut tokio::time::Interval>) {
    match progress {
        Some(progress) => {
            progress.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Tells the agent the call's fate; an approved call is sent first.
async fn answer(call: Box<ParkedCall>, parked: Parked, fate: Fate, tx: ToAgent) {
    match fate {
        Fate::Approved(release) => send_released(*call, release, tx).await,
        Fate::Refused(text) => {
            // A task's call another request won (a `tasks/get`) has its result kept for it.
            if let Some(task) = &call.task
                && let Some(answer) =
                    super::tasks::result_elsewhere(&call.app, task, &parked.id, call.id()).await
            {
                let _ = tx.send(Box::new(answer)).await;
                return;
            }
            call.count(Outcome::NotApproved);
            let _ = tx.send(Box::new(call.refusal(text))).await;
        }
        Fate::Waiting(text) if call.task.is_some() => {
            // A task's result is never "call again": the agent waits on the task.
            let answer = jsonrpc::error_response(call.id(), jsonrpc::INTERNAL_ERROR, text);
            let _ = tx.send(Box::new(answer)).await;
        }
        Fate::Waiting(text) => {
            call.count(Outcome::Waiting);
            let _ = tx.send(Box::new(call.refusal(text))).await;
        }
        Fate::Left => {}
    }
}

fn progress_note(call: &ParkedCall, parked: &Parked, token: &Value, started: Instant) -> Value {
    let left = parked
        .deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs();
    jsonrpc::notification(
        "notifications/progress",
        json!({
            "progressToken": token,
            "progress": started.elapsed().as_secs(),
            "total": parked.rule.timeout_secs,
            "message": format!(
                "Waiting for approval of {} by {}; {left} s left",
                call.rule_name(),
                parked.rule.deciders()
            ),
        }),
    )
}

/// Sends the approved call upstream, once, with the stored arguments, and relays the answer.
#[tracing::instrument(name = "forward_approved", skip_all, fields(call = %release.id))]
pub(super) async fn send_released(call: ParkedCall, mut release: Release, tx: ToAgent) {
    // An approval does not cover a tool whose definition changed since (a rug pull).
    let upstream = &call.ctx.gateway.name;
    if let Some(refusal) = call.app.pins.refusal(upstream, call.tool.as_str()) {
        release.finish(CallStatus::Failed, None, &refusal).await;
        call.count(Outcome::Denied);
        let _ = tx.send(Box::new(call.refusal(refusal))).await;
        return;
    }
    // Waiting for the upstream link (it may be restarting) must not outlast the agent.
    let link = tokio::select! {
        biased;
        () = tx.closed() => Err("the agent closed its connection before the call could be sent; not run"),
        ready = call.ctx.conn.ready() => Ok(ready),
    };
    let link = match link {
        Ok(link) => link,
        Err(why) => {
            release.finish(CallStatus::Failed, None, why).await;
            call.count(Outcome::NotApproved);
            return;
        }
    };
    let started = Instant::now();
    let mut continuation = None;
    let sent = match link {
        Ok(_) => {
            let mut msg = call.msg.clone();
            msg["params"]["arguments"] = release.take_arguments();
            continuation = call.ctx.continuation(&call.tool, &msg);
            call.ctx.conn.request(&call.ctx.session, msg).await
        }
        Err(e) => Err(e),
    };
    let (upstream_id, replies) = match sent {
        Ok(sent) => sent,
        Err(e) => {
            let detail = e.to_string();
            release.finish(CallStatus::Failed, None, &detail).await;
            call.count(Outcome::Unavailable);
            let _ = tx
                .send(Box::new(
                    call.refusal(format!("{detail}; the approved call did not run")),
                ))
                .await;
            return;
        }
    };
    tracing::info!("approved call forwarded");
    relay(
        call,
        release,
        tx,
        (upstream_id, replies),
        started,
        continuation,
    )
    .await;
}

/// Passes the upstream's answer on to the agent and records how the call ended.
async fn relay(
    call: ParkedCall,
    release: Release,
    tx: ToAgent,
    (upstream_id, mut replies): (u64, ReplyRx),
    started: Instant,
    continuation: Option<super::continuations::Bound>,
) {
    let sent = Sent {
        method: "tools/call".to_owned(),
        tool: Some(call.tool.clone()),
        original_id: call.id(),
        slot: None,
        trail: None,
        started,
        upstream_id,
    };
    let redactor = call.app.redactor.clone();
    let task = call.task.clone();
    let mut forwarded = call.ctx.forwarded(&call.app, sent);
    forwarded.continuation = continuation.map(|bound| (call.app.continuations.clone(), bound));
    // An approved call runs to its end: a request that ends now does not cancel it, and its
    // outcome is still recorded.
    forwarded.cancel_on_close = None;
    let mut listening = true;
    loop {
        let item = tokio::select! {
            item = replies.recv() => item,
            () = tx.closed(), if listening => {
                listening = false;
                // The call runs on for its outcome, but the session is no longer kept busy by it.
                forwarded.in_flight = None;
                continue;
            }
        };
        let Some(item) = item else {
            release
                .finish(
                    CallStatus::OutcomeUnknown,
                    None,
                    "cancelled after it was sent upstream",
                )
                .await;
            return;
        };
        let outcome = outcome_of(&item, started, &redactor);
        let (msg, last) = forwarded.render(item);
        let msg = if last {
            super::tasks::relate(task.as_deref(), msg)
        } else {
            msg
        };
        // The agent gets its answer first; recording the outcome is not on its path.
        if listening {
            let _ = tx.send(Box::new(msg)).await;
        }
        if let Some((status, summary, detail)) = outcome {
            release.finish(status, summary.as_ref(), &detail).await;
            return;
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
