//! `subscriptions/listen` (2026-07-28) for an upstream that speaks only the handshake era:
//! Airlock answers it itself. It accepts the list-change notifications the client asked for
//! and the upstream declared (`listChanged` on tools, prompts, resources; no resource
//! subscriptions), says so first (`notifications/subscriptions/acknowledged`), then passes on
//! each such notification the upstream sends outside a call, tagged with the subscription's id
//! (the request's), until the client closes the stream. An upstream that speaks 2026-07-28
//! gets the request itself.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::reply::{FORWARDED_KEEP_ALIVE, Messages, Reply};
use crate::domain::{AgentName, SessionKey};
use crate::jsonrpc;
use crate::upstream::Connection;

use crate::protocol::META_SUBSCRIPTION_ID as SUBSCRIPTION_ID;

/// What a client may ask for: the filter's key, the capability that offers it, and the
/// notification it brings.
const KINDS: [(&str, &str, &str); 3] = [
    (
        "toolsListChanged",
        "tools",
        "notifications/tools/list_changed",
    ),
    (
        "promptsListChanged",
        "prompts",
        "notifications/prompts/list_changed",
    ),
    (
        "resourcesListChanged",
        "resources",
        "notifications/resources/list_changed",
    ),
];

/// Notifications a listener's queue holds before newer ones are dropped.
const QUEUED: usize = 64;

/// The listen stream for the request `msg` by `agent`.
pub async fn listen(conn: &Connection, agent: &AgentName, msg: &Value) -> Reply {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let init = match conn.ready().await {
        Ok(init) => init,
        Err(e) => {
            return Reply::One(jsonrpc::error_response(
                id,
                jsonrpc::INTERNAL_ERROR,
                format!("{e}; try again later"),
            ));
        }
    };
    let requested = msg.pointer("/params/notifications");
    let mut accepted = Map::new();
    let mut methods = Vec::new();
    for (key, capability, method) in KINDS {
        let asked = requested.and_then(|r| r.get(key)) == Some(&Value::Bool(true));
        let offered = init
            .pointer(&format!("/capabilities/{capability}/listChanged"))
            .and_then(Value::as_bool)
            == Some(true);
        if asked && offered {
            accepted.insert(key.to_owned(), Value::Bool(true));
            methods.push(method);
        }
    }
    let key: SessionKey = Arc::from(format!("listen:{}", uuid::Uuid::new_v4()));
    let (tx, rx) = mpsc::channel(QUEUED);
    conn.register_listener(key.clone(), Arc::from(agent.as_str()), tx);
    let listening = Listening {
        conn: conn.clone(),
        key,
    };
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": accepted, "_meta": {SUBSCRIPTION_ID: id}}
    });
    let state = (rx, listening, methods, id);
    let tagged =
        futures_util::stream::unfold(state, |(mut rx, listening, methods, id)| async move {
            loop {
                let mut msg = rx.recv().await?;
                let method = msg.get("method").and_then(Value::as_str);
                if method.is_some_and(|method| methods.contains(&method)) {
                    tag(&mut msg, &id);
                    return Some((msg, (rx, listening, methods, id)));
                }
            }
        });
    let messages = futures_util::stream::once(std::future::ready(ack)).chain(tagged);
    Reply::Stream(Messages::new(messages, None, FORWARDED_KEEP_ALIVE))
}

/// Adds the subscription's id to a notification's `_meta`.
fn tag(msg: &mut Value, id: &Value) {
    if !msg["params"].is_object() {
        msg["params"] = json!({});
    }
    let meta = &mut msg["params"]["_meta"];
    if !meta.is_object() {
        *meta = json!({});
    }
    meta[SUBSCRIPTION_ID] = id.clone();
}

/// A listener's route on the connection, for as long as its stream lives.
struct Listening {
    conn: Connection,
    key: SessionKey,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.conn.unregister_session(&self.key);
    }
}
