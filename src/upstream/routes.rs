//! Where messages go: the sessions that use a connection, the requests in flight and whose they
//! are, and the server-to-client requests waiting for an answer.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::reply::{Inbound, ReplyTx};
use crate::domain::SessionKey;

/// The session key of requests Airlock makes itself (initialize, ...).
pub(super) const INTERNAL: &str = "\0airlock";

#[derive(Default)]
pub(super) struct Routes {
    /// Sessions using this connection.
    pub(super) sessions: HashMap<SessionKey, SessionRoute>,
    /// Requests sent upstream and not yet answered, by upstream id.
    pub(super) pending: HashMap<u64, Pending>,
    /// (session, downstream id key) → upstream id, to translate cancellations.
    pub(super) by_downstream: HashMap<(SessionKey, String), u64>,
    /// Server-to-client requests awaiting an answer: id key → sessions it was sent to.
    pub(super) server_requests: HashMap<String, Vec<SessionKey>>,
    /// The connection is one agent's alone (`isolation = "agent"`).
    pub(super) one_agent: bool,
}

pub(super) struct SessionRoute {
    /// Where messages not tied to one of the session's calls go (its GET stream).
    pub(super) sink: mpsc::Sender<Value>,
    /// The agent the session belongs to: a server request is never shown to two agents.
    pub(super) agent: Arc<str>,
    /// Only listens for the server's notifications (a 2026-07-28 `subscriptions/listen`):
    /// never a target of its requests, which it could not answer.
    pub(super) listens_only: bool,
}

pub(super) struct Pending {
    pub(super) session: SessionKey,
    pub(super) original_id: Value,
    pub(super) original_token: Option<Value>,
    pub(super) reply: ReplyTx,
    /// A 2026-07-28 client's request whose caller turns server requests into input requests
    /// (see `mcp::input_rounds`): it may be their target though it has no session.
    pub(super) takes_input: bool,
    /// A `subscriptions/listen` request: notifications tagged with its id are its.
    pub(super) listens: bool,
}

impl Routes {
    /// Which sessions a server-to-client request goes to: the session of the call it arrived with;
    /// else the sessions with calls in flight; else every session. Over stdio nothing in the
    /// request names its call, so when the candidates belong to different agents Airlock refuses
    /// rather than show one agent's sampling or elicitation to another (`isolation = "session"`
    /// avoids the question). A 2026-07-28 request has no session: it is a target only when its
    /// caller takes input requests, and over stdio only when it is the one call in flight.
    pub(super) fn server_request_targets(
        &self,
        related: Option<u64>,
    ) -> Result<Vec<SessionKey>, &'static str> {
        if let Some(pending) = related.and_then(|id| self.pending.get(&id)) {
            return if self.sessions.contains_key(&pending.session) || pending.takes_input {
                Ok(vec![pending.session.clone()])
            } else {
                Err("a 2026-07-28 client cannot answer server requests")
            };
        }
        let calls: Vec<&Pending> = self
            .pending
            .values()
            .filter(|p| p.session.as_ref() != INTERNAL)
            .collect();
        // A 2026-07-28 call has no session to route to, and its agent may be anyone's.
        if calls
            .iter()
            .any(|p| !self.sessions.contains_key(&p.session))
        {
            // Only on one agent's own connection: elsewhere the request may be another
            // agent's (a task of theirs asking after its call returned).
            return match calls.as_slice() {
                [only] if only.takes_input && self.one_agent => Ok(vec![only.session.clone()]),
                _ => Err("a 2026-07-28 call is in flight and cannot take server requests"),
            };
        }
        let busy = calls.iter().map(|p| &p.session);
        let mut candidates: Vec<SessionKey> = busy.cloned().collect();
        if candidates.is_empty() {
            candidates = self
                .sessions
                .iter()
                .filter(|(_, route)| !route.listens_only)
                .map(|(session, _)| session.clone())
                .collect();
        }
        candidates.sort();
        candidates.dedup();
        let mut agents = candidates
            .iter()
            .filter_map(|s| self.sessions.get(s))
            .map(|route| &route.agent);
        let Some(first) = agents.next() else {
            return Err("no client is connected to answer this request");
        };
        if agents.any(|agent| agent != first) {
            return Err(
                "sessions of several agents could be meant; set isolation = \"session\" on this upstream",
            );
        }
        Ok(candidates)
    }

    /// Hands a message to sessions. Within a session with exactly one call in flight, the message
    /// rides on that call's stream (as a server would send it); otherwise it goes to the session's
    /// sink (its GET stream).
    pub(super) fn deliver(&self, targets: &[SessionKey], msg: &Value) {
        for session in targets {
            let mut calls = self.pending.values().filter(|p| &p.session == session);
            if let (Some(only), None) = (calls.next(), calls.next())
                && only.reply.send(Inbound::Message(msg.clone()))
            {
                continue;
            }
            if let Some(route) = self.sessions.get(session)
                && route.sink.try_send(msg.clone()).is_err()
            {
                tracing::warn!(%session, "session queue full or closed; dropping a server message");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::reply::reply_channel;
    use serde_json::json;

    fn routes(sessions: &[(&str, &str)], busy: &[&str]) -> Routes {
        routes_taking_input(sessions, busy, false)
    }

    /// `busy` calls whose callers take input requests when `takes_input`.
    fn routes_taking_input(sessions: &[(&str, &str)], busy: &[&str], takes_input: bool) -> Routes {
        let mut routes = Routes {
            one_agent: true,
            ..Routes::default()
        };
        for (session, agent) in sessions {
            let (sink, _) = mpsc::channel(1);
            routes.sessions.insert(
                Arc::from(*session),
                SessionRoute {
                    sink,
                    agent: Arc::from(*agent),
                    listens_only: false,
                },
            );
        }
        for (i, session) in busy.iter().enumerate() {
            let (reply, _) = reply_channel();
            routes.pending.insert(
                i as u64 + 1,
                Pending {
                    session: Arc::from(*session),
                    original_id: json!(i),
                    original_token: None,
                    reply,
                    takes_input,
                    listens: false,
                },
            );
        }
        routes
    }

    fn names(targets: Result<Vec<SessionKey>, &'static str>) -> Result<Vec<String>, &'static str> {
        targets.map(|t| t.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_server_request_goes_to_the_busy_session_of_one_agent() {
        let r = routes(&[("a1", "alice"), ("b1", "bob")], &["a1"]);
        assert_eq!(
            names(r.server_request_targets(None)),
            Ok(vec!["a1".to_owned()])
        );
        let r = routes(
            &[("a1", "alice"), ("a2", "alice"), ("b1", "bob")],
            &["a1", "a2"],
        );
        assert_eq!(
            names(r.server_request_targets(None)),
            Ok(vec!["a1".to_owned(), "a2".to_owned()])
        );
    }

    #[test]
    fn a_server_request_is_never_shown_to_two_agents() {
        let r = routes(&[("a1", "alice"), ("b1", "bob")], &["a1", "b1"]);
        assert!(r.server_request_targets(None).is_err());
        let idle = routes(&[("a1", "alice"), ("b1", "bob")], &[]);
        assert!(idle.server_request_targets(None).is_err());
        let nobody = routes(&[], &[]);
        assert!(nobody.server_request_targets(None).is_err());
    }

    #[test]
    fn no_server_request_is_routed_while_a_stateless_call_is_in_flight() {
        let r = routes(&[("a1", "alice")], &["stateless:x"]);
        assert!(r.server_request_targets(None).is_err());
        let r = routes(&[("a1", "alice")], &["a1", "stateless:x"]);
        assert!(r.server_request_targets(None).is_err());
    }

    #[test]
    fn a_stateless_call_that_takes_input_gets_the_server_requests_that_can_only_be_its() {
        let r = routes_taking_input(&[("a1", "alice")], &["stateless:x"], true);
        assert_eq!(
            names(r.server_request_targets(Some(1))),
            Ok(vec!["stateless:x".to_owned()])
        );
        assert_eq!(
            names(r.server_request_targets(None)),
            Ok(vec!["stateless:x".to_owned()]),
            "the one call in flight"
        );
        let r = routes_taking_input(&[("a1", "alice")], &["a1", "stateless:x"], true);
        assert!(
            r.server_request_targets(None).is_err(),
            "two calls in flight: nothing tells whose it is"
        );
        let mut shared = routes_taking_input(&[], &["stateless:x"], true);
        shared.one_agent = false;
        assert!(
            shared.server_request_targets(None).is_err(),
            "on a child several agents use, it may be another agent's"
        );
    }

    #[test]
    fn a_server_request_on_a_stateless_calls_stream_is_refused() {
        let r = routes(&[("a1", "alice")], &["stateless:x"]);
        assert!(r.server_request_targets(Some(1)).is_err());
        let r = routes(&[("a1", "alice")], &["a1"]);
        assert_eq!(
            names(r.server_request_targets(Some(1))),
            Ok(vec!["a1".to_owned()])
        );
    }
}
