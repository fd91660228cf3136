//! The queue of one process: the handle on the store the calls live in, and the waits of the calls
//! parked here (who to wake when a decision comes, who to tell when an agent cancels).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::park::Announce;
use crate::config::Config;
use crate::domain::{Actor, CallId, CallStatus, SessionKey, Timestamp};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// The wait of one request for a parked call in this process. Several requests may wait for one
/// call (each `tools/call` with the call's key joins it).
pub(super) struct Waiter {
    /// Tells this one request which waiter it is, among those of its call.
    pub(super) n: u64,
    pub(super) wake: Arc<Notify>,
    /// Ends this request's wait (`notifications/cancelled`, its session ended); the call stays.
    pub(super) end: CancellationToken,
    pub(super) session: SessionKey,
    pub(super) request_key: String,
}

/// The requests waiting in this process for parked calls, and the handle on the store the calls
/// live in.
pub struct ApprovalQueue {
    pub(super) store: Store,
    /// Names this instance in `tool_calls.instance_id`; stable across restarts (see `recovery`).
    pub(super) instance_id: String,
    /// How long an instance may go without a heartbeat before its calls count as orphaned.
    pub(super) instance_timeout: Duration,
    /// Random, per process: tells this process from another one holding the same instance id.
    pub(super) process_token: String,
    pub(super) metrics: Arc<Metrics>,
    pub(super) config: Arc<Config>,
    /// Who is told of a parked call (`notify` composes the emails); nobody without one.
    pub(super) announcer: Option<Arc<dyn Announce>>,
    /// The masking rules applied to a call's arguments when it is parked.
    pub(super) redactor: crate::redact::Redactor,
    /// Airlock is stopping: waiting requests are answered "still waiting"; their calls stay.
    pub(super) shutdown: CancellationToken,
    /// Told when a call of this process is parked or changes, so the dashboard's live feed looks
    /// at once instead of at its next poll.
    pub changed: Arc<Notify>,
    waiters: Mutex<HashMap<CallId, Vec<Waiter>>>,
    next_waiter: AtomicU64,
}

impl ApprovalQueue {
    /// A queue on `store`. Without [`Self::announcing`] nobody is told of parked calls (the
    /// command line, which only decides, needs no more).
    pub fn new(
        store: Store,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let instance_id = config
            .server
            .instance_id
            .clone()
            .unwrap_or_else(|| super::default_instance_id(config.server.listen));
        Self {
            redactor: crate::redact::Redactor::new(&config.redaction),
            store,
            instance_id,
            instance_timeout: Duration::from_secs(config.server.instance_timeout),
            process_token: uuid::Uuid::new_v4().to_string(),
            metrics,
            config,
            announcer: None,
            shutdown,
            changed: Arc::new(Notify::new()),
            waiters: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(0),
        }
    }

    /// The queue, telling `announcer` of every call it parks.
    pub fn announcing(mut self, announcer: Arc<dyn Announce>) -> Self {
        self.announcer = Some(announcer);
        self
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Unique to this process (the outbox worker claims messages with it).
    pub fn process_token(&self) -> &str {
        &self.process_token
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<CallId, Vec<Waiter>>> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A number for the next waiter, unique in this process.
    pub(super) fn waiter_number(&self) -> u64 {
        self.next_waiter.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn add_waiter(&self, id: CallId, waiter: Waiter) {
        self.waiters().entry(id).or_default().push(waiter);
    }

    /// Ends waiter `n`'s registration for call `id` (its request got its answer or went away).
    pub(super) fn remove_waiter(&self, id: &CallId, n: u64) {
        let mut waiters = self.waiters();
        if let Some(list) = waiters.get_mut(id) {
            list.retain(|w| w.n != n);
            if list.is_empty() {
                waiters.remove(id);
            }
        }
    }

    /// The ids of the calls requests wait for in this process.
    pub(super) fn waiting_ids(&self) -> Vec<CallId> {
        self.waiters().keys().cloned().collect()
    }

    /// How many requests in this process wait for parked calls right now.
    pub fn requests_waiting_total(&self) -> usize {
        self.waiters().values().map(Vec::len).sum()
    }

    /// How many requests in this process wait for call `id` right now.
    pub fn requests_waiting(&self, id: &CallId) -> usize {
        self.waiters().get(id).map_or(0, Vec::len)
    }

    /// Wakes every request waiting for call `id` in this process.
    pub fn wake(&self, id: &CallId) {
        self.changed.notify_one();
        if let Some(list) = self.waiters().get(id) {
            for waiter in list {
                waiter.wake.notify_one();
            }
        }
    }

    /// Ends the wait of `session`'s request `request_key` (a `notifications/cancelled`); true if
    /// it was waiting. The call stays in the queue.
    pub fn end_request(&self, session: &str, request_key: &str) -> bool {
        let waiters = self.waiters();
        let found = waiters
            .values()
            .flatten()
            .find(|w| &*w.session == session && w.request_key == request_key);
        if let Some(waiter) = found {
            waiter.end.cancel();
        }
        found.is_some()
    }

    /// Ends the waits of every request of `session` (it was deleted or closed).
    pub fn end_session(&self, session: &str) {
        for waiter in self.waiters().values().flatten() {
            if &*waiter.session == session {
                waiter.end.cancel();
            }
        }
    }

    /// Moves call `id` along `from → to` as `actor`; true if this caller won.
    pub(super) async fn step(
        &self,
        id: &CallId,
        from: CallStatus,
        to: CallStatus,
        actor: &Actor,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(transition) = from.to(to) else {
            return Ok(false);
        };
        let pickup_by = (to.is_refusal() || to == CallStatus::Approved)
            .then(|| Timestamp::now() + self.pickup());
        let won = self
            .store
            .transition(id, transition, actor, detail, pickup_by)
            .await?;
        if won {
            self.changed.notify_one();
        }
        Ok(won)
    }

    /// `[approval] pickup`: how long a decided call waits for its agent to call again.
    pub(super) fn pickup(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.config.approval.pickup).unwrap_or(i64::MAX))
    }
}
