//! The audit writer: events that do not change a parked call (allowed, denied and rate-limited
//! calls, their outcomes, policy reloads) are appended by one background task, in batches, so the
//! proxy path never waits for the database.
//!
//! Each event is queued on a bounded channel and the task appends whatever has gathered within
//! [`LINGER`] in one transaction (one commit for many calls: with a commit per event, the
//! database work halved the proxy's throughput in `benches/proxy.rs`). A store that cannot be written is retried with backoff; the batch stays in
//! memory meanwhile; after a few failures its events are tried one at a time, so a single event
//! the store refuses cannot stop the log. When the channel is full (the store has been unwritable
//! for a while), a call about to be forwarded waits up to [`ADMIT_WAIT`] for room and is then
//! refused: Airlock does not run what it cannot record. Events that report something that already
//! happened (an outcome, a refusal) never wait; they are held beside the channel.
//!
//! On shutdown the task stops taking events, appends what it holds, and ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
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
/// How long the first event of a quiet moment waits for others to join its batch, and the
/// least time between two commits: a commit's fixed cost (its WAL pages, the head row, the
/// round trips of its statements: about 0.8 ms of CPU on SQLite) is paid at most this often,
/// however the calls come. 50 ms rather than 20 cut Airlock's CPU a call by 4% at one agent
/// (2,000 calls/s) in `benches/proxy.rs`'s setting; events reach the database that much later,
/// and a crash can lose that much more of those still queued.
const LINGER: Duration = Duration::from_millis(50);
/// Characters kept of a text field (a tool name or detail the agent controls).
const MAX_FIELD: usize = 4096;
/// Failed attempts at a batch after which its events are tried one by one (to find one the
/// store refuses, rather than a store that is down).
const ISOLATE_AFTER: u32 = 3;
/// Events held beside the full channel before further ones are dropped (and counted).
const OVERFLOW: usize = 65_536;

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
    /// An event of `kind` by `actor`, stamped now.
    pub fn now(kind: &str, actor: &crate::domain::Actor) -> Self {
        Self {
            at: crate::domain::Timestamp::now().text(),
            kind: kind.to_owned(),
            actor: actor.name().to_owned(),
            via: actor.via().as_str().to_owned(),
            ..Self::default()
        }
    }

    /// The entry with characters no store can hold removed (PostgreSQL refuses NUL in text) and
    /// agent-supplied fields capped, so one hostile tool name cannot stop the writer.
    fn sanitized(mut self) -> Self {
        for field in [
            Some(&mut self.kind),
            Some(&mut self.actor),
            self.upstream.as_mut(),
            self.tool.as_mut(),
            self.detail.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if field.contains('\0') || field.len() > MAX_FIELD {
                let mut clean: String = field.chars().filter(|c| *c != '\0').collect();
                if clean.len() > MAX_FIELD {
                    let cut = (0..=MAX_FIELD)
                        .rev()
                        .find(|i| clean.is_char_boundary(*i))
                        .unwrap_or(0);
                    clean.truncate(cut);
                    clean.push('…');
                }
                *field = clean;
            }
        }
        self
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

/// What the writer has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Events appended to the chain.
    pub written: AtomicU64,
    /// Events the store refused, recorded as `unrecordable` instead.
    pub unrecordable: AtomicU64,
    /// Events lost: the held buffer was full, or the writer stopped with them unwritten.
    pub dropped: AtomicU64,
    /// Failed attempts to write a batch (the store was unreachable, busy or refused).
    pub failures: AtomicU64,
}

/// Hands events to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Entry>,
    pub stats: Arc<WriterStats>,
    /// Events that found the channel full and could not wait; the task takes them after the
    /// channel's.
    overflow: Arc<Overflow>,
}

#[derive(Default)]
struct Overflow {
    events: Mutex<Vec<Entry>>,
    /// Told when an event is put here, so an idle writer looks.
    added: Notify,
}

impl Overflow {
    /// Up to `most` of the held events, oldest first.
    fn take(&self, most: usize) -> Vec<Entry> {
        let mut held = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let most = most.min(held.len());
        held.drain(..most).collect()
    }
}

impl AuditWriter {
    /// Starts the writer task on `store`; it ends after `stop` is cancelled and what it holds is
    /// written. Await the handle to be sure of that.
    /// Starts the writer; it appends through `store` (see [`Store::for_batches`]).
    pub fn start(store: Store, stop: CancellationToken) -> (Self, JoinHandle<()>) {
        let (queue, events) = mpsc::channel(CAPACITY);
        let overflow = Arc::new(Overflow::default());
        let stats = Arc::new(WriterStats::default());
        let task = tokio::spawn(run(store, events, overflow.clone(), stats.clone(), stop));
        (
            Self {
                queue,
                stats,
                overflow,
            },
            task,
        )
    }

    /// Events waiting to be written (in the channel and held beside it).
    pub fn backlog(&self) -> usize {
        let held = self
            .overflow
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        CAPACITY - self.queue.capacity() + held
    }

    /// Queues an event that must be recorded before what it describes may happen: waits up to
    /// [`ADMIT_WAIT`] for room.
    pub async fn admit(&self, entry: Entry) -> Result<(), NotRecorded> {
        match self.queue.try_send(entry.sanitized()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(entry)) => self
                .queue
                .send_timeout(entry, ADMIT_WAIT)
                .await
                .map_err(|_| NotRecorded),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotRecorded),
        }
    }

    /// Queues an event about something that has happened; never waits. With the channel full it
    /// is held beside it (up to [`OVERFLOW`] events; beyond that it is dropped, and logged).
    pub fn record(&self, entry: Entry) {
        let entry = entry.sanitized();
        // Behind events already held, to keep their order.
        let held_before = !self
            .overflow
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        let sent = if held_before {
            Err(mpsc::error::TrySendError::Full(entry))
        } else {
            self.queue.try_send(entry)
        };
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(entry)) => {
                let mut held = self
                    .overflow
                    .events
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if held.len() < OVERFLOW {
                    held.push(entry);
                    drop(held);
                    self.overflow.added.notify_one();
                } else {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(kind = %entry.kind, "audit writer far behind; an event was dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(entry)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(kind = %entry.kind, "audit writer stopped; an event was not recorded");
            }
        }
    }
}

async fn run(
    store: Store,
    mut events: mpsc::Receiver<Entry>,
    overflow: Arc<Overflow>,
    stats: Arc<WriterStats>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_write = tokio::time::Instant::now();
    loop {
        if stop.is_cancelled() {
            break;
        }
        gather(&mut events, &overflow, &mut batch);
        // Events that came during the last write wait out the rest of its linger: under a
        // steady load batches are then LINGER apart, not as small as a write is short.
        let since = last_write.elapsed();
        if !batch.is_empty() && batch.len() < BATCH && since < LINGER {
            tokio::select! {
                () = tokio::time::sleep(LINGER - since) => {}
                () = stop.cancelled() => {}
            }
            gather(&mut events, &overflow, &mut batch);
        }
        if batch.is_empty() {
            tokio::select! {
                received = events.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                    // Let a batch gather: one transaction (one fsync) for many calls.
                    if batch.len() < BATCH {
                        tokio::select! {
                            () = tokio::time::sleep(LINGER) => {}
                            () = stop.cancelled() => {}
                        }
                        gather(&mut events, &overflow, &mut batch);
                    }
                }
                () = overflow.added.notified() => continue,
                () = stop.cancelled() => break,
            }
        }
        last_write = tokio::time::Instant::now();
        write(&store, &mut batch, &stats, &stop).await;
    }
    // Shutting down: take nothing new, write what is queued.
    events.close();
    loop {
        gather(&mut events, &overflow, &mut batch);
        if batch.is_empty() {
            return;
        }
        write(&store, &mut batch, &stats, &stop).await;
    }
}

/// Fills `batch` (up to [`BATCH`]) with what is waiting, without waiting: the channel's events
/// first (they are older: events are held beside it only once it is full, and while any are held
/// new ones queue behind them), then the held ones.
fn gather(events: &mut mpsc::Receiver<Entry>, overflow: &Overflow, batch: &mut Vec<Entry>) {
    while batch.len() < BATCH
        && let Ok(entry) = events.try_recv()
    {
        batch.push(entry);
    }
    batch.extend(overflow.take(BATCH - batch.len()));
}

/// Appends `batch` in one transaction, retrying until it is written. After a few failures the
/// events are tried one at a time: one the store refuses is replaced by an event saying so (the
/// chain stays whole and the rest go on), and a store that refuses everything is waited for.
/// After `stop`, gives up after a few tries, logging how many events are lost.
async fn write(
    store: &Store,
    batch: &mut Vec<Entry>,
    stats: &WriterStats,
    stop: &CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0;
    loop {
        let events: Vec<NewAuditEvent<'_>> = batch.iter().map(Entry::as_new).collect();
        let error = match store.audit_many(&events).await {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) => e,
        };
        failures += 1;
        stats.failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(events = batch.len(), error = %crate::telemetry::error_chain(&error), "cannot write audit events; retrying");
        if failures >= ISOLATE_AFTER && one_by_one(store, batch, stats).await {
            return;
        }
        if stop.is_cancelled() && failures >= ISOLATE_AFTER {
            tracing::error!(
                events = batch.len(),
                "shutting down with audit events unwritten"
            );
            stats
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            batch.clear();
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Writes `batch` an event at a time, replacing any the store refuses by an `unrecordable` event
/// that keeps its kind, actor and call but none of its text. Returns whether all are done; on a
/// store that refuses even the replacement, stops and leaves the rest in `batch`.
async fn one_by_one(store: &Store, batch: &mut Vec<Entry>, stats: &WriterStats) -> bool {
    let mut done = 0;
    for entry in batch.iter() {
        match store.audit(&entry.as_new()).await {
            Ok(()) => {
                stats.written.fetch_add(1, Ordering::Relaxed);
                done += 1;
                continue;
            }
            // Unreachable or busy: nothing is wrong with the event; wait and try again.
            Err(e) if !e.is_refusal() => break,
            Err(_) => {}
        }
        let stand_in = Entry {
            kind: "unrecordable".to_owned(),
            upstream: None,
            tool: None,
            detail: Some(format!(
                "a {:?} event the store refused to hold",
                entry.kind
            )),
            ..entry.clone()
        };
        if store.audit(&stand_in.as_new()).await.is_err() {
            break;
        }
        stats.unrecordable.fetch_add(1, Ordering::Relaxed);
        tracing::error!(kind = %entry.kind, "an audit event the store refused was replaced by an 'unrecordable' one");
        done += 1;
    }
    batch.drain(..done);
    batch.is_empty()
}
