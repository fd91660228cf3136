//! Keeping the shared queue honest across restarts and instances.
//!
//! Each instance has a stable id (`server.instance_id`, by default `HOSTNAME/LISTEN`) and a
//! heartbeat row. A parked call names the instance holding its agent's request; only that instance
//! can deliver it. So:
//! - on start, an instance abandons the calls its own earlier run left waiting, and marks the ones
//!   it was sending `outcome_unknown` (never re-sent);
//! - every few seconds it beats, and does the same to the calls of any instance whose heartbeat is
//!   older than `server.instance_timeout` (it died without saying so);
//! - a poll every [`POLL`] wakes waiting calls decided elsewhere (the CLI, another instance) and
//!   expires pending calls nobody waits for; on PostgreSQL a `LISTEN` wakes them at once.
//!
//! Every change goes through the state machine's conditional updates, so two instances sweeping
//! the same call cannot both act on it. SQLite serves one instance: a second one starting on the
//! same file while the first is alive is refused.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::queue::SYSTEM;
use super::{ApprovalQueue, CallStatus, POLL};
use crate::store::{Backend, StoreError};

/// How long past its expiry a pending call nobody is waiting on is left before the sweep expires
/// it (its own request expires it on time; the sweep is for calls whose request is gone).
const SWEEP_GRACE: time::Duration = time::Duration::seconds(5);

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "another Airlock instance ({other}, last heartbeat {seen}) is using this SQLite database; \
         SQLite serves one instance: stop the other, or use PostgreSQL (database.url = \"postgres://…\") for several"
    )]
    SqliteShared { other: String, seen: String },
}

/// The default instance id: stable across restarts of the same deployment, distinct between
/// hosts, and between instances on one host (they listen on different addresses).
pub fn default_instance_id(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}/{listen}")
}

/// Logs the first of a run of failures as a warning and the rest quietly, then says when it
/// recovered: a database outage should be one line in the log, not two a second.
#[derive(Default)]
struct FailureLog {
    failing_since: Option<tokio::time::Instant>,
}

impl FailureLog {
    fn record<E: std::error::Error>(&mut self, what: &str, result: Result<(), E>) {
        match (result, self.failing_since) {
            (Ok(()), None) => {}
            (Ok(()), Some(since)) => {
                tracing::info!(
                    what,
                    after_secs = since.elapsed().as_secs(),
                    "working again"
                );
                self.failing_since = None;
            }
            (Err(e), None) => {
                tracing::warn!(what, error = %crate::telemetry::error_chain(&e), "failed; retrying (further failures are logged at debug level)");
                self.failing_since = Some(tokio::time::Instant::now());
            }
            (Err(e), Some(_)) => {
                tracing::debug!(what, error = %crate::telemetry::error_chain(&e), "still failing");
            }
        }
    }
}

impl ApprovalQueue {
    /// Registers this instance and clears what its earlier run, or dead instances, left behind.
    pub async fn start(&self) -> Result<(), RecoveryError> {
        if self.store.backend() == Backend::Sqlite {
            let others = self
                .store
                .other_live_instances(&self.instance_id, self.alive_since())
                .await?;
            if let Some(other) = others.into_iter().next() {
                return Err(RecoveryError::SqliteShared {
                    other: other.id,
                    seen: other.heartbeat_at,
                });
            }
        }
        self.store.register_instance(&self.instance_id).await?;
        self.recover(true).await?;
        Ok(())
    }

    fn alive_since(&self) -> time::OffsetDateTime {
        let timeout =
            time::Duration::try_from(self.instance_timeout).unwrap_or(time::Duration::seconds(30));
        time::OffsetDateTime::now_utc() - timeout
    }

    /// Abandons waiting calls whose agent's request is gone, and marks calls cut off mid-send
    /// `outcome_unknown`: those of dead instances, and (`including_mine`) of this instance's
    /// earlier run.
    async fn recover(&self, including_mine: bool) -> Result<(), StoreError> {
        let gone =
            "Airlock restarted or stopped while the call waited; its agent connection is gone";
        let alive_since = self.alive_since();
        for from in [CallStatus::Pending, CallStatus::Approved] {
            for id in self
                .store
                .orphaned(from, &self.instance_id, including_mine, alive_since)
                .await?
            {
                if self
                    .step(&id, from, CallStatus::Abandoned, SYSTEM, Some(gone))
                    .await?
                {
                    tracing::warn!(call = %id, "abandoned a call whose agent's request is gone");
                }
            }
        }
        let unknown = "Airlock stopped while the call was being forwarded; it may have run";
        for id in self
            .store
            .orphaned(
                CallStatus::Forwarding,
                &self.instance_id,
                including_mine,
                alive_since,
            )
            .await?
        {
            if let Some(transition) = CallStatus::Forwarding.to(CallStatus::OutcomeUnknown)
                && self
                    .store
                    .finish(&id, transition, None, Some(unknown))
                    .await?
            {
                tracing::warn!(call = %id, "a call was cut off mid-forward; outcome unknown");
            }
        }
        Ok(())
    }

    /// The background work of the queue, until `stop`: the poll, the heartbeat and the sweep of
    /// dead instances, and (on PostgreSQL) the decision listener.
    pub fn spawn_workers(self: Arc<Self>, stop: CancellationToken) {
        let queue = self.clone();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let beat_every = (queue.instance_timeout / 4).clamp(POLL, Duration::from_secs(10));
            let mut last_beat = tokio::time::Instant::now();
            let (mut polls, mut beats) = (FailureLog::default(), FailureLog::default());
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stopped.cancelled() => return,
                }
                polls.record("approval queue poll", queue.poll_once().await);
                if last_beat.elapsed() >= beat_every {
                    last_beat = tokio::time::Instant::now();
                    let beat = async {
                        queue.store.heartbeat(&queue.instance_id).await?;
                        queue.store.prune_rate_slots().await?;
                        queue.recover(false).await
                    };
                    beats.record("heartbeat and sweep", beat.await);
                }
            }
        });
        tokio::spawn(self.listen(stop));
    }

    /// Wakes waiting calls as soon as PostgreSQL announces their decision.
    async fn listen(self: Arc<Self>, stop: CancellationToken) {
        let mut listener = loop {
            match self.store.decision_listener().await {
                Ok(Some(listener)) => break listener,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot listen for decisions; the poll covers them; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = stop.cancelled() => return,
            }
        };
        let mut failures = FailureLog::default();
        loop {
            let next = tokio::select! {
                next = listener.next() => next,
                () = stop.cancelled() => return,
            };
            match next {
                Ok(id) => {
                    failures.record::<StoreError>("decision notifications", Ok(()));
                    self.wake(&id);
                }
                Err(e) => {
                    failures.record("decision notifications (the poll covers them)", Err(e));
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn poll_once(&self) -> Result<(), StoreError> {
        let ids = self.waiting_ids();
        if !ids.is_empty() {
            for id in self.store.decided_among(&ids).await? {
                self.wake(&id);
            }
        }
        let cutoff = time::OffsetDateTime::now_utc() - SWEEP_GRACE;
        for id in self.store.overdue(CallStatus::Pending, cutoff).await? {
            if self.is_waiting(&id) {
                continue;
            }
            let why = "not approved in time, and no request was waiting for it any more";
            self.step(
                &id,
                CallStatus::Pending,
                CallStatus::Expired,
                SYSTEM,
                Some(why),
            )
            .await?;
        }
        Ok(())
    }
}
