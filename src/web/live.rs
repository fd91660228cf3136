//! Live updates for the dashboard: `GET /events`, a Server-Sent Events stream that says "the queue
//! changed" (`event: queue`, data: the newest history row's number).
//!
//! The store is the source of truth: every change to a call writes a `call_events` row, on any
//! instance and from the CLI alike, so one task per process watches the newest row number (once a
//! second, and at once when this process changes a call) and every open stream follows that task.
//! The browser then fetches what it shows (the queue's rows, a call's status) as HTML rendered and
//! escaped by the server; nothing agent-controlled travels in the event itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::session::SignedIn;
use crate::app::AppState;
use crate::store::Store;

/// How often the store is looked at for changes made elsewhere.
const POLL: Duration = Duration::from_secs(1);
/// Comment lines that keep idle streams (and the proxies on their way) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an open stream checks that its session still exists.
const SESSION_CHECK: Duration = Duration::from_secs(5);

/// The newest history row number, as last seen; streams subscribe to it.
pub struct QueueFeed {
    latest: watch::Sender<i64>,
}

impl Default for QueueFeed {
    fn default() -> Self {
        Self {
            latest: watch::channel(0).0,
        }
    }
}

impl QueueFeed {
    /// Watches the store until `shutdown`: at each nudge from `changed` and every [`POLL`].
    pub fn spawn_watcher(
        self: Arc<Self>,
        store: Store,
        changed: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        tokio::spawn(async move {
            loop {
                match store.latest_event().await {
                    Ok(seq) => {
                        self.latest.send_if_modified(|latest| {
                            let modified = *latest != seq;
                            *latest = seq;
                            modified
                        });
                    }
                    Err(e) => tracing::debug!(error = %e, "live feed: store not readable"),
                }
                tokio::select! {
                    () = changed.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// One open stream: what it follows, and the session it must stay within.
struct Follower {
    latest: watch::Receiver<i64>,
    shutdown: CancellationToken,
    store: Store,
    session: String,
    /// Ticks every `SESSION_CHECK`, however busy the queue is.
    check: tokio::time::Interval,
    first: bool,
}

impl Follower {
    /// The next number to send, or `None` when the stream should end (shutdown, or the session
    /// ended: signed out, expired, password changed, user disabled).
    async fn next(&mut self) -> Option<i64> {
        if !std::mem::take(&mut self.first) {
            loop {
                tokio::select! {
                    changed = self.latest.changed() => {
                        changed.ok()?;
                        break;
                    }
                    _ = self.check.tick() => {
                        if matches!(self.store.session(&self.session).await, Ok(None)) {
                            return None;
                        }
                    }
                    () = self.shutdown.cancelled() => return None,
                }
            }
        }
        Some(*self.latest.borrow_and_update())
    }
}

pub async fn events(
    State(app): State<AppState>,
    signed: SignedIn,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // The first event goes out at once, so a page that loaded just before a change catches up.
    let follower = Follower {
        latest: app.feed.latest.subscribe(),
        shutdown: app.shutdown.clone(),
        store: app.store.clone(),
        session: signed.cookie_sha256().to_owned(),
        check: tokio::time::interval_at(tokio::time::Instant::now() + SESSION_CHECK, SESSION_CHECK),
        first: true,
    };
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let seq = follower.next().await?;
        let event = Event::default().event("queue").data(seq.to_string());
        Some((Ok(event), follower))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
