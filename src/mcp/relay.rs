//! Resumable streams for forwarded calls (2025-11-25 sessions, SEP-1699). The SSE stream that
//! carries a forwarded call's messages starts with a priming event (an event id, empty data,
//! `retry`) and numbers every event; the messages are read from the upstream by a task of their
//! own into a [`Relay`], so a cut connection loses nothing: a `GET` with `Last-Event-ID` in the
//! same session takes the stream over and gets every message after that event (the last
//! [`KEPT`] are held; older progress is gone), the answer included. A handshake-era client's
//! closed stream is no cancellation, so the call runs on either way.
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
}

/// One connection following a relay, for as long as its stream lives.
struct Following(Arc<Relay>);

impl Drop for Following {
    fn drop(&mut self) {
        {
            let mut state = self.0.lock();
            state.following = state.following.saturating_sub(1);
            if state.following == 0 {
                state.detached_since = Some(Instant::now());
            }
        }
        self.0.changed.notify_waiters();
    }
}

impl Relay {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts reading `messages` into a new relay.
    fn start(messages: BoxStream<'static, Value>, grace: Duration) -> Arc<Self> {
        let relay = Arc::new(Self {
            state: Mutex::new(State {
                held: VecDeque::new(),
                next: 1,
                done: false,
                follower: 0,
                following: 0,
                detached_since: Some(Instant::now()),
            }),
            changed: Notify::new(),
            grace,
        });
        tokio::spawn(pump(relay.clone(), messages));
        relay
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

    /// Waits for the first message after event `seen` for follower `me`.
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
/// until nobody has followed it for its grace (the messages are then let go).
async fn pump(relay: Arc<Relay>, mut messages: BoxStream<'static, Value>) {
    loop {
        let msg = tokio::select! {
            msg = messages.next() => msg,
            () = relay.abandoned() => {
                tracing::debug!("nobody resumed a forwarded call's stream; letting it go");
                None
            }
        };
        let Some(msg) = msg else {
            break;
        };
        let answer = msg.get("method").is_none();
        {
            let mut state = relay.lock();
            let n = state.next;
            state.next += 1;
            state.held.push_back((n, msg));
            while state.held.len() > KEPT {
                state.held.pop_front();
            }
            state.done = answer;
        }
        relay.changed.notify_waiters();
        if answer {
            return;
        }
    }
    relay.lock().done = true;
    relay.changed.notify_waiters();
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
