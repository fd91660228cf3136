//! Sliding-window rate limits, counted per key (the agent, or one session or token of it; see
//! [`RateScope`](super::RateScope)) and per `upstream.tool`.
//!
//! Each bucket keeps a log of the calls it counted: a call at `t` counts until `t + window` and is
//! forgotten from then on, so at most `max` calls ever fall within any `window` (no burst at a
//! window boundary, as fixed windows allow). A counted call is a [`Slot`]: the proxy releases it
//! when the upstream call fails, so a failed call does not use quota (DESIGN.md). Dropping a slot
//! keeps the call counted; that is the safe side when a task is cancelled or panics mid-call, and
//! the only way to hand quota back is the explicit [`Slot::release`].
//!
//! Time is a parameter (`now`), never read here, so tests run on synthetic instants. The state
//! sits behind one `std::sync::Mutex`, held only for a few map operations and never across an
//! `.await`. The limit is passed on each call rather than stored, so a policy reload applies to
//! the existing logs at once; a bucket never holds more than the largest `max` it was given.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::model::RateLimit;

/// What one count is kept under: whose quota (`key`, see [`super::CallSite::rate_key`]) for which
/// `upstream.tool`.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    pub key: &'a str,
    pub upstream: &'a str,
    pub tool: &'a str,
}

/// The counted calls of every agent. Cheap to clone: clones share the counts.
#[derive(Clone, Default)]
pub struct RateLimiter {
    state: Arc<Mutex<Logs>>,
}

/// One counted call. Dropping it keeps the call counted; [`Slot::release`] gives it back.
#[must_use = "a slot is returned with `release()` when the upstream call fails; dropping it keeps the call counted"]
pub struct Slot {
    state: Arc<Mutex<Logs>>,
    agent_key: String,
    tool: ToolKey,
    id: u64,
}

#[derive(Default)]
struct Logs {
    /// Tells slots apart, so releasing one removes exactly its own entry.
    next_id: u64,
    by_agent: HashMap<String, HashMap<ToolKey, Bucket>>,
}

/// `(upstream, tool)`, kept apart so that names containing dots cannot collide.
type ToolKey = (String, String);

struct Bucket {
    /// The window the bucket was last checked against, for [`RateLimiter::prune`].
    window: Duration,
    /// Counted calls, oldest first: when each was counted, and its slot id.
    calls: VecDeque<(Instant, u64)>,
}

impl Bucket {
    /// Forgets the calls that are `window` or more older than `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.calls.front() {
            if now.saturating_duration_since(at) >= self.window {
                self.calls.pop_front();
            } else {
                break;
            }
        }
    }
}

/// The key of limits counted per agent. (Agent names have no `:`, so the two spellings cannot
/// collide.)
pub fn agent_key(agent: &str) -> String {
    format!("agent:{agent}")
}

/// The key of limits counted per session (or, for 2026-07-28 clients, per token digest).
pub fn session_key(session: &str) -> String {
    format!("session:{session}")
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a call at `now` against `limit` for this agent and `upstream.tool`, or refuses it
    /// and says how long until the call would be accepted (exactly; callers round as they show it).
    pub fn try_acquire(
        &self,
        call: &Counted<'_>,
        limit: RateLimit,
        now: Instant,
    ) -> Result<Slot, Duration> {
        let mut logs = self.lock();
        let id = logs.next_id;
        let tool = (call.upstream.to_owned(), call.tool.to_owned());
        let bucket = logs
            .by_agent
            .entry(call.key.to_owned())
            .or_default()
            .entry(tool.clone())
            .or_insert_with(|| Bucket {
                window: limit.window(),
                calls: VecDeque::new(),
            });
        bucket.window = limit.window();
        bucket.expire(now);

        let max = usize::try_from(limit.max()).unwrap_or(usize::MAX);
        if bucket.calls.len() >= max {
            // With `len - max + 1` calls gone the count drops below `max`; the call at index
            // `len - max` is the last of those to leave the window. (`len > max` after a reload
            // lowered the limit.)
            let wait =
                bucket
                    .calls
                    .get(bucket.calls.len() - max)
                    .map_or(limit.window(), |&(at, _)| {
                        limit
                            .window()
                            .saturating_sub(now.saturating_duration_since(at))
                    });
            return Err(wait);
        }

        bucket.calls.push_back((now, id));
        logs.next_id = id.wrapping_add(1);
        Ok(Slot {
            state: Arc::clone(&self.state),
            agent_key: call.key.to_owned(),
            tool,
            id,
        })
    }

    /// Drops everything counted under `key`.
    pub fn forget_key(&self, key: &str) {
        self.lock().by_agent.remove(key);
    }

    /// Drops what limits counted per session counted for `session` (it ended).
    pub fn forget_session(&self, session: &str) {
        self.forget_key(&session_key(session));
    }

    /// Drops logs whose calls have all left their window. Agents and tokens (2026-07-28) have no
    /// session end to call [`Self::forget_key`] on; a periodic prune bounds their memory instead.
    pub fn prune(&self, now: Instant) {
        let mut logs = self.lock();
        logs.by_agent.retain(|_, tools| {
            tools.retain(|_, bucket| {
                bucket.expire(now);
                !bucket.calls.is_empty()
            });
            !tools.is_empty()
        });
    }

    fn lock(&self) -> MutexGuard<'_, Logs> {
        lock(&self.state)
    }
}

/// A panic while the lock was held cannot leave the logs half-updated in a way that matters (the
/// worst is one call counted or not), so a poisoned lock is used rather than spreading the panic.
fn lock(state: &Mutex<Logs>) -> MutexGuard<'_, Logs> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    /// Gives the call back: it no longer counts against the limit. Use when the upstream call
    /// failed. Harmless if the call has already left the window or the agent was forgotten.
    pub fn release(self) {
        let mut logs = lock(&self.state);
        let Some(tools) = logs.by_agent.get_mut(&self.agent_key) else {
            return;
        };
        if let Some(bucket) = tools.get_mut(&self.tool) {
            if let Some(index) = bucket.calls.iter().rposition(|&(_, id)| id == self.id) {
                bucket.calls.remove(index);
            }
            if bucket.calls.is_empty() {
                tools.remove(&self.tool);
            }
        }
        if tools.is_empty() {
            logs.by_agent.remove(&self.agent_key);
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("agent_key", &self.agent_key)
            .field("upstream", &self.tool.0)
            .field("tool", &self.tool.1)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn limit(max: u32, window: u64) -> RateLimit {
        match RateLimit::new(max, secs(window)) {
            Some(limit) => limit,
            None => panic!("invalid test limit"),
        }
    }

    fn send(key: &str) -> Counted<'_> {
        Counted {
            upstream: "telegram",
            tool: "send_message",
            key,
        }
    }

    fn acquire(limiter: &RateLimiter, call: &Counted<'_>, limit: RateLimit, at: Instant) -> Slot {
        match limiter.try_acquire(call, limit, at) {
            Ok(slot) => slot,
            Err(wait) => panic!("refused, retry after {wait:?}"),
        }
    }

    #[test]
    fn the_call_after_max_is_refused_until_the_oldest_leaves_the_window() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let three_per_minute = limit(3, 60);
        let _a = acquire(&limiter, &send("s1"), three_per_minute, t0);
        let _b = acquire(&limiter, &send("s1"), three_per_minute, t0 + secs(10));
        let _c = acquire(&limiter, &send("s1"), three_per_minute, t0 + secs(20));

        let refused = limiter.try_acquire(&send("s1"), three_per_minute, t0 + secs(30));
        assert_eq!(refused.err(), Some(secs(30)));

        // One instant before t0 + 60 the first call still counts; at t0 + 60 it is forgotten.
        let almost = t0 + secs(60) - Duration::from_millis(1);
        assert_eq!(
            limiter
                .try_acquire(&send("s1"), three_per_minute, almost)
                .err(),
            Some(Duration::from_millis(1))
        );
        let _d = acquire(&limiter, &send("s1"), three_per_minute, t0 + secs(60));
        // Now the call at t0 + 10 is the oldest: free again at t0 + 70.
        assert_eq!(
            limiter
                .try_acquire(&send("s1"), three_per_minute, t0 + secs(61))
                .err(),
            Some(secs(9))
        );
    }

    #[test]
    fn agents_and_tools_are_counted_apart() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let once = limit(1, 60);
        let _a = acquire(&limiter, &send("s1"), once, t0);
        let _b = acquire(&limiter, &send("s2"), once, t0);
        let other_tool = Counted {
            upstream: "telegram",
            tool: "get_chats",
            key: "s1",
        };
        let _c = acquire(&limiter, &other_tool, once, t0);
        let other_upstream = Counted {
            upstream: "telegram.send_message",
            tool: "",
            key: "s1",
        };
        let _d = acquire(&limiter, &other_upstream, once, t0);
        assert!(limiter.try_acquire(&send("s1"), once, t0).is_err());
    }

    #[test]
    fn a_released_slot_gives_its_quota_back_and_a_dropped_one_does_not() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let twice = limit(2, 60);
        let failed = acquire(&limiter, &send("s1"), twice, t0);
        let kept = acquire(&limiter, &send("s1"), twice, t0 + secs(1));
        assert!(
            limiter
                .try_acquire(&send("s1"), twice, t0 + secs(2))
                .is_err()
        );

        failed.release();
        let again = acquire(&limiter, &send("s1"), twice, t0 + secs(2));
        drop(kept);
        drop(again);
        assert_eq!(
            limiter.try_acquire(&send("s1"), twice, t0 + secs(3)).err(),
            Some(secs(58)),
            "dropped slots stay counted; the call at t0 + 1 s is now the oldest"
        );
    }

    #[test]
    fn releasing_removes_only_that_call_even_at_the_same_instant() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let twice = limit(2, 60);
        let first = acquire(&limiter, &send("s1"), twice, t0);
        let _second = acquire(&limiter, &send("s1"), twice, t0);
        first.release();
        let _third = acquire(&limiter, &send("s1"), twice, t0);
        assert!(limiter.try_acquire(&send("s1"), twice, t0).is_err());
    }

    #[test]
    fn a_slot_released_after_its_window_or_after_forget_changes_nothing() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let once = limit(1, 60);
        let old = acquire(&limiter, &send("s1"), once, t0);
        let _new = acquire(&limiter, &send("s1"), once, t0 + secs(60));
        old.release();
        assert!(
            limiter
                .try_acquire(&send("s1"), once, t0 + secs(61))
                .is_err()
        );

        let forgotten = acquire(&limiter, &send("s2"), once, t0);
        limiter.forget_key("s2");
        forgotten.release();
        let _fresh = acquire(&limiter, &send("s2"), once, t0 + secs(1));
    }

    #[test]
    fn forgetting_an_agent_clears_its_counts() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let once = limit(1, 60);
        let _a = acquire(&limiter, &send("s1"), once, t0);
        let _b = acquire(&limiter, &send("s2"), once, t0);
        limiter.forget_key("s1");
        let _c = acquire(&limiter, &send("s1"), once, t0 + secs(1));
        assert!(
            limiter
                .try_acquire(&send("s2"), once, t0 + secs(1))
                .is_err()
        );
    }

    #[test]
    fn a_lowered_limit_applies_to_calls_already_counted() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        for i in 0..4 {
            let _slot = acquire(&limiter, &send("s1"), limit(10, 60), t0 + secs(i));
        }
        // 4 counted, now at most 2: three must leave for a fifth to fit, the third (counted at
        // t0 + 2 s) leaves at t0 + 62 s.
        assert_eq!(
            limiter
                .try_acquire(&send("s1"), limit(2, 60), t0 + secs(10))
                .err(),
            Some(secs(52))
        );
        let _slot = acquire(&limiter, &send("s1"), limit(2, 60), t0 + secs(62));
    }

    #[test]
    fn prune_drops_only_logs_that_have_expired() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        let _a = acquire(&limiter, &send("s1"), limit(1, 10), t0);
        let _b = acquire(&limiter, &send("s2"), limit(1, 100), t0);
        limiter.prune(t0 + secs(50));
        let logs = limiter.lock();
        assert!(!logs.by_agent.contains_key("s1"));
        assert!(logs.by_agent.contains_key("s2"));
    }
}
