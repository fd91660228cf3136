//! Downstream MCP sessions (handshake era): created by `initialize`, named by `Mcp-Session-Id`,
//! bound to the agent that created them, ended by DELETE, by idling too long, or by shutdown.
//!
//! A session holds its upstream connection (shared or its own) and the receiving end of its sink:
//! the queue of server messages not tied to one of its calls, drained by its GET stream.
//!
//! Sessions live in the instance that created them. Their ids end with a tag of that instance
//! (`…-1a2b3c4d`), so a request that a load balancer sends to the wrong instance gets an answer
//! that says so, and a balancer can route on the id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::app::Gateway;
use crate::domain::SessionKey;
use crate::mcp::auth::AgentIdentity;
use crate::upstream::Connection;

/// `random` with the tag of instance `instance_id` appended.
pub fn tagged_id(random: &str, instance_id: &str) -> String {
    format!("{random}-{}", instance_tag(instance_id))
}

/// Whether `session_id` carries the tag of an instance other than `instance_id`.
pub fn is_elsewhere(session_id: &str, instance_id: &str) -> bool {
    session_id
        .rsplit_once('-')
        .is_some_and(|(_, tag)| tag.len() == 8 && tag != instance_tag(instance_id))
}

fn instance_tag(instance_id: &str) -> String {
    crate::secrets::sha256_hex(instance_id.as_bytes())[..8].to_owned()
}

pub struct Session {
    pub id: SessionKey,
    pub gateway: Arc<Gateway>,
    pub conn: Connection,
    pub agent: AgentIdentity,
    pub protocol_version: &'static str,
    /// Drained by the GET stream; a mutex so only one GET stream reads it at a time.
    pub sink: Arc<tokio::sync::Mutex<mpsc::Receiver<Value>>>,
    /// Where a JSON-mode request puts related messages it cannot carry itself.
    pub sink_tx: mpsc::Sender<Value>,
    /// True when the connection is this session's own and ends with it.
    owns_conn: bool,
    created: Instant,
    /// Milliseconds after `created` of the last request.
    last_active_ms: AtomicU64,
    /// Calls forwarded and not yet answered: a session waiting on a long call is not idle.
    in_flight: Arc<AtomicUsize>,
    /// Its parked streams a `GET` with `Last-Event-ID` can resume.
    pub streams: Arc<super::resume::ResumableStreams>,
}

/// Counts one call in flight for as long as it lives.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many server messages wait for a session's GET stream before newer ones are dropped.
const SINK_CAPACITY: usize = 1024;

impl Session {
    pub fn new(
        id: SessionKey,
        gateway: Arc<Gateway>,
        conn: Connection,
        owns_conn: bool,
        agent: AgentIdentity,
        protocol_version: &'static str,
    ) -> Arc<Self> {
        let (sink_tx, sink_rx) = mpsc::channel(SINK_CAPACITY);
        conn.register_session(id.clone(), Arc::from(agent.name.as_str()), sink_tx.clone());
        Arc::new(Self {
            id,
            gateway,
            conn,
            agent,
            protocol_version,
            sink: Arc::new(tokio::sync::Mutex::new(sink_rx)),
            sink_tx,
            owns_conn,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            streams: Arc::default(),
        })
    }

    pub fn touch(&self) {
        let ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks a call in flight until the returned guard is dropped.
    pub fn call_started(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    fn idle_for(&self) -> Duration {
        self.created.elapsed().saturating_sub(Duration::from_millis(
            self.last_active_ms.load(Ordering::Relaxed),
        ))
    }

    /// A session with its GET stream open is in use even when it sends nothing.
    fn has_open_stream(&self) -> bool {
        self.sink.try_lock().is_err()
    }

    fn close(&self) {
        self.conn.unregister_session(&self.id);
        if self.owns_conn {
            self.conn.stop();
        }
    }
}

/// All live downstream sessions of this process.
#[derive(Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<SessionKey, Arc<Session>>>,
    /// Sessions being opened, per agent (see `reserve`). Locked after `sessions`, never before.
    opening: Mutex<HashMap<String, usize>>,
}

/// Room reserved for a session being opened; dropping it (after the session is inserted, or when
/// opening failed) gives the reservation back.
pub struct Opening {
    registry: Arc<SessionRegistry>,
    agent: String,
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut opening = self
            .registry
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = opening.get_mut(&self.agent) {
            *n -= 1;
            if *n == 0 {
                opening.remove(&self.agent);
            }
        }
    }
}

impl SessionRegistry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Arc<Session>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn insert(&self, session: Arc<Session>) {
        self.map().insert(session.id.clone(), session);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map().get(id).cloned()
    }

    /// Reserves room for one more session of `agent` within `limit` (sessions open plus sessions
    /// being opened), or `None` when it has no room. Checked and counted under one lock, so
    /// parallel `initialize`s cannot all slip past the limit while their upstreams start.
    pub fn reserve(self: &Arc<Self>, agent: &str, limit: usize) -> Option<Opening> {
        let sessions = self.map();
        let mut opening = self
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = sessions.values().filter(|s| s.agent.name == agent).count();
        let starting = opening.get(agent).copied().unwrap_or(0);
        if open + starting >= limit {
            return None;
        }
        *opening.entry(agent.to_owned()).or_default() += 1;
        Some(Opening {
            registry: self.clone(),
            agent: agent.to_owned(),
        })
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Ends a session; returns it if it existed.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.map().remove(id)?;
        session.close();
        Some(session)
    }

    /// Ends sessions idle for longer than `idle` with no stream open; returns their ids.
    pub fn reap_idle(&self, idle: Duration) -> Vec<SessionKey> {
        // Judged and removed under one lock, so a request that finds the session first keeps it.
        let mut reaped = Vec::new();
        self.map().retain(|_, s| {
            let stale = s.idle_for() > idle
                && !s.has_open_stream()
                && s.in_flight.load(Ordering::Relaxed) == 0;
            if stale {
                reaped.push(s.clone());
            }
            !stale
        });
        for session in &reaped {
            session.close();
        }
        reaped.into_iter().map(|s| s.id.clone()).collect()
    }

    pub fn close_all(&self) {
        let sessions: Vec<_> = self.map().drain().map(|(_, s)| s).collect();
        for session in sessions {
            session.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_tells_which_instance_it_lives_on() {
        let id = tagged_id("0123abcd", "host-a/10.0.0.1:8080");
        assert!(id.starts_with("0123abcd-") && id.len() == 17);
        assert!(!is_elsewhere(&id, "host-a/10.0.0.1:8080"));
        assert!(is_elsewhere(&id, "host-b/10.0.0.2:8080"));
        assert!(!is_elsewhere("untagged", "host-b/10.0.0.2:8080"));
    }
}
