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
use crate::policy::{ApprovalRule, CallSite, Rule, Slot, Verdict};
use crate::store::{Backend, Store};

/// A call's place within its rate limit: the local slot, and the shared one when there is one.
pub struct Quota {
    local: Slot,
    shared: Option<(Store, String)>,
}

impl Quota {
    /// Gives the call back to the limit (the upstream did not carry it out).
    pub fn release(self) {
        self.local.release();
        if let Some((store, id)) = self.shared {
            tokio::spawn(async move {
                if let Err(e) = store.release_rate_slot(&id).await {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot give a shared rate slot back");
                }
            });
        }
    }
}

pub enum Gate {
    /// Forward the call; give the quota back if the upstream does not carry it out. The trail
    /// records how it ends.
    Forward {
        tool: ToolName,
        slot: Option<Quota>,
        trail: Box<Trail>,
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
pub async fn gate(app: &AppState, ctx: &CallContext, msg: &Value) -> Gate {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let Some(tool) = msg.pointer("/params/name").and_then(Value::as_str) else {
        return Gate::Refuse(jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            "tools/call needs params.name, the tool's name",
        ));
    };
    if tool.len() > MAX_TOOL_NAME {
        return Gate::Refuse(jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            format!(
                "tools/call params.name is too long ({} bytes; at most {MAX_TOOL_NAME}); no tool has such a name",
                tool.len()
            ),
        ));
    }
    let gateway = &ctx.gateway;
    let policy = gateway.policy.current();
    let call = CallSite {
        upstream: &gateway.name,
        tool,
        agent: &ctx.agent,
        session: &ctx.rate_key,
    };
    let trail = || Trail::new(app, &gateway.name, tool, &ctx.agent, msg);
    let (outcome, text) = match policy.evaluate(&call, &app.limiter, Instant::now()) {
        Verdict::Allow { slot } => {
            let slot = match slot {
                None => Ok(None),
                Some(local) if app.store.backend() == Backend::Postgres => {
                    shared_quota(app, policy.rule_for(tool).rule, &call, ctx.stateless, local)
                        .await
                        .map(Some)
                }
                Some(local) => Ok(Some(Quota {
                    local,
                    shared: None,
                })),
            };
            match slot {
                Ok(slot) => {
                    let why = if policy.rule_for(tool).listed {
                        "allowed by its rule"
                    } else {
                        "allowed by the policy's default"
                    };
                    return admit(app, ctx, tool, slot, trail(), why, id).await;
                }
                Err(message) => (Outcome::RateLimited, message),
            }
        }
        Verdict::Deny { message } => (Outcome::Denied, message),
        Verdict::RateLimited { message, .. } => (Outcome::RateLimited, message),
        Verdict::RequireApproval(rule) => {
            return Gate::Park {
                tool: ToolName::new(tool),
                rule,
            };
        }
    };
    let kind = if outcome == Outcome::Denied {
        "denied"
    } else {
        "rate_limited"
    };
    trail().refused(kind, &text);
    tracing::info!(tool, outcome = ?outcome, "tool call refused");
    app.metrics.tool_call(&gateway.name, tool, outcome);
    Gate::Refuse(jsonrpc::tool_error_result(id, text))
}

/// Records that the call is allowed and lets it through; a call the audit log cannot take is
/// refused (fail closed) and its quota given back.
async fn admit(
    app: &AppState,
    ctx: &CallContext,
    tool: &str,
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
        };
    }
    if let Some(slot) = slot {
        slot.release();
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
/// per handshake-era session, which lives on one instance). Refused: the local slot is given back
/// and the refusal's text returned. If the database cannot count, the local limit alone applies
/// (a rate limit is a budget, not a safety check: failing open here keeps allowed tools working
/// through a database outage).
async fn shared_quota(
    app: &AppState,
    rule: &Rule,
    call: &CallSite<'_>,
    stateless: bool,
    local: Slot,
) -> Result<Quota, String> {
    let local_only = Quota {
        local,
        shared: None,
    };
    let Rule::Allow {
        rate_limit: Some(limit),
    } = rule
    else {
        return Ok(local_only);
    };
    if limit.per() == crate::policy::RateScope::Session && !stateless {
        return Ok(local_only);
    }
    let local = local_only.local;
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
        Ok(Ok(id)) => Ok(Quota {
            local,
            shared: Some((app.store.clone(), id)),
        }),
        Ok(Err(wait)) => {
            local.release();
            let name = format!("{}.{}", call.upstream, call.tool);
            Err(crate::policy::rate_limited(&name, *limit, wait).0)
        }
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot count a shared rate limit; the local count applies");
            Ok(Quota {
                local,
                shared: None,
            })
        }
    }
}
