//! Resumable streams for forwarded calls (2025-11-25 sessions, SEP-1699). The SSE stream that
//! carries a forwarded call's messages starts with a priming event (an event id, empty data,
//! `retry`) and numbers every event; the messages are read from the upstream into a [`Relay`],
//! so a cut connection loses nothing: a `GET` with `Last-Event-ID` in the same session takes
//! the stream over and gets every message after that event (the last [`KEPT`] are held; older
//! progress is gone), the answer included. A handshake-era client's closed stream is no
//! cancellation, so the call runs on either way.
//!
//! Who reads the upstream: the connection following the relay, as it goes (no task and no
//! wake-up between the upstream's message and the client's event, the common case of a call
//! answered on the stream that asked it); when no connection follows and the call is not done,
//! a task of its own ([`pump`]) takes over until the answer, or until nobody has followed for
//! the grace.
//!
//! The relay is remembered by the session (with its parked streams, [`ResumableStreams`]) and
//! forgotten once a stream has delivered the answer to its end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use tokio::sync::Notify;

use super::reply::{Events, Messages, Reply};
use super::resume::{Resumable, ResumableStreams};

/// Messages held for a stream that may resume, newest last (the answer is always among them).
const KEPT: usize = 32;

/// A forwarded call's messages, numbered from 1, for whichever connection follows them.
pub struct Relay {
    state: Mutex<State>,
    /// The call's messages still to come from the upstream; whoever holds the lock reads them.
    source: tokio::sync::Mutex<BoxStream<'static, Value>>,
    changed: Notify,
    /// How long it waits with no connection following it before it lets the call go (the
    /// session's idle timeout): the call's outcome is then recorded as unknown, and the session
    /// may idle out as one without calls does.
    grace: Duration,
}

struct State {
    held: VecDeque<(u64, Value)>,
    next: u64,
    /// The answer came, or the call's stream ended without one.
    done: bool,
    /// Bumped by every connection that follows the relay; an older one then ends.
    follower: u64,
    /// Connections following it now.
    following: usize,
    /// Since when none has (from the start until the first one).
    detached_since: Option<Instant>,
    /// A pump reads the source (nobody followed while the call was not done).
    pumping: bool,
}

/// One connection following a relay, for as long as its stream lives.
struct Following(Arc<Relay>);

impl Drop for Following {
    fn drop(&mut self) {
        let pump = {
            let mut state = self.0.lock();
            state.following = state.following.saturating_sub(1);
            let alone = state.following == 0;
            if alone {
                state.detached_since = Some(Instant::now());
            }
            // Nobody reads the upstream now: a pump does, so the answer is there to resume.
            let pump = alone && !state.done && !state.pumping;
            state.pumping |= pump;
            pump
        };
        self.0.changed.notify_waiters();
        if pump {
            tokio::spawn(pump_until_done(self.0.clone()));
        }
    }
}

impl Relay {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new relay of `messages` (read as its first follower asks for them).
    fn start(messages: BoxStream<'static, Value>, grace: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                held: VecDeque::new(),
                next: 1,
                done: false,
                follower: 0,
                following: 0,
                detached_since: Some(Instant::now()),
                pumping: false,
            }),
            source: tokio::sync::Mutex::new(messages),
            changed: Notify::new(),
            grace,
        })
    }

    /// Holds `msg`, the next message of the call (`None`: its stream ended without an answer).
    fn hold(&self, msg: Option<Value>) {
        {
            let mut state = self.lock();
            match msg {
                Some(msg) => {
                    let n = state.next;
                    state.next += 1;
                    state.done = msg.get("method").is_none();
                    state.held.push_back((n, msg));
                    while state.held.len() > KEPT {
                        state.held.pop_front();
                    }
                }
                None => state.done = true,
            }
        }
        self.changed.notify_waiters();
    }

    /// The events after `after`, for a connection that takes the stream over (an older one ends);
    /// once the answer has gone out and the stream is read to its end, `delivered` runs.
    pub fn follow(
        self: &Arc<Self>,
        after: u64,
        delivered: impl FnOnce() + Send + 'static,
    ) -> BoxStream<'static, (u64, Value)> {
        let me = {
            let mut state = self.lock();
            state.follower += 1;
            state.following += 1;
            state.detached_since = None;
            state.follower
        };
        self.changed.notify_waiters();
        let start = (Following(self.clone()), after, Some(delivered));
        futures_util::stream::unfold(start, move |(following, seen, mut delivered)| async move {
            match following.0.next_after(me, seen).await {
                Next::Event(n, msg) => Some(((n, msg), (following, n, delivered))),
                Next::Done => {
                    if let Some(delivered) = delivered.take() {
                        delivered();
                    }
                    None
                }
                Next::TakenOver => None,
            }
        })
        .boxed()
    }

    /// Waits for the first message after event `seen` for follower `me`, reading it from the
    /// upstream itself when nobody else is.
    async fn next_after(&self, me: u64, seen: u64) -> Next {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                if state.follower != me {
                    return Next::TakenOver;
                }
                if let Some((n, msg)) = state.held.iter().find(|(n, _)| *n > seen) {
                    return Next::Event(*n, msg.clone());
                }
                if state.done {
                    return Next::Done;
                }
            }
            // Reading is cancel-safe: a stream dropped mid-read leaves the message in `source`.
            if let Ok(mut source) = self.source.try_lock() {
                let msg = source.next().await;
                self.hold(msg);
                continue;
            }
            changed.await;
        }
    }
}

/// What a follower finds next.
enum Next {
    Event(u64, Value),
    /// Every message was delivered.
    Done,
    /// A newer connection follows the relay.
    TakenOver,
}

impl Relay {
    /// Returns once no connection has followed the relay for its grace.
    async fn abandoned(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let since = self.lock().detached_since;
            let Some(since) = since else {
                changed.await;
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until((since + self.grace).into()) => {
                    if self.lock().detached_since == Some(since) {
                        return;
                    }
                }
                () = changed => {}
            }
        }
    }
}

/// Reads the call's messages into the relay until its answer (or the end of its stream), or
/// until nobody has followed it for its grace (the messages are then let go); a connection that
/// follows again meanwhile reads them as it did.
async fn pump_until_done(relay: Arc<Relay>) {
    loop {
        if relay.lock().done {
            break;
        }
        let msg = {
            let mut source = relay.source.lock().await;
            tokio::select! {
                msg = source.next() => Some(msg),
                () = relay.abandoned() => None,
            }
        };
        match msg {
            Some(msg) => relay.hold(msg),
            None => {
                tracing::debug!("nobody resumed a forwarded call's stream; letting it go");
                // Dropping the source lets the call go (its outcome recorded as unknown).
                *relay.source.lock().await = futures_util::stream::empty().boxed();
                relay.hold(None);
                break;
            }
        }
    }
    relay.lock().pumping = false;
}

/// `reply` as a 2025-11-25 session's SSE answer: a forwarded call's messages become a resumable
/// stream (parked streams are resumable already); anything else, and older revisions, as it is.
pub fn for_session(
    reply: Reply,
    session: &super::session::Session,
    as_sse: bool,
    grace: Duration,
) -> Reply {
    match reply {
        Reply::Stream(messages)
            if as_sse
                && session.protocol_version == super::tasks::TASKS_VERSION
                && !messages.has_event_ids() =>
        {
            resumable(messages, &session.streams, grace)
        }
        other => other,
    }
}

/// The SSE answer to a forwarded request in a session that can resume streams: `messages`
/// read through a relay the session remembers, starting with a priming event. Without a stream
/// id (no randomness), the messages go out as they come, as before.
fn resumable(messages: Messages, streams: &Arc<ResumableStreams>, grace: Duration) -> Reply {
    let Ok(stream) = crate::secrets::generate_session_id() else {
        return Reply::Stream(messages);
    };
    let keep_alive = messages.keep_alive();
    let relay = Relay::start(messages.into_stream(), grace);
    streams.keep(&stream, Resumable::Relayed(relay.clone()));
    let events = {
        let (streams, stream) = (streams.clone(), stream.clone());
        relay.follow(0, move || streams.forget(&stream))
    };
    Reply::Events(Events::new(stream, true, events, keep_alive))
}
