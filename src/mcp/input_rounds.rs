//! A handshake-era upstream's server requests (elicitation, sampling, roots) for a 2026-07-28
//! client, which cannot be sent one: asked as that revision's input requests (SEP-2322).
//!
//! When a request Airlock translated for such an upstream meets a server request on its way,
//! the client is answered with an `InputRequiredResult` naming it (`inputRequests`, and a
//! `requestState` of Airlock's own, `ir_...`), and the upstream request, still running, is held
//! here with the rest of its answer. The client's retry (the same request, with
//! `inputResponses` and the state) hands the answer to the upstream and gets the rest of the
//! answer, or the next input request.
//!
//! Invariants: the upstream request is sent once, whatever the number of rounds; a state
//! continues one retry, of the same request (method and params, by digest) from the same agent
//! token and upstream, and a retry with a state Airlock no longer holds is refused rather than
//! run again; a request held [`HOLD`] without a retry, or refused on retry, has its server
//! request refused and is cancelled upstream (its audit trail ends `outcome_unknown`); a client
//! is asked only what it declared it can answer (the rest is refused to the upstream, as such a
//! client would); after [`MAX_ROUNDS`] rounds further server requests are refused; a tool
//! hidden or denied outright since stops the call on retry. Held requests live in this
//! process's memory, at most [`HELD_PER_TOKEN`] per agent token.

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
/// Requests one agent token may have held at once; past this its next input request is
/// refused to the upstream instead.
const HELD_PER_TOKEN: usize = 100;
/// Input requests one request may make of its client (the Python and TypeScript SDKs give up
/// after 10 rounds too).
const MAX_ROUNDS: u32 = 10;
/// The prefix of Airlock's own `requestState`s.
const STATE_PREFIX: &str = "ir_";

/// The server requests a 2026-07-28 client can be asked (`inputRequests` methods).
const INPUT_METHODS: [&str; 3] = ["elicitation/create", "sampling/createMessage", "roots/list"];

/// What a request whose server requests become input requests carries along: who asked, what
/// they can answer, and where the upstream's requests are answered.
pub struct Asking {
    rounds: Arc<InputRounds>,
    upstream: UpstreamSide,
    token_sha256: String,
    /// The client's declared capabilities (its request's `_meta`).
    capabilities: Value,
    /// What a retry must match: agent token, upstream, method and params.
    binding: String,
    /// Input requests made so far.
    round: u32,
}

/// Where the upstream's server requests of one call are answered.
#[derive(Clone)]
struct UpstreamSide {
    conn: Connection,
    session: SessionKey,
}

impl UpstreamSide {
    /// Answers a server request upstream (from a task: the caller may be a `Drop`).
    fn answer(&self, answer: Value) {
        let UpstreamSide { conn, session } = self.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.respond(&session, answer).await {
                tracing::debug!(error = %e, "an answer to a server request was not delivered");
            }
        });
    }

    /// Answers server request `id` with an error: the client will not answer it.
    fn refuse(&self, id: Value, why: &str) {
        self.answer(jsonrpc::error_response(id, jsonrpc::METHOD_NOT_FOUND, why));
    }
}

impl Asking {
    /// For a 2026-07-28 client's request `msg` to an upstream Airlock translates for.
    pub fn new(app: &AppState, ctx: &CallContext, msg: &Value) -> Self {
        Self {
            rounds: app.input_rounds.clone(),
            upstream: UpstreamSide {
                conn: ctx.conn.clone(),
                session: ctx.session.clone(),
            },
            token_sha256: ctx.token_sha256.clone(),
            capabilities: crate::jsonrpc::pointer(msg, "/params/_meta")
                .and_then(|meta| meta.get(crate::protocol::META_CLIENT_CAPABILITIES))
                .cloned()
                .unwrap_or_else(|| json!({})),
            binding: binding(ctx, msg),
            round: 0,
        }
    }

    /// Where requests held for input wait.
    pub fn rounds(&self) -> Arc<InputRounds> {
        self.rounds.clone()
    }

    /// Whether the client declared it can answer `request` (a server request).
    fn can_answer(&self, request: &Value) -> bool {
        declares(&self.capabilities, request)
    }

    fn refuse(&self, request: &Value, why: &str) {
        if let Some(id) = request.get("id") {
            self.upstream.refuse(id.clone(), why);
        }
    }
}

/// Whether `capabilities` (a 2026-07-28 client's) cover `request` (a server request).
fn declares(capabilities: &Value, request: &Value) -> bool {
    let declared = |capability: &str| capabilities.get(capability);
    match request.get("method").and_then(Value::as_str) {
        Some("elicitation/create") => {
            let Some(modes) = declared("elicitation") else {
                return false;
            };
            // Since 2025-11-25 an `elicitation` naming no mode means form mode only.
            let names_none = modes.as_object().is_none_or(serde_json::Map::is_empty);
            match crate::jsonrpc::pointer(request, "/params/mode").and_then(Value::as_str) {
                Some("url") => modes.get("url").is_some(),
                _ => names_none || modes.get("form").is_some(),
            }
        }
        Some("sampling/createMessage") => declared("sampling").is_some(),
        Some("roots/list") => declared("roots").is_some(),
        _ => false,
    }
}

/// What one reply item is to a request that asks its client for input.
pub enum Item {
    /// Anything but a server request: passed on as it is.
    Pass(Inbound),
    /// A server request the client was not asked (refused upstream): nothing to pass on.
    Refused,
    /// A server request to ask the client, with the state that asks it.
    Ask(Value, String),
}

/// Sorts a reply item of a request that asks its client for input.
pub fn sort(asking: &Asking, item: Inbound) -> Item {
    let request = match item {
        Inbound::Message(msg) if msg.get("method").is_some() && msg.get("id").is_some() => msg,
        other => return Item::Pass(other),
    };
    let method = request.get("method").and_then(Value::as_str);
    let refusal = if !method.is_some_and(|m| INPUT_METHODS.contains(&m)) {
        Some("a 2026-07-28 client cannot be sent this request")
    } else if !asking.can_answer(&request) {
        Some("the client did not declare the capability this request needs")
    } else if asking.round >= MAX_ROUNDS {
        Some("the client was asked for input too many times in one request")
    } else if asking.rounds.held_by(&asking.token_sha256) >= HELD_PER_TOKEN {
        Some("the agent has too many requests waiting for its input")
    } else {
        None
    };
    if let Some(why) = refusal {
        asking.refuse(&request, why);
        return Item::Refused;
    }
    match crate::secrets::generate_token() {
        Ok(token) => Item::Ask(request, token.replacen("alk_", STATE_PREFIX, 1)),
        Err(e) => {
            tracing::error!(error = %e, "no random bytes for a requestState");
            asking.refuse(&request, "Airlock cannot hold the request right now");
            Item::Refused
        }
    }
}

/// The requests held for their client's retry, by binding and state.
#[derive(Default)]
pub struct InputRounds(Mutex<HashMap<String, Held>>);

/// A request held between rounds. Dropped without a retry (expired, refused, Airlock stopping),
/// its server request is refused and (by `Forwarded`'s own drop) the call cancelled upstream.
pub struct Held {
    /// The request and the rest of its answer, until a retry takes them on.
    call: Option<(Forwarded, ReplyRx)>,
    /// The `inputRequests` key the client answers under.
    key: String,
    /// The server request waiting for the answer, until it is given one.
    waiting: Option<Value>,
    upstream: UpstreamSide,
    token_sha256: String,
    expiry: tokio::task::AbortHandle,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.expiry.abort();
        if let Some(id) = self.waiting.take() {
            self.upstream.refuse(
                id,
                "the client did not answer in time; the call is cancelled",
            );
        }
    }
}

impl InputRounds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests the agent token `token_sha256` has held.
    fn held_by(&self, token_sha256: &str) -> usize {
        self.lock()
            .values()
            .filter(|held| held.token_sha256 == token_sha256)
            .count()
    }

    /// Holds `forwarded` with the rest of its `replies` for the retry that answers `request`
    /// under `state` (see [`sort`]); the `InputRequiredResult` that asks the client.
    pub fn hold(
        self: &Arc<Self>,
        mut forwarded: Forwarded,
        replies: ReplyRx,
        request: Value,
        state: String,
    ) -> Value {
        let Some(asking) = forwarded.asking.as_mut() else {
            // Only a request that asks is sorted into `Ask`.
            return jsonrpc::error_response(
                forwarded.original_id.clone(),
                jsonrpc::INTERNAL_ERROR,
                "an input request without a request to hold",
            );
        };
        asking.round += 1;
        let held_key = held_key(&asking.binding, &state);
        let (upstream, token_sha256) = (asking.upstream.clone(), asking.token_sha256.clone());
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
        let rounds = self.clone();
        let expiring = held_key.clone();
        let expiry = tokio::spawn(async move {
            tokio::time::sleep(HOLD).await;
            if rounds.lock().remove(&expiring).is_some() {
                tracing::info!("a request held for its client's input was not retried in time");
            }
        })
        .abort_handle();
        self.lock().insert(
            held_key,
            Held {
                call: Some((forwarded, replies)),
                key,
                waiting: request.get("id").cloned(),
                upstream,
                token_sha256,
                expiry,
            },
        );
        answer
    }

    /// What to do with `msg`, a 2026-07-28 request that may be the retry of a held one: `None`
    /// when it names no state of Airlock's; else the held request (used up: a state continues
    /// once), or, when none is held for it, the refusal to answer with.
    pub fn take(&self, ctx: &CallContext, msg: &Value) -> Option<Result<Held, Value>> {
        let state = crate::jsonrpc::pointer(msg, "/params/requestState")
            .and_then(Value::as_str)
            .filter(|state| state.starts_with(STATE_PREFIX))?;
        let held = self.lock().remove(&held_key(&binding(ctx, msg), state));
        Some(held.ok_or_else(|| {
            jsonrpc::error_response(
                msg.get("id").cloned().unwrap_or(Value::Null),
                jsonrpc::INVALID_PARAMS,
                "Invalid params: requestState names no request Airlock holds (it was answered \
                 already, expired, belongs to another request, or is held by another Airlock \
                 instance); call again without it",
            )
        }))
    }
}

impl Held {
    /// The retry: the client's answer goes upstream, and the rest of the request's answer (or
    /// its next input request) comes back to this request.
    pub fn resume(mut self, msg: &Value) -> Reply {
        let given = crate::jsonrpc::pointer(msg, "/params/inputResponses")
            .and_then(|responses| responses.get(&self.key))
            .filter(|response| response.is_object())
            .cloned();
        if let Some(id) = self.waiting.take() {
            self.upstream.answer(match given {
                Some(result) => jsonrpc::response(id, result),
                None => jsonrpc::error_response(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    "the client's retry carried no answer to this request",
                ),
            });
        }
        let Some((mut forwarded, replies)) = self.call.take() else {
            return Reply::One(jsonrpc::error_response(
                msg.get("id").cloned().unwrap_or(Value::Null),
                jsonrpc::INTERNAL_ERROR,
                "the held request was already taken on",
            ));
        };
        forwarded.answer_as(msg.get("id").cloned().unwrap_or(Value::Null));
        forwarded.into_reply(replies)
    }

    /// A retry the policy now refuses: the call held upstream is let go (dropped: its server
    /// request refused, the call cancelled), its trail saying why.
    pub fn refused(mut self, why: &str) {
        if let Some(trail) = self
            .call
            .as_mut()
            .and_then(|(forwarded, _)| forwarded.trail.as_mut())
        {
            trail.failed(&format!("cancelled on retry: {why}"), true);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn elicit(mode: Option<&str>) -> Value {
        let mut request = json!({"method": "elicitation/create", "id": 1, "params": {}});
        if let Some(mode) = mode {
            request["params"]["mode"] = json!(mode);
        }
        request
    }

    #[test]
    fn a_client_is_asked_only_what_its_capabilities_cover() {
        let form_only = json!({"elicitation": {}});
        assert!(declares(&form_only, &elicit(None)));
        assert!(declares(&form_only, &elicit(Some("form"))));
        assert!(!declares(&form_only, &elicit(Some("url"))));
        let url_only = json!({"elicitation": {"url": {}}});
        assert!(declares(&url_only, &elicit(Some("url"))));
        assert!(!declares(&url_only, &elicit(None)), "form mode not named");
        let both = json!({"elicitation": {"form": {}, "url": {}}});
        assert!(declares(&both, &elicit(None)) && declares(&both, &elicit(Some("url"))));
        let sampling = json!({"method": "sampling/createMessage", "id": 2});
        assert!(declares(&json!({"sampling": {}}), &sampling));
        assert!(!declares(&form_only, &sampling));
        let roots = json!({"method": "roots/list", "id": 3});
        assert!(declares(&json!({"roots": {"listChanged": true}}), &roots));
        assert!(!declares(&json!({}), &roots));
        let other = json!({"method": "tasks/get", "id": 4});
        assert!(!declares(&both, &other));
    }
}
