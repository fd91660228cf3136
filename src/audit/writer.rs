//! The audit writer: events that do not change a parked call (allowed, denied and rate-limited
//! calls, their outcomes, policy reloads) are appended by one background task, in batches, so the
//! proxy path never waits for the database.
//!
//! Each event is queued on a bounded channel and the task appends whatever has gathered in one
//! transaction. A store that cannot be written is retried with backoff; the batch stays in
//! memory meanwhile. When the channel is full (the store has been unwritable for a while), a call
//! about to be forwarded waits up to [`ADMIT_WAIT`] for room and is then refused: Airlock does not
//! run what it cannot record. Events that report something that already happened (an outcome, a
//! refusal) never wait; they are handed to a task that waits for room.
//!
//! On shutdown the task stops taking events, appends what it holds, and ends.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::{NewAuditEvent, Store};

/// Events the channel holds before callers must wait.
const CAPACITY: usize = 8192;
/// Events appended in one transaction at most.
const BATCH: usize = 512;
/// How long a call waits for room in a full channel before it is refused.
pub const ADMIT_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between two attempts to write a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// An event to append, owned, so it can wait in the channel.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub via: String,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub call_id: Option<String>,
    pub args_digest: Option<String>,
    pub detail: Option<String>,
}

impl Entry {
    /// An event of `kind` by `actor` through `via`, stamped now.
    pub fn now(kind: &str, actor: &str, via: &str) -> Self {
        Self {
            at: crate::store::timestamp(time::OffsetDateTime::now_utc()),
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            via: via.to_owned(),
            ..Self::default()
        }
    }

    pub fn as_new(&self) -> NewAuditEvent<'_> {
        NewAuditEvent {
            at: &self.at,
            kind: &self.kind,
            actor: &self.actor,
            via: &self.via,
            upstream: self.upstream.as_deref(),
            tool: self.tool.as_deref(),
            call_id: self.call_id.as_deref(),
            args_digest: self.args_digest.as_deref(),
            detail: self.detail.as_deref(),
        }
    }
}

/// The channel was full for [`ADMIT_WAIT`], or the writer has stopped.
#[derive(Debug, thiserror::Error)]
#[error("the audit log is not being written")]
pub struct NotRecorded;

/// Hands events to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Entry>,
}

impl AuditWriter {
    /// Starts the writer task on `store`; it ends after `stop` is cancelled and what it holds is
    /// written. Await the handle to be sure of that.
    pub fn start(store: Store, stop: CancellationToken) -> (Self, JoinHandle<()>) {
        let (queue, events) = mpsc::channel(CAPACITY);
        let task = tokio::spawn(run(store, events, stop));
        (Self { queue }, task)
    }

    /// Queues an event that must be recorded before what it describes may happen: waits up to
    /// [`ADMIT_WAIT`] for room.
    pub async fn admit(&self, entry: Entry) -> Result<(), NotRecorded> {
        self.queue
            .send_timeout(entry, ADMIT_WAIT)
            .await
            .map_err(|_| NotRecorded)
    }

    /// Queues an event about something that has happened; never waits.
    pub fn record(&self, entry: Entry) {
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(entry)) => {
                let queue = self.queue.clone();
                tokio::spawn(async move {
                    if queue.send(entry).await.is_err() {
                        tracing::error!("audit writer stopped; an event was not recorded");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(entry)) => {
                tracing::error!(kind = %entry.kind, "audit writer stopped; an event was not recorded");
            }
        }
    }
}

async fn run(store: Store, mut events: mpsc::Receiver<Entry>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = events.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
            }
            () = stop.cancelled() => break,
        }
        write(&store, &mut batch, &stop).await;
    }
    // Shutting down: take nothing new, write what is queued.
    events.close();
    while events.recv_many(&mut batch, BATCH).await > 0 {
        write(&store, &mut batch, &stop).await;
    }
}

/// Appends `batch` in one transaction, retrying until it is written; after `stop`, tries a few
/// more times and then gives up, logging how many events are lost.
async fn write(store: &Store, batch: &mut Vec<Entry>, stop: &CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0;
    loop {
        let events: Vec<NewAuditEvent<'_>> = batch.iter().map(Entry::as_new).collect();
        match store.audit_many(&events).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                failures += 1;
                tracing::error!(events = batch.len(), error = %crate::telemetry::error_chain(&e), "cannot write audit events; retrying");
                if stop.is_cancelled() && failures >= 3 {
                    tracing::error!(
                        events = batch.len(),
                        "shutting down with audit events unwritten"
                    );
                    batch.clear();
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
