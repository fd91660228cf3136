//! One request on its way upstream. [`CallContext`] is built once, where the endpoint knows the
//! session (or the stateless request), and moves by value through the policy gate, the park and
//! the forward: what every step needs to know about who is calling and where answers go.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::mpsc;

use super::parked::{self, ParkedCall};
use super::reply::{Forwarded, Reply};
use super::session::InFlight;
use super::tools_call::{self, Gate, Quota};
use super::trail::Trail;
use crate::app::{AppState, Gateway};
use crate::domain::{AgentName, SessionKey, ToolName};
use crate::jsonrpc;
use crate::upstream::{Connection, UpstreamError};

/// Who is calling, through what, and where the answers go.
pub struct CallContext {
    pub gateway: Arc<Gateway>,
    pub conn: Connection,
    /// The downstream session the request came on (a fresh key per 2026-07-28 request).
    pub session: SessionKey,
    pub agent: AgentName,
    /// The SHA-256 of the bearer token the agent called with (a parked call's key has it).
    pub token_sha256: String,
    /// What the token's MCP task ids are made with.
    pub task_key: crate::secrets::TaskKey,
    /// The MCP tasks Airlock offers this client (2025-11-25 sessions: the core feature; 2026-07-28:
    /// the extension): a parked call asked for as a task is answered with one, and `tasks/*` of
    /// Airlock's tasks are answered here.
    pub tasks: Option<super::tasks::Flavor>,
    /// What limits counted per session count against: the session, or the agent token for
    /// stateless clients.
    pub rate_key: String,
    /// The client speaks 2026-07-28: no session, results carry a `resultType`.
    pub stateless: bool,
    /// Where related messages go when the answer is one JSON body (the session's GET stream).
    pub overflow: Option<mpsc::Sender<Value>>,
    /// Keeps the session counted as busy (not idle) while the call waits or runs.
    pub in_flight: Option<InFlight>,
    /// The session's resumable parked streams (2025-11-25 sessions).
    pub streams: Option<Arc<super::resume::ResumableStreams>>,
}

/// What the upstream was asked, for the reply's accounting.
pub struct Sent {
    pub method: String,
    pub tool: Option<ToolName>,
    pub original_id: Value,
    pub slot: Option<Quota>,
    pub trail: Option<Box<Trail>>,
    pub started: Instant,
    pub upstream_id: u64,
}

impl CallContext {
    /// An answer Airlock gives itself, in the revision the client speaks.
    pub fn answer(&self, mut answer: Value) -> Reply {
        if self.stateless {
            crate::protocol::mark_complete(&mut answer);
        }
        Reply::One(answer)
    }

    /// What a retry of the `tools/call` `msg` of `tool` would continue (2026-07-28 clients of an
    /// upstream that speaks it only: multi-round-trip results come from no other, so no other
    /// call pays for the argument digest).
    pub fn continuation(&self, tool: &str, msg: &Value) -> Option<super::continuations::Bound> {
        (self.stateless && self.conn.speaks_stateless()).then(|| {
            super::continuations::Bound::new(
                &self.token_sha256,
                &self.gateway.name,
                tool,
                super::continuations::digest_of(msg),
            )
        })
    }

    /// The reply accounting of a request the upstream took as `sent.upstream_id`.
    pub fn forwarded(self, app: &AppState, sent: Sent) -> Forwarded {
        Forwarded {
            upstream: self.gateway.upstream.name.clone(),
            method: sent.method,
            tool: sent.tool,
            original_id: sent.original_id,
            metrics: app.metrics.clone(),
            slot: sent.slot,
            releasing: None,
            trail: sent.trail,
            started: sent.started,
            cancel_on_close: self
                .stateless
                .then(|| (self.conn.clone(), sent.upstream_id)),
            overflow: self.overflow,
            stateless: self.stateless,
            in_flight: self.in_flight,
            tool_list: None,
            task_owner: None,
            continuation: None,
            asking: None,
        }
    }
}

/// Judges the request (the policy's `hide`/resource rules, the `tools/call` gate), then parks it,
/// refuses it, or sends it upstream and streams the answer back.
#[tracing::instrument(name = "request", skip_all, fields(upstream = %ctx.gateway.name, agent = %ctx.agent, method, tool))]
pub async fn forward(app: &AppState, mut ctx: CallContext, mut msg: Value) -> Reply {
    let started = Instant::now();
    let original_id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    tracing::Span::current().record("method", method.as_str());
    if ctx.stateless
        && !ctx.conn.speaks_stateless()
        && let Some(held) = app.input_rounds.take(&ctx, &msg)
    {
        return match held {
            Ok(held) => resume(app, &ctx, &method, &msg, held),
            Err(refusal) => ctx.answer(refusal),
        };
    }
    let mut continued = 0;
    let (tool, slot, trail) = if method == "tools/call" {
        match tools_call::gate(app, &ctx, &msg).await {
            Gate::Forward {
                tool,
                slot,
                trail,
                round,
            } => {
                tracing::Span::current().record("tool", tool.as_str());
                continued = round;
                (Some(tool), slot, Some(trail))
            }
            Gate::Park { tool, rule } => {
                tracing::Span::current().record("tool", tool.as_str());
                let call = ParkedCall {
                    app: app.clone(),
                    ctx,
                    msg,
                    tool,
                    task: None,
                };
                return parked::respond(call, rule).await;
            }
            Gate::Refuse(answer) => return ctx.answer(answer),
        }
    } else {
        if let Some(answer) = refusal(app, &ctx, &method, &msg) {
            return ctx.answer(answer);
        }
        // Airlock answers for the tasks of parked calls; the upstream's own pass through.
        (ctx, msg) = match super::tasks::answer(app, ctx, msg).await {
            Ok(reply) => return reply,
            Err(not_ours) => not_ours,
        };
        (None, None, None)
    };
    let tool_list = (method == "tools/list").then(|| super::listing::ToolList {
        policy: ctx.gateway.policy.current(),
        sensitive: crate::policy::Sensitivity::of(&app.config.policy),
        catalogue: app.catalogue.clone(),
        pins: app.pins.clone(),
        offer_tasks: ctx.tasks == Some(super::tasks::Flavor::Core),
    });
    // Only clients offered tasks can make an upstream's own ones (2025-11-25 and later).
    let task_owner = ctx
        .tasks
        .map(|_| (app.upstream_tasks.clone(), ctx.token_sha256.clone()));
    let continuation = tool
        .as_ref()
        .and_then(|tool| ctx.continuation(tool.as_str(), &msg))
        .map(|bound| (app.continuations.clone(), bound.at_round(continued)));
    // A handshake-era upstream's server requests are asked of a 2026-07-28 client as input
    // requests; an upstream that speaks 2026-07-28 asks them itself.
    let asking = (ctx.stateless && !ctx.conn.speaks_stateless())
        .then(|| super::input_rounds::Asking::new(app, &ctx, &msg));
    let sent = match asking {
        Some(_) => ctx.conn.request_taking_input(&ctx.session, msg).await,
        None => ctx.conn.request(&ctx.session, msg).await,
    };
    let (upstream_id, replies) = match sent {
        Ok(sent) => sent,
        Err(e) => return unsent(app, &ctx, e, original_id, (tool, slot, trail)),
    };
    let sent = Sent {
        method,
        tool,
        original_id,
        slot,
        trail,
        started,
        upstream_id,
    };
    let mut forwarded = ctx.forwarded(app, sent);
    forwarded.tool_list = tool_list;
    forwarded.task_owner = task_owner;
    forwarded.continuation = continuation;
    forwarded.asking = asking;
    forwarded.into_reply(replies)
}

/// The retry of a request held while its client answered an input request: it goes on, unless
/// the policy now refuses it outright (then it is cancelled upstream).
fn resume(
    app: &AppState,
    ctx: &CallContext,
    method: &str,
    msg: &Value,
    held: super::input_rounds::Held,
) -> Reply {
    let refused = if method == "tools/call" {
        tools_call::refuses_going_on(app, ctx, msg)
    } else {
        refusal(app, ctx, method, msg)
    };
    match refused {
        Some(answer) => {
            held.refused("the policy refuses it now");
            ctx.answer(answer)
        }
        None => held.resume(msg),
    }
}

/// The policy's refusal of a request other than `tools/call` (a hidden tool's prompt, a resource
/// it does not allow), as the JSON-RPC error the agent gets; recorded in the audit log.
fn refusal(app: &AppState, ctx: &CallContext, method: &str, msg: &Value) -> Option<Value> {
    let original_id = msg.get("id").cloned().unwrap_or(Value::Null);
    let subject = match crate::policy::Subject::of(method, msg.get("params")) {
        Ok(subject) => subject,
        Err(why) => {
            return Some(jsonrpc::error_response(
                original_id,
                jsonrpc::INVALID_PARAMS,
                why,
            ));
        }
    };
    let gateway = &ctx.gateway;
    let text = gateway.policy.current().refusal(&gateway.name, &subject)?;
    let audited = format!("{method} {}", subject.name());
    Trail::new(app, &gateway.name, &audited, &ctx.agent, msg).refused("denied", &text);
    tracing::info!(subject = subject.name(), "request refused by the policy");
    Some(jsonrpc::error_response(
        original_id,
        crate::policy::POLICY_REFUSAL,
        text,
    ))
}

/// The answer to a request the upstream did not take: its quota given back, its trail and
/// metrics told.
fn unsent(
    app: &AppState,
    ctx: &CallContext,
    e: UpstreamError,
    original_id: Value,
    (tool, slot, trail): (Option<ToolName>, Option<Quota>, Option<Box<Trail>>),
) -> Reply {
    if let Some(slot) = slot {
        let _ = slot.release();
    }
    if let Some(mut trail) = trail {
        trail.failed(&e.to_string(), false);
    }
    if let Some(tool) = &tool {
        app.metrics.tool_call(
            &ctx.gateway.name,
            tool,
            crate::metrics::Outcome::Unavailable,
        );
    }
    let answer = if let UpstreamError::DuplicateRequestId { .. } = e {
        jsonrpc::error_response(original_id, jsonrpc::INVALID_REQUEST, e.to_string())
    } else if tool.is_some() {
        jsonrpc::tool_error_result(original_id, format!("{e}; try again later"))
    } else {
        jsonrpc::error_response(
            original_id,
            jsonrpc::INTERNAL_ERROR,
            format!("{e}; try again later"),
        )
    };
    ctx.answer(answer)
}
