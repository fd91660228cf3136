//! The conformance fixture's multi-round-trip tools (2026-07-28, SEP-2322): an
//! `InputRequiredResult` naming what the client must answer, then a result once the retry
//! carries the answers (and, where one was given, the sealed `requestState`).

use hmac::{Hmac, Mac};
use rmcp::model::{CallToolRequestParams, CallToolResponse, InputRequiredResult};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use sha2::Sha256;

use super::fixture::{Fixture, client_capabilities, model, text_result};

/// The key `requestState` is sealed with (the fixture's own; a test server holds no secrets).
const STATE_KEY: &[u8] = b"airlock conformance fixture request state";

/// `requestState` for `round` of `tool`: the round and an HMAC over it, so a changed state is
/// refused (the tampered-state scenario).
fn seal(tool: &str, round: u32) -> String {
    let body = format!("{tool}:{round}");
    format!("{body}.{}", hex::encode(mac(&body)))
}

fn mac(body: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(STATE_KEY).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The round a sealed `state` of `tool` names, or an invalid-params error when it was changed.
fn open(tool: &str, state: &str) -> Result<u32, ErrorData> {
    let refused = || ErrorData::invalid_params("requestState failed its integrity check", None);
    let (body, tag) = state.rsplit_once('.').ok_or_else(refused)?;
    let tag = hex::decode(tag).map_err(|_| refused())?;
    let mut check = Hmac::<Sha256>::new_from_slice(STATE_KEY).expect("HMAC takes any key length");
    check.update(body.as_bytes());
    check.verify_slice(&tag).map_err(|_| refused())?;
    let (named, round) = body.split_once(':').ok_or_else(refused)?;
    if named != tool {
        return Err(refused());
    }
    round.parse().map_err(|_| refused())
}

pub(super) fn input_required(requests: Value, state: Option<String>) -> InputRequiredResult {
    let mut result = json!({"resultType": "input_required", "inputRequests": requests});
    if let Some(state) = state {
        result["requestState"] = json!(state);
    }
    model(result)
}

pub(super) fn elicit(message: &str, property: &str, kind: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {property: {"type": kind}},
                "required": [property]
            }
        }
    })
}

pub(super) fn sample(text: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
            "maxTokens": max_tokens
        }
    })
}

fn roots() -> Value {
    json!({"method": "roots/list", "params": {}})
}

/// Whether every one of `keys` is answered by an object in `responses`.
pub(super) fn answered(responses: &Option<rmcp::model::InputResponses>, keys: &[&str]) -> bool {
    responses.as_ref().is_some_and(|responses| {
        keys.iter()
            .all(|key| responses.get(*key).is_some_and(Value::is_object))
    })
}

impl Fixture {
    /// The multi-round-trip tools (2026-07-28): an `InputRequiredResult` until the responses
    /// they asked for come back, then a result.
    pub(super) fn input_required_call(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.as_ref();
        let responses = &request.input_responses;
        let state = request.request_state.as_deref();
        let asked = |requests: Value, state: Option<String>| {
            Ok(CallToolResponse::InputRequired(input_required(
                requests, state,
            )))
        };
        match name {
            "test_input_required_result_elicitation" | "test_streaming_elicitation" => {
                if answered(responses, &["user_name"]) {
                    let given = &responses.as_ref().expect("answered")["user_name"];
                    let who = given["content"]["name"].as_str().unwrap_or("stranger");
                    Ok(text_result(format!("Hello, {who}!")))
                } else {
                    asked(
                        json!({"user_name": elicit("What is your name?", "name", "string")}),
                        None,
                    )
                }
            }
            "test_input_required_result_sampling" => {
                if answered(responses, &["capital_question"]) {
                    let given = &responses.as_ref().expect("answered")["capital_question"];
                    let said = given["content"]["text"].as_str().unwrap_or("no text");
                    Ok(text_result(format!("The model said: {said}")))
                } else {
                    asked(
                        json!({"capital_question": sample("What is the capital of France?", 100)}),
                        None,
                    )
                }
            }
            "test_input_required_result_list_roots" => {
                if answered(responses, &["client_roots"]) {
                    let given = &responses.as_ref().expect("answered")["client_roots"];
                    Ok(text_result(format!("Roots: {}", given["roots"])))
                } else {
                    asked(json!({"client_roots": roots()}), None)
                }
            }
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => match state {
                Some(state) if answered(responses, &["confirm"]) => {
                    open(name, state)?;
                    Ok(text_result("Confirmed: state-ok"))
                }
                _ => asked(
                    json!({"confirm": elicit("Please confirm", "ok", "boolean")}),
                    Some(seal(name, 1)),
                ),
            },
            "test_input_required_result_multiple_inputs" => {
                let keys = ["user_name", "greeting", "client_roots"];
                match state {
                    Some(state) if answered(responses, &keys) => {
                        open(name, state)?;
                        Ok(text_result("Received every input: state-ok"))
                    }
                    _ => asked(
                        json!({
                            "user_name": elicit("What is your name?", "name", "string"),
                            "greeting": sample("Generate a greeting", 50),
                            "client_roots": roots()
                        }),
                        Some(seal(name, 1)),
                    ),
                }
            }
            "test_input_required_result_capabilities" => {
                if responses.as_ref().is_some_and(|given| !given.is_empty()) {
                    return Ok(text_result("Answered with what the client can do"));
                }
                let declared = client_capabilities(context);
                let mut requests = serde_json::Map::new();
                if declared.get("elicitation").is_some() {
                    requests.insert(
                        "user_name".into(),
                        elicit("What is your name?", "name", "string"),
                    );
                }
                if declared.get("sampling").is_some() {
                    requests.insert("question".into(), sample("Say something", 50));
                }
                if declared.get("roots").is_some() {
                    requests.insert("client_roots".into(), roots());
                }
                if requests.is_empty() {
                    return Ok(text_result("The client declared nothing to ask it"));
                }
                asked(Value::Object(requests), None)
            }
            "test_input_required_result_multi_round" => {
                let round = state.map(|state| open(name, state)).transpose()?;
                match round {
                    Some(1) if answered(responses, &["step1"]) => asked(
                        json!({"step2": elicit("Step 2: What is your favorite color?", "color", "string")}),
                        Some(seal(name, 2)),
                    ),
                    Some(2) if answered(responses, &["step2"]) => {
                        Ok(text_result("Both steps answered"))
                    }
                    _ => asked(
                        json!({"step1": elicit("Step 1: What is your name?", "name", "string")}),
                        Some(seal(name, 1)),
                    ),
                }
            }
            _ => Err(ErrorData::invalid_params(
                format!("no such tool: {name}"),
                None,
            )),
        }
    }
}
