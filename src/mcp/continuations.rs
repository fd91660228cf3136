//! Multi-round-trip continuations (2026-07-28, SEP-2322). An upstream that needs the client's
//! input answers a `tools/call` with an `InputRequiredResult` (`inputRequests`, `requestState`);
//! the client calls again with the answers and the state. When Airlock let the first call
//! through (by its rule, or a reviewer's approval), the retry carrying that state is the same
//! call going on: it is forwarded without parking again and without charging rate limits or
//! counters a second time. An outright refusal (the tool hidden or denied now) still refuses it.
//!
//! A continuation is bound to the agent token, the upstream, the tool, the digest of the
//! arguments the upstream ran with (an approval whose reviewer changed the arguments covers no
//! retry with the agent's own) and the SHA-256 of the state; it continues one retry and
//! expires after [`TTL`]. `requestState` itself passes through unchanged. Continuations live in
//! this process's memory: a retry that reaches another instance is judged afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::domain::ArgsDigest;

/// The digest of a `tools/call` request's arguments (`{}` when it has none), as the audit log
/// and continuations bind a call by.
pub fn digest_of(msg: &Value) -> ArgsDigest {
    match crate::jsonrpc::pointer(msg, "/params/arguments") {
        Some(args) => ArgsDigest::of(args),
        None => ArgsDigest::of(&Value::Object(serde_json::Map::new())),
    }
}

/// How long a retry may take to come.
pub const TTL: Duration = Duration::from_secs(600);
/// Continuations held at most; the oldest give way (their retries are judged afresh).
const HELD: usize = 10_000;
/// Retries one call may continue without a new verdict (the Python and TypeScript SDKs give up
/// after 10 rounds too); the next is judged afresh, so a chain cannot outlive its limits.
pub const MAX_ROUNDS: u32 = 10;

/// What one call's continuation is bound to, short of the state.
#[derive(Clone)]
pub struct Bound {
    token_sha256: String,
    upstream: String,
    tool: String,
    digest: ArgsDigest,
    /// Retries of the call so far (0 for its first request).
    round: u32,
}

impl Bound {
    pub fn new(token_sha256: &str, upstream: &str, tool: &str, digest: ArgsDigest) -> Self {
        Self {
            token_sha256: token_sha256.to_owned(),
            upstream: upstream.to_owned(),
            tool: tool.to_owned(),
            digest,
            round: 0,
        }
    }

    /// The same call, `round` retries on.
    pub fn at_round(mut self, round: u32) -> Self {
        self.round = round;
        self
    }

    fn key(&self, state: &str) -> String {
        let text = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.token_sha256,
            self.upstream,
            self.tool,
            self.digest.as_str(),
            crate::secrets::sha256_hex(state.as_bytes())
        );
        crate::secrets::sha256_hex(text.as_bytes())
    }
}

/// The continuations Airlock issued and no retry has used yet.
#[derive(Default)]
pub struct Continuations(Mutex<HashMap<String, (Instant, u32)>>);

impl Continuations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes the `requestState` of `answer` (a final `tools/call` answer), if it is an
    /// `InputRequiredResult` carrying one.
    pub fn note(&self, bound: &Bound, answer: &Value) {
        let Some(result) = answer.get("result") else {
            return;
        };
        if bound.round >= MAX_ROUNDS {
            return;
        }
        if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
            return;
        }
        let Some(state) = result.get("requestState").and_then(Value::as_str) else {
            return;
        };
        let now = Instant::now();
        let mut held = self.lock();
        held.retain(|_, (expires, _)| *expires > now);
        if held.len() >= HELD
            && let Some(oldest) = held
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(key, _)| key.clone())
        {
            held.remove(&oldest);
        }
        held.insert(bound.key(state), (now + TTL, bound.round + 1));
    }

    /// The round of the retry `state` continues, for a call of `bound`; `None` when it continues
    /// none (once: the continuation is used up).
    pub fn take(&self, bound: &Bound, state: &str) -> Option<u32> {
        self.lock()
            .remove(&bound.key(state))
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, round)| round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bound(tool: &str, args: Value) -> Bound {
        Bound::new("token", "up", tool, ArgsDigest::of(&args))
    }

    fn asked(state: &str) -> Value {
        json!({"result": {"resultType": "input_required", "requestState": state}})
    }

    #[test]
    fn a_noted_state_continues_one_retry_of_the_same_call_only() {
        let held = Continuations::default();
        held.note(&bound("t", json!({"a": 1})), &asked("s1"));
        let other_args = held.take(&bound("t", json!({"a": 2})), "s1");
        assert_eq!(other_args, None);
        assert_eq!(held.take(&bound("other", json!({"a": 1})), "s1"), None);
        assert_eq!(held.take(&bound("t", json!({"a": 1})), "s2"), None);
        assert_eq!(held.take(&bound("t", json!({"a": 1})), "s1"), Some(1));
        assert_eq!(
            held.take(&bound("t", json!({"a": 1})), "s1"),
            None,
            "used up"
        );
    }

    #[test]
    fn a_chain_of_retries_ends_after_the_last_round() {
        let held = Continuations::default();
        held.note(&bound("t", json!({})).at_round(MAX_ROUNDS - 1), &asked("s"));
        assert_eq!(held.take(&bound("t", json!({})), "s"), Some(MAX_ROUNDS));
        held.note(&bound("t", json!({})).at_round(MAX_ROUNDS), &asked("s"));
        assert_eq!(
            held.take(&bound("t", json!({})), "s"),
            None,
            "judged afresh"
        );
    }

    #[test]
    fn only_input_required_results_with_a_state_are_noted() {
        let held = Continuations::default();
        let b = bound("t", json!({}));
        held.note(
            &b,
            &json!({"result": {"resultType": "complete", "requestState": "s"}}),
        );
        held.note(&b, &json!({"result": {"resultType": "input_required"}}));
        held.note(&b, &json!({"error": {"code": -32602, "message": "no"}}));
        assert_eq!(held.take(&b, "s"), None);
    }
}
