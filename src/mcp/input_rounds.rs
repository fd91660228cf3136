//! A handshake-era upstream's server requests (elicitation, sampling, roots) for a 2026-07-28
//! client, which cannot be sent one: asked as that revision's input requests (SEP-2322).
//!
//! When a request Airlock translated for such an upstream meets a server request on its way,
//! the client is answered with an `InputRequiredResult` naming it (`inputRequests`, and a
//! `requestState` of Airlock's own), and the upstream request, still running, is held here with
//! the rest of its answer. The client's retry (the same request, with `inputResponses` and the
//! state) hands the answer to the upstream and gets the rest of the answer, or the next input
//! request.
//!
//! Invariants: the upstream request is sent once, whatever the number of rounds; a state
//! continues one retry, of the same request (method and params, by digest) from the same agent
//! token and upstream; a request held [`HOLD`] without a retry is cancelled upstream (its audit
//! trail ends `outcome_unknown`); a client is asked only what it declared it can answer (the
//! rest is refused to the upstream, as such a client would); a tool hidden or denied outright
//! since stops the call on retry. Held requests live in this process's memory: a retry that
//! reaches another instance is a new request, judged afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::forward::CallContext;
use super::reply::{Forwarded, Reply};
use crate::app::AppState;
use crate::domain::{ArgsDigest, SessionKey};
use crate::jsonrpc;
use crate::upstream::{Connection, Inbound, ReplyRx};

/// How long a held request waits for the client's retry.
pub const HOLD: Duration = Duration::from_secs(600);
/// Requests held at most; past this a new input request is refused to the upstream instead.
const HELD: usize = 1_000;

/// The server requests a 2026-07-28 client can be asked (`inputRequests` methods).
const INPUT_METHODS: [&str; 3] = ["elicitation/create", "sampling/createMessage", "roots/list"];

/// What a request whose server requests become input requests carries along: who asked, what
/// they can answer, and where the upstream's requests are answered.
pub struct Asking {
    rounds: Arc<InputRounds>,
    conn: Connection,
    session: SessionKey,
    /// The client's declared capabilities (its request's `_meta`).
    capabilities: Value,
    /// What a retry must match: agent token, upstream, method and params.
    binding: String,
}

impl Asking {
    /// For a 2026-07-28 client's request `msg` to an upstream Airlock translates for.
    pub fn new(app: &AppState, ctx: &CallContext, msg: &Value) -> Self {
        Self {
            rounds: app.input_rounds.clone(),
            conn: ctx.conn.clone(),
            session: ctx.session.clone(),
            capabilities: msg
                .pointer("/params/_meta")
                .and_then(|meta| meta.get(crate::protocol::META_CLIENT_CAPABILITIES))
                .cloned()
                .unwrap_or_else(|| json!({})),
            binding: binding(ctx, msg),
        }
    }

    /// Where requests held for input wait.
    pub fn rounds(&self) -> Arc<InputRounds> {
        self.rounds.clone()
    }

    /// Whether the client declared it can answer `request` (a server request).
    fn can_answer(&self, request: &Value) -> bool {
        let method = request.get("method").and_then(Value::as_str);
        let declared = |capability: &str| self.capabilities.get(capability).is_some();
        match method {
            Some("elicitation/create") => {
                // Since 2025-11-25 an `elicitation` without modes means form mode only.
                let url = request.pointer("/params/mode").and_then(Value::as_str) == Some("url");
                let elicitation = self.capabilities.get("elicitation");
                match elicitation {
                    Some(modes) if url => modes.get("url").is_some(),
                    Some(_) => true,
                    None => false,
                }
            }
            Some("sampling/createMessage") => declared("sampling"),
            Some("roots/list") => declared("roots"),
            _ => false,
        }
    }

    /// Answers a server request upstream with an error: the client cannot be asked it.
    fn refuse(&self, request: &Value, why: &str) {
        let Some(id) = request.get("id").cloned() else {
            return;
        };
        let answer = jsonrpc::error_response(id, jsonrpc::METHOD_NOT_FOUND, why);
        let (conn, session) = (self.conn.clone(), self.session.clone());
        tokio::spawn(async move {
            if let Err(e) = conn.respond(&session, answer).await {
                tracing::debug!(error = %e, "a refusal of a server request was not delivered");
            }
        });
    }
}

/// What one reply item is to a request that asks its client for input.
pub enum Item {
    /// Anything but a server request: passed on as it is.
    Pass(Inbound),
    /// A server request the client was not asked (refused upstream): nothing to pass on.
    Refused,
    /// A server request to ask the client.
    Ask(Value),
}

/// Sorts a reply item of a request that asks its client for input.
pub fn sort(asking: &Asking, item: Inbound) -> Item {
    let request = match item {
        Inbound::Message(msg) if msg.get("method").is_some() && msg.get("id").is_some() => msg,
        other => return Item::Pass(other),
    };
    let method = request.get("method").and_then(Value::as_str);
    if !method.is_some_and(|m| INPUT_METHODS.contains(&m)) {
        asking.refuse(&request, "a 2026-07-28 client cannot be sent this request");
        return Item::Refused;
    }
    if !asking.can_answer(&request) {
        asking.refuse(
            &request,
            "the client did not declare the capability this request needs",
        );
        return Item::Refused;
    }
    Item::Ask(request)
}

/// The requests held for their client's retry, by binding and state.
#[derive(Default)]
pub struct InputRounds(Mutex<HashMap<String, Held>>);

/// A request held between rounds.
pub struct Held {
    forwarded: Forwarded,
    replies: ReplyRx,
    /// The `inputRequests` key the client answers under, and the upstream's id of the request.
    key: String,
    upstream_request: Value,
}

impl InputRounds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new `requestState` for asking `request` (a server request) of `asking`'s client; `None`
    /// when no request can be held now (then the server request is refused upstream, and the
    /// request goes on without it).
    pub fn state_for(&self, asking: &Asking, request: &Value) -> Option<String> {
        if self.lock().len() >= HELD {
            asking.refuse(request, "Airlock holds too many requests waiting for input");
            return None;
        }
        match crate::secrets::generate_token() {
            Ok(token) => Some(token.replacen("alk_", "ir_", 1)),
            Err(e) => {
                tracing::error!(error = %e, "no random bytes for a requestState");
                asking.refuse(request, "Airlock cannot hold the request right now");
                None
            }
        }
    }

    /// Holds `forwarded` (a request of `asking`'s) with the rest of its `replies` for the retry
    /// that answers `request` under `state`; the `InputRequiredResult` that asks it.
    pub fn hold(
        self: &Arc<Self>,
        forwarded: Forwarded,
        replies: ReplyRx,
        request: Value,
        state: String,
    ) -> Value {
        let binding = forwarded
            .asking
            .as_ref()
            .map(|asking| asking.binding.clone())
            .unwrap_or_default();
        let held_key = held_key(&binding, &state);
        let method = request.get("method").cloned().unwrap_or(Value::Null);
        let key = method.as_str().unwrap_or("input").to_owned();
        let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
        let answer = jsonrpc::response(
            forwarded.original_id.clone(),
            json!({
                "resultType": "input_required",
                "inputRequests": {key.clone(): {"method": method, "params": params}},
                "requestState": state,
            }),
        );
        self.lock().insert(
            held_key.clone(),
            Held {
                forwarded,
                replies,
                key,
                upstream_request: request.get("id").cloned().unwrap_or(Value::Null),
            },
        );
        let rounds = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HOLD).await;
            // Dropped: cancelled upstream, its trail ends `outcome_unknown`.
            if rounds.lock().remove(&held_key).is_some() {
                tracing::info!("a request held for its client's input was not retried in time");
            }
        });
        answer
    }

    /// The request held for `msg`, a 2026-07-28 retry carrying a `requestState`, if this is
    /// its retry (used up: a state continues once).
    pub fn take(&self, ctx: &CallContext, msg: &Value) -> Option<Held> {
        let state = msg
            .pointer("/params/requestState")
            .and_then(Value::as_str)?;
        self.lock().remove(&held_key(&binding(ctx, msg), state))
    }
}

/// The retry of a held request: the client's answer goes upstream, and the rest of the
/// request's answer (or its next input request) comes back to this request.
pub fn resume(msg: &Value, held: Held) -> Reply {
    let Held {
        mut forwarded,
        replies,
        key,
        upstream_request,
    } = held;
    let given = msg
        .pointer("/params/inputResponses")
        .and_then(|responses| responses.get(&key))
        .filter(|response| response.is_object())
        .cloned();
    let answer = match given {
        Some(result) => jsonrpc::response(upstream_request, result),
        None => jsonrpc::error_response(
            upstream_request,
            jsonrpc::INVALID_PARAMS,
            "the client's retry carried no answer to this request",
        ),
    };
    if let Some(asking) = &forwarded.asking {
        let (conn, session) = (asking.conn.clone(), asking.session.clone());
        tokio::spawn(async move {
            if let Err(e) = conn.respond(&session, answer).await {
                tracing::warn!(error = %e, "a client's input did not reach the upstream");
            }
        });
    }
    forwarded.answer_as(msg.get("id").cloned().unwrap_or(Value::Null));
    forwarded.into_reply(replies)
}

/// What a retry of `msg` must match: the agent token, upstream, method and params (without
/// the `_meta`, answers and state that change between rounds).
fn binding(ctx: &CallContext, msg: &Value) -> String {
    let mut params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
    if let Some(params) = params.as_object_mut() {
        for key in ["_meta", "inputResponses", "requestState"] {
            params.remove(key);
        }
    }
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!(
        "{}\n{}\n{method}\n{}",
        ctx.token_sha256,
        ctx.gateway.name,
        ArgsDigest::of(&params).as_str()
    )
}

fn held_key(binding: &str, state: &str) -> String {
    crate::secrets::sha256_hex(format!("{binding}\n{state}").as_bytes())
}
