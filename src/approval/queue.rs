//! The queue of one process: the handle on the store the calls live in, and the waits of the calls
//! parked here (who to wake when a decision comes, who to tell when an agent cancels).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::park::Announce;
use crate::config::Config;
use crate::domain::{Actor, CallId, CallStatus, SessionKey};
use crate::metrics::Metrics;
use crate::store::{CallRow, Store, StoreError};

/// The wait of one parked call in this process.
pub(super) struct Waiter {
    pub(super) wake: Arc<Notify>,
    pub(super) withdraw: CancellationToken,
    pub(super) session: SessionKey,
    pub(super) request_key: String,
}

/// The calls parked in this process, and the handle on the store they live in.
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
    /// Airlock is stopping: waiting calls are abandoned.
    pub(super) shutdown: CancellationToken,
    /// Told when a call of this process is parked or changes, so the dashboard's live feed looks
    /// at once instead of at its next poll.
    pub changed: Arc<Notify>,
    waiters: Mutex<HashMap<CallId, Waiter>>,
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

    fn waiters(&self) -> MutexGuard<'_, HashMap<CallId, Waiter>> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn add_waiter(&self, id: CallId, waiter: Waiter) {
        self.waiters().insert(id, waiter);
    }

    pub(super) fn remove_waiter(&self, id: &CallId) {
        self.waiters().remove(id);
    }

    /// The ids of the calls parked in this process.
    pub(super) fn waiting_ids(&self) -> Vec<CallId> {
        self.waiters().keys().cloned().collect()
    }

    pub(super) fn is_waiting(&self, id: &CallId) -> bool {
        self.waiters().contains_key(id)
    }

    /// Calls parked in this process right now.
    pub fn waiting(&self) -> usize {
        self.waiters().len()
    }

    /// Wakes the request waiting on call `id`, if it is parked here.
    pub fn wake(&self, id: &CallId) {
        self.changed.notify_one();
        if let Some(waiter) = self.waiters().get(id) {
            waiter.wake.notify_one();
        }
    }

    /// Withdraws the call parked by `session`'s request `request_key` (a `notifications/cancelled`);
    /// true if there was one.
    pub fn withdraw_request(&self, session: &str, request_key: &str) -> bool {
        let waiters = self.waiters();
        let found = waiters
            .values()
            .find(|w| &*w.session == session && w.request_key == request_key);
        if let Some(waiter) = found {
            waiter.withdraw.cancel();
        }
        found.is_some()
    }

    /// Withdraws every call parked by `session` (it was deleted or closed).
    pub fn withdraw_session(&self, session: &str) {
        for waiter in self.waiters().values() {
            if &*waiter.session == session {
                waiter.withdraw.cancel();
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
        let won = self.store.transition(id, transition, actor, detail).await?;
        if won {
            self.changed.notify_one();
        }
        Ok(won)
    }

    /// Counts how a waiting call was decided, for `/metrics`.
    pub(super) fn observe_decision(&self, row: &CallRow) {
        let waited = row
            .decided_at
            .map(|decided| row.created_at.seconds_until(decided).max(0.0));
        self.metrics.approval_decision(row.status.as_str(), waited);
    }
}
