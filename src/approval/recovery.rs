//! Keeping the shared queue honest across restarts and instances.
//!
//! A parked call belongs to its key, not to a process: a pending or approved call survives a
//! restart or the death of the instance that parked it, still decidable, and is picked up by its
//! agent's next call on any instance (never forwarded without one). What cannot survive is a
//! send in progress. Each instance has a stable id (`server.instance_id`, by default
//! `HOSTNAME/LISTEN`) and a heartbeat row, and a call being forwarded names the instance sending
//! it. So:
//! - on start, an instance marks the calls its own earlier run was sending `outcome_unknown`
//!   (never re-sent);
//! - every few seconds it beats, and does the same to the calls of any instance whose heartbeat is
//!   older than `server.instance_timeout` (it died without saying so), but only once its own
//!   beats have succeeded for longer than that timeout: after a database outage every heartbeat
//!   is old, and an instance that just reconnected must not take its live peers for dead;
//! - heartbeats use the database's clock, so instances with skewed clocks agree on who is alive;
//! - a process token tells a restart of an instance (its old process is gone) from a second live
//!   process configured with the same id, which is refused at start;
//! - a poll every [`POLL`] wakes waiting requests whose calls were decided elsewhere (the CLI,
//!   another instance), expires pending calls past their expiry and ends approved calls nobody
//!   picked up within `[approval] pickup` as `unclaimed` (any instance does both); on PostgreSQL
//!   a `LISTEN` wakes requests at once.
//!
//! Every change goes through the state machine's conditional updates, so two instances sweeping
//! the same call cannot both act on it. SQLite serves one instance: a second one starting on the
//! same file while the first is alive is refused.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ApprovalQueue, POLL};
use crate::domain::{Actor, CallId, CallStatus, Timestamp};
use crate::store::{Backend, Outcome, StoreError};

/// How long past its expiry a pending call is left before the sweep expires it (a request
/// waiting for it expires it on time; the sweep is for calls nobody waits for right now).
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
    #[error(
        "instance id {id:?} is in use by a live process ({host}, pid {pid}, last heartbeat {seen}); \
         give each instance its own server.instance_id"
    )]
    IdInUse {
        id: String,
        host: String,
        pid: i64,
        seen: String,
    },
}

/// The default instance id: stable across restarts of the same deployment, distinct between
/// hosts, and between instances on one host (they listen on different addresses).
pub fn default_instance_id(listen: std::net::SocketAddr) -> String {
    format!("{}/{listen}", hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether a process with this pid runs on this host (where `/proc` tells).
fn process_exists(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl ApprovalQueue {
    /// Registers this instance and clears what its earlier run, or dead instances, left behind.
    pub async fn start(&self) -> Result<(), RecoveryError> {
        let alive_since = self.alive_since().await?;
        if self.store.backend() == Backend::Sqlite {
            let others = self
                .store
                .other_live_instances(&self.instance_id, alive_since)
                .await?;
            if let Some(other) = others.into_iter().next() {
                return Err(RecoveryError::SqliteShared {
                    other: other.id,
                    seen: other.heartbeat_at,
                });
            }
        }
        let host = hostname();
        if let Some(row) = self.store.instance(&self.instance_id).await? {
            let fresh = row.heartbeat_at >= alive_since.text();
            let pid = row.pid.unwrap_or_default();
            // A fresh row of another process is a twin, unless that process is this host's
            // earlier run and gone (a restart after a crash).
            let earlier_run_of_this_host = row.host.as_deref() == Some(host.as_str())
                && (pid == i64::from(std::process::id()) || !process_exists(pid));
            if fresh && !earlier_run_of_this_host {
                return Err(RecoveryError::IdInUse {
                    id: self.instance_id.clone(),
                    host: row.host.unwrap_or_default(),
                    pid,
                    seen: row.heartbeat_at,
                });
            }
        }
        self.register(&host).await?;
        self.recover(true).await?;
        self.mask_older_calls().await?;
        Ok(())
    }

    /// Gives calls stored before masked copies existed their masked copy, and scrubs the real
    /// arguments of those that are over, so an upgrade leaves no secret behind.
    async fn mask_older_calls(&self) -> Result<(), StoreError> {
        let mut after: Option<CallId> = None;
        loop {
            let after_id = after.as_ref().map_or("", |id| id.as_str());
            let calls = self.store.calls_without_shown_args(after_id, 500).await?;
            if calls.is_empty() {
                return Ok(());
            }
            for (id, args_json) in calls {
                let shown = serde_json::from_str::<serde_json::Value>(&args_json)
                    .map(|args| self.redactor.redact(&args))
                    .unwrap_or(serde_json::Value::Null);
                self.store.set_shown_args(&id, &shown.to_string()).await?;
                after = Some(id);
            }
        }
    }

    async fn register(&self, host: &str) -> Result<(), StoreError> {
        let holder = crate::store::Holder {
            host,
            pid: std::process::id(),
            token: &self.process_token,
        };
        self.store
            .register_instance(&self.instance_id, holder)
            .await
    }

    /// Heartbeats older than this (by the database's clock) are of dead instances.
    async fn alive_since(&self) -> Result<Timestamp, StoreError> {
        let timeout =
            time::Duration::try_from(self.instance_timeout).unwrap_or(time::Duration::seconds(30));
        Ok(self.store.db_now().await? - timeout)
    }

    /// Marks calls cut off mid-send `outcome_unknown`: those of dead instances, and
    /// (`including_mine`) of this instance's earlier run. Pending and approved calls stay.
    async fn recover(&self, including_mine: bool) -> Result<(), StoreError> {
        let alive_since = self.alive_since().await?;
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
                    .finish(
                        &id,
                        transition,
                        &Outcome {
                            result: None,
                            detail: Some(unknown),
                        },
                    )
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
            let mut polls = crate::telemetry::FailureLog::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stopped.cancelled() => return,
                }
                polls.record("approval queue poll", queue.poll_once().await);
            }
        });
        tokio::spawn(self.clone().beat(stop.clone()));
        tokio::spawn(self.listen(stop));
    }

    /// Beats, in its own task so a slow poll cannot delay it, and sweeps dead instances' calls
    /// once this instance's own beats have held for longer than the timeout.
    async fn beat(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.instance_timeout / 4).clamp(POLL, Duration::from_secs(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Started healthy: `start` just registered and swept.
        let mut healthy_since = Some(tokio::time::Instant::now());
        let mut beats = crate::telemetry::FailureLog::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let beat = async {
                if self
                    .store
                    .heartbeat(&self.instance_id, &self.process_token)
                    .await?
                {
                    return Ok(true);
                }
                self.reclaim_id().await?;
                Ok::<_, StoreError>(false)
            };
            match beat.await {
                Ok(true) => {
                    beats.record::<StoreError>("heartbeat", Ok(()));
                    let since = *healthy_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.instance_timeout + every {
                        let sweep = async {
                            self.store.prune_rate_slots().await?;
                            self.recover(false).await
                        };
                        beats.record("sweep of dead instances", sweep.await);
                    }
                }
                Ok(false) => healthy_since = None,
                Err(e) => {
                    healthy_since = None;
                    beats.record("heartbeat", Err(e));
                }
            }
        }
    }

    /// The heartbeat found no row of ours: register again if the row is gone; if another
    /// process holds the id, say so loudly (its sweeps and ours would fight).
    async fn reclaim_id(&self) -> Result<(), StoreError> {
        match self.store.instance(&self.instance_id).await? {
            None => self.register(&hostname()).await,
            Some(row) => {
                tracing::error!(
                    instance = %self.instance_id,
                    other_host = row.host.as_deref().unwrap_or("?"),
                    other_pid = row.pid.unwrap_or_default(),
                    "another process uses this instance id; give each instance its own server.instance_id"
                );
                Ok(())
            }
        }
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
        let mut failures = crate::telemetry::FailureLog::default();
        loop {
            let next = tokio::select! {
                next = listener.next() => next,
                () = stop.cancelled() => return,
            };
            match next {
                Ok(id) => {
                    failures.record::<StoreError>("decision notifications", Ok(()));
                    if let Ok(id) = CallId::parse(&id) {
                        self.wake(&id);
                    }
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
        let cutoff = Timestamp::now() - SWEEP_GRACE;
        for id in self.store.overdue(CallStatus::Pending, cutoff).await? {
            let why = "not approved in time; not run";
            if self
                .step(
                    &id,
                    CallStatus::Pending,
                    CallStatus::Expired,
                    &Actor::SYSTEM,
                    Some(why),
                )
                .await?
            {
                self.metrics
                    .approval_decision(CallStatus::Expired.as_str(), None);
                self.wake(&id);
            }
        }
        let why = super::parked::unclaimed_text(self.config.approval.pickup);
        for id in self
            .store
            .overdue(CallStatus::Approved, Timestamp::now())
            .await?
        {
            if self
                .step(
                    &id,
                    CallStatus::Approved,
                    CallStatus::Unclaimed,
                    &Actor::SYSTEM,
                    Some(&why),
                )
                .await?
            {
                tracing::info!(call = %id, "an approved call nobody picked up ended unclaimed");
                self.metrics
                    .approval_decision(CallStatus::Unclaimed.as_str(), None);
            }
        }
        Ok(())
    }
}
