//! The policy gate on `tools/call`: the one place a call is judged before it may reach an upstream.
//! A refused call is answered here, as an `isError` result the model can read, and never forwarded;
//! a call that needs a human is handed to the approval queue (`parked.rs`).
//!
//! Rate limits count in this process's memory, per agent by default (across its sessions and both
//! protocol families) or per session with `"per": "session"`. On PostgreSQL a limit that other
//! instances may see calls for (per agent, or per token for 2026-07-28 clients, which a load
//! balancer spreads over instances) is also counted in the database, so it holds across
//! instances; if the database cannot count, the local count still applies.

use std::time::Instant;

use serde_json::Value;

use super::forward::CallContext;
use super::trail::Trail;
use crate::app::AppState;
use crate::domain::ToolName;
use crate::jsonrpc;
use crate::metrics::Outcome;
use crate::policy::{
    ApprovalRule, CallSite, CounterKey, CounterValues, Judge, Policy, Reservation, Rule,
    Sensitivity, Slot, Verdict,
};
use crate::store::{Backend, CounterStep, Store};

/// A call's place within its limits: the local rate-limit slot, the shared one when there is
/// one, and the counter increments it reserved; all given back if the upstream does not carry
/// the call out.
pub struct Quota {
    local: Option<Slot>,
    shared: Option<String>,
    counters: Vec<CounterStep>,
    store: Store,
}

impl Quota {
    /// Gives the call back to its limits (the upstream did not carry it out): the local slot at
    /// once, the database's in a task, whose handle is returned so an answer can wait for it (the
    /// agent's next call then finds its quota back).
    pub fn release(self) -> Option<tokio::task::JoinHandle<()>> {
        if let Some(local) = self.local {
            local.release();
        }
        if self.shared.is_none() && self.counters.is_empty() {
            return None;
        }
        let (store, shared, counters) = (self.store, self.shared, self.counters);
        Some(tokio::spawn(async move {
            if let Some(id) = shared
                && let Err(e) = store.release_rate_slot(&id).await
            {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot give a shared rate slot back");
            }
            if !counters.is_empty()
                && let Err(e) = store.release_counters(&counters).await
            {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot give policy counters back");
            }
        }))
    }
}

pub enum Gate {
    /// Forward the call; give the quota back if the upstream does not carry it out. The trail
    /// records how it ends.
    Forward {
        tool: ToolName,
        slot: Option<Quota>,
        trail: Box<Trail>,
        /// Retries of a multi-round-trip call this request continues (0: a call of its own).
        round: u32,
    },
    /// Park the call until reviewers decide under this rule.
    Park { tool: ToolName, rule: ApprovalRule },
    /// Answer with this message instead.
    Refuse(Value),
}

/// The longest tool name a call may carry, in bytes. Names are stored and audited with every
/// call; MCP asks for at most 128 characters, this leaves room for servers that go beyond.
pub const MAX_TOOL_NAME: usize = 256;

/// Judges a `tools/call` request under the upstream's current policy, and records the verdict
/// in the audit log (a parked call is recorded by the queue when it is stored).
/// Why a multi-round-trip retry is let through (the audit log's `allowed` detail).
const CONTINUES: &str = "allowed: continues a call Airlock let through (its requestState)";

pub async fn gate(app: &AppState, ctx: &CallContext, msg: &Value) -> Gate {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let tool = match tool_name(msg) {
        Ok(tool) => tool,
        Err(why) => {
            return Gate::Refuse(jsonrpc::error_response(id, jsonrpc::INVALID_PARAMS, why));
        }
    };
    let gateway = &ctx.gateway;
    let policy = gateway.policy.current();
    let call = CallSite {
        upstream: &gateway.name,
        tool,
        agent: &ctx.agent,
        session: &ctx.rate_key,
        args: crate::jsonrpc::pointer(msg, "/params/arguments").unwrap_or(&Value::Null),
    };
    let trail = || Trail::new(app, &gateway.name, tool, &ctx.agent, msg);
    if let Some(refusal) = app.pins.refusal(&gateway.name, tool) {
        return refuse(app, ctx, tool, trail(), Outcome::Denied, refusal, id);
    }
    if let Some(round) = continues(app, ctx, tool, msg) {
        return match refuses_going_on(app, ctx, msg) {
            Some(answer) => Gate::Refuse(answer),
            None => admit(app, ctx, (tool, round), None, trail(), CONTINUES, id).await,
        };
    }
    let unix_now = time::OffsetDateTime::now_utc().unix_timestamp();
    let risk = app.catalogue.assessment(&gateway.name, tool).await;
    let counters = match read_counters(&app.store, &policy, &call, unix_now).await {
        Ok(counters) => counters,
        Err(refusal) => return refuse(app, ctx, tool, trail(), Outcome::Unavailable, refusal, id),
    };
    let judge = Judge {
        limiter: &app.limiter,
        now: Instant::now(),
        unix_now,
        counters: &counters,
        risk: &risk,
        sensitive: Sensitivity::of(&app.config.policy),
    };
    let (outcome, text) = match policy.evaluate(&call, &judge) {
        Verdict::Allow {
            slot,
            reserve,
            why,
            shadow,
        } => match quota(app, &policy, &call, ctx.stateless, slot, reserve, unix_now).await {
            Ok(slot) => {
                shadowed(app, ctx, tool, &shadow);
                return admit(app, ctx, (tool, 0), slot, trail(), &why, id).await;
            }
            Err((outcome, message)) => (outcome, message),
        },
        Verdict::Deny { message } => (Outcome::Denied, message),
        Verdict::RateLimited { message, .. } => (Outcome::RateLimited, message),
        Verdict::RequireApproval { rule, shadow } => {
            shadowed(app, ctx, tool, &shadow);
            let rule = if shadow.is_empty() {
                rule
            } else {
                rule.because(shadow.join("; "))
            };
            return Gate::Park {
                tool: ToolName::new(tool),
                rule,
            };
        }
    };
    refuse(app, ctx, tool, trail(), outcome, text, id)
}

/// Whether a call already under way upstream may go on (the retry of a request held for its
/// client's input): only a refusal outright stops it (a changed definition, the tool hidden or
/// denied since); then the refusal, recorded like any other.
pub fn refuses_going_on(app: &AppState, ctx: &CallContext, msg: &Value) -> Option<Value> {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let tool = tool_name(msg).ok()?;
    let gateway = &ctx.gateway;
    let trail = || Trail::new(app, &gateway.name, tool, &ctx.agent, msg);
    let refusal = app.pins.refusal(&gateway.name, tool).or_else(|| {
        gateway.policy.current().refuses_outright(&CallSite {
            upstream: &gateway.name,
            tool,
            agent: &ctx.agent,
            session: &ctx.rate_key,
            args: crate::jsonrpc::pointer(msg, "/params/arguments").unwrap_or(&Value::Null),
        })
    })?;
    Some(refused(
        app,
        ctx,
        tool,
        trail(),
        Outcome::Denied,
        refusal,
        id,
    ))
}

/// The tool a `tools/call` names, or why it names none a server could have.
fn tool_name(msg: &Value) -> Result<&str, String> {
    let Some(tool) = crate::jsonrpc::pointer(msg, "/params/name").and_then(Value::as_str) else {
        return Err("tools/call needs params.name, the tool's name".to_owned());
    };
    if tool.len() > MAX_TOOL_NAME {
        return Err(format!(
            "tools/call params.name is too long ({} bytes; at most {MAX_TOOL_NAME}); no tool has such a name",
            tool.len()
        ));
    }
    Ok(tool)
}

/// Whether `msg` is the retry of a multi-round-trip call Airlock let through, carrying the
/// `requestState` its upstream gave (used up here: a state continues once); the retry's round
/// when it does.
fn continues(app: &AppState, ctx: &CallContext, tool: &str, msg: &Value) -> Option<u32> {
    let state = crate::jsonrpc::pointer(msg, "/params/requestState").and_then(Value::as_str)?;
    app.continuations.take(&ctx.continuation(tool, msg)?, state)
}

/// Records what rules in audit mode would have done with the call (`shadowed` events, which
/// the dashboard's audit log lists and filters).
fn shadowed(app: &AppState, ctx: &CallContext, tool: &str, shadow: &[String]) {
    for text in shadow {
        let mut entry =
            crate::audit::Entry::now("shadowed", &crate::domain::Actor::agent(&ctx.agent));
        entry.upstream = Some(ctx.gateway.name.to_string());
        entry.tool = Some(tool.to_owned());
        entry.detail = Some(text.clone());
        app.audit.record(entry);
    }
}

/// Answers a refused call with `text`, recorded in the audit log and the metrics.
fn refuse(
    app: &AppState,
    ctx: &CallContext,
    tool: &str,
    trail: Trail,
    outcome: Outcome,
    text: String,
    id: Value,
) -> Gate {
    Gate::Refuse(refused(app, ctx, tool, trail, outcome, text, id))
}

/// The answer to a refused call, recorded in the audit log and the metrics.
fn refused(
    app: &AppState,
    ctx: &CallContext,
    tool: &str,
    trail: Trail,
    outcome: Outcome,
    text: String,
    id: Value,
) -> Value {
    let kind = match outcome {
        Outcome::Denied => "denied",
        Outcome::RateLimited => "rate_limited",
        _ => "unavailable",
    };
    trail.refused(kind, &text);
    tracing::info!(tool, outcome = ?outcome, "tool call refused");
    app.metrics.tool_call(&ctx.gateway.name, tool, outcome);
    jsonrpc::tool_error_result(id, text)
}

/// The database key of one of this agent's counters.
fn counter_key(call: &CallSite<'_>, key: &CounterKey) -> String {
    crate::secrets::sha256_hex(
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            call.agent, call.upstream, key.scope, key.counter
        )
        .as_bytes(),
    )
}

/// The current values of the counters the call's rules read. A store that cannot say refuses
/// the call (fail closed: a spending cap that cannot be read is not waived).
async fn read_counters(
    store: &Store,
    policy: &Policy,
    call: &CallSite<'_>,
    unix_now: i64,
) -> Result<CounterValues, String> {
    let keys = policy.counters_read(call.tool, call.agent);
    if keys.is_empty() {
        return Ok(CounterValues::default());
    }
    let stored: Vec<(String, i64)> = keys
        .iter()
        .map(|key| {
            let window = policy
                .counter_window(key)
                .unwrap_or(crate::policy::Window::Day);
            (counter_key(call, key), window.start(unix_now))
        })
        .collect();
    match store.counter_values(&stored).await {
        Ok(values) => Ok(CounterValues(keys.into_iter().zip(values).collect())),
        Err(e) => {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot read policy counters");
            Err(format!(
                "Airlock cannot read the policy's counters right now; not run ({}.{})",
                call.upstream, call.tool
            ))
        }
    }
}

/// Takes the call's place in its limits: the shared rate slot (PostgreSQL) and the counter
/// increments. Refused: what was taken is given back, and the outcome and text returned.
async fn quota(
    app: &AppState,
    policy: &Policy,
    call: &CallSite<'_>,
    stateless: bool,
    local: Option<Slot>,
    reserve: Vec<Reservation>,
    unix_now: i64,
) -> Result<Option<Quota>, (Outcome, String)> {
    if local.is_none() && reserve.is_empty() {
        return Ok(None);
    }
    let mut quota = Quota {
        local,
        shared: None,
        counters: Vec::new(),
        store: app.store.clone(),
    };
    if quota.local.is_some() && app.store.backend() == Backend::Postgres {
        match shared_slot(app, policy.rule_for(call.tool).rule, call, stateless).await {
            Ok(shared) => quota.shared = shared,
            Err(message) => {
                let _ = quota.release();
                return Err((Outcome::RateLimited, message));
            }
        }
    }
    if reserve.is_empty() {
        return Ok(Some(quota));
    }
    let steps: Vec<CounterStep> = reserve
        .iter()
        .map(|taken| CounterStep {
            key: counter_key(call, &taken.key),
            window_start: taken.window_start,
            amount: taken.amount,
            limit: taken.limit,
        })
        .collect();
    let name = format!("{}.{}", call.upstream, call.tool);
    match app.store.reserve_counters(&steps).await {
        Ok(Ok(())) => {
            quota.counters = steps;
            Ok(Some(quota))
        }
        Ok(Err(over)) => {
            let _ = quota.release();
            let taken = &reserve[over];
            let retry = (taken.window_start + taken.window.seconds() - unix_now).max(1);
            Err((
                Outcome::RateLimited,
                format!(
                    "Rate limit for {name}: {}; retry after {retry} s",
                    taken.refusal
                ),
            ))
        }
        Err(e) => {
            let _ = quota.release();
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot reserve policy counters");
            Err((
                Outcome::Unavailable,
                format!(
                    "Airlock cannot count the call against the policy's counters right now; not run ({name})"
                ),
            ))
        }
    }
}

/// Records that the call is allowed and lets it through; a call the audit log cannot take is
/// refused (fail closed) and its quota given back.
async fn admit(
    app: &AppState,
    ctx: &CallContext,
    (tool, round): (&str, u32),
    slot: Option<Quota>,
    mut trail: Trail,
    why: &str,
    id: Value,
) -> Gate {
    if trail.allowed(why).await.is_ok() {
        return Gate::Forward {
            tool: ToolName::new(tool),
            slot,
            trail: Box::new(trail),
            round,
        };
    }
    if let Some(slot) = slot {
        let _ = slot.release();
    }
    let upstream = &ctx.gateway.name;
    tracing::error!(tool, "audit log not being written; call refused");
    app.metrics.tool_call(upstream, tool, Outcome::Unavailable);
    Gate::Refuse(jsonrpc::tool_error_result(
        id,
        format!(
            "Airlock cannot record the call in its audit log right now; not run ({upstream}.{tool})"
        ),
    ))
}

/// Counts the call in the database too, so the limit holds across instances (unless it counts
/// per handshake-era session, which lives on one instance): the shared slot's id, if one was
/// taken. Refused: the refusal's text. If the database cannot count, the local limit alone
/// applies (a rate limit is a budget, not a safety check: failing open here keeps allowed tools
/// working through a database outage).
async fn shared_slot(
    app: &AppState,
    rule: &Rule,
    call: &CallSite<'_>,
    stateless: bool,
) -> Result<Option<String>, String> {
    let Rule::Allow {
        rate_limit: Some(limit),
    } = rule
    else {
        return Ok(None);
    };
    if limit.per() == crate::policy::RateScope::Session && !stateless {
        return Ok(None);
    }
    let bucket = crate::secrets::sha256_hex(
        format!(
            "{}\u{1f}{}\u{1f}{}",
            call.rate_key(limit),
            call.upstream,
            call.tool
        )
        .as_bytes(),
    );
    match app
        .store
        .take_rate_slot(&bucket, limit.max(), limit.window())
        .await
    {
        Ok(Ok(id)) => Ok(Some(id)),
        Ok(Err(wait)) => {
            let name = format!("{}.{}", call.upstream, call.tool);
            Err(crate::policy::rate_limited(&name, *limit, wait).0)
        }
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot count a shared rate limit; the local count applies");
            Ok(None)
        }
    }
}
