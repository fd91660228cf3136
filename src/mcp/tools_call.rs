//! The policy gate on `tools/call`: the one place a call is judged before it may reach an upstream.
//! A refused call is answered here, as an `isError` result the model can read, and never forwarded;
//! a call that needs a human is handed to the approval queue (`parked.rs`).

use std::time::Instant;

use serde_json::Value;

use crate::app::AppState;
use crate::jsonrpc;
use crate::metrics::Outcome;
use crate::policy::{ApprovalRule, CallSite, Slot, Verdict};
use crate::upstream::Upstream;

pub enum Gate {
    /// Forward the call; give the slot back if the upstream does not carry it out.
    Forward { tool: String, slot: Option<Slot> },
    /// Park the call until reviewers decide under this rule.
    Park { tool: String, rule: ApprovalRule },
    /// Answer with this message instead.
    Refuse(Value),
}

/// Judges a `tools/call` request under the upstream's current policy. `rate_key` names whose
/// quota it counts against (the session, or the agent token for stateless clients).
pub fn gate(app: &AppState, upstream: &Upstream, rate_key: &str, msg: &Value) -> Gate {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let Some(tool) = msg.pointer("/params/name").and_then(Value::as_str) else {
        return Gate::Refuse(jsonrpc::error_response(
            id,
            jsonrpc::INVALID_PARAMS,
            "tools/call needs params.name, the tool's name",
        ));
    };
    let policy = upstream.policy.current();
    let call = CallSite {
        upstream: &upstream.name,
        tool,
        agent_key: rate_key,
    };
    let (outcome, text) = match policy.evaluate(&call, &app.limiter, Instant::now()) {
        Verdict::Allow { slot } => {
            return Gate::Forward {
                tool: tool.to_owned(),
                slot,
            };
        }
        Verdict::Deny { message } => (Outcome::Denied, message),
        Verdict::RateLimited { message, .. } => (Outcome::RateLimited, message),
        Verdict::RequireApproval(rule) => {
            return Gate::Park {
                tool: tool.to_owned(),
                rule,
            };
        }
    };
    tracing::info!(upstream = %upstream.name, tool, outcome = ?outcome, "tool call refused");
    app.metrics.tool_call(&upstream.name, tool, outcome);
    Gate::Refuse(jsonrpc::tool_error_result(id, text))
}
