//! From a `tools/call` to a verdict: which rule applies, and what the agent is told when the call
//! does not go through.
//!
//! A listed tool gets its own rule; any other tool gets the policy's default (DESIGN.md: under
//! `default: deny` an unlisted tool is denied like a denied one, before any upstream sees it). The
//! verdict texts are part of the external contract ("What the agent sees"), so they are built here
//! and nowhere else, with the rule named `upstream.tool`. An allowed, rate-limited call takes its
//! slot in the same step, so a call is either counted and forwarded or refused, never forwarded
//! uncounted.

use std::fmt;
use std::time::{Duration, Instant};

use super::model::{ApprovalRule, Policy, RateLimit, RateScope, Rule};
use super::rate_limit::{RateLimiter, Slot};

/// The call being judged.
#[derive(Debug, Clone, Copy)]
pub struct CallSite<'a> {
    /// The upstream's configured name (`telegram`).
    pub upstream: &'a str,
    /// The tool's name as the upstream lists it (`send_message`).
    pub tool: &'a str,
    /// The agent's name: limits count per agent unless the rule says `"per": "session"`.
    pub agent: &'a str,
    /// The agent session id (handshake era) or the agent token's digest (2026-07-28, stateless),
    /// for limits counted per session.
    pub session: &'a str,
}

impl CallSite<'_> {
    /// The key `limit` counts this call under: the agent, or its session (or token).
    pub fn rate_key(&self, limit: &RateLimit) -> String {
        match limit.per() {
            RateScope::Agent => super::rate_limit::agent_key(self.agent),
            RateScope::Session => super::rate_limit::session_key(self.session),
        }
    }
}

/// The rule that applies to a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRule<'a> {
    pub rule: &'a Rule,
    /// `false` when the tool is not listed and the rule is the policy's default.
    pub listed: bool,
}

/// What the proxy does with a `tools/call`.
#[must_use]
#[derive(Debug)]
pub enum Verdict {
    /// Forward the call. With a slot, the call counts against a rate limit: give the slot back
    /// with [`Slot::release`] if the upstream call fails.
    Allow { slot: Option<Slot> },
    /// Do not forward; answer with `message` as an `isError` result.
    Deny { message: String },
    /// Do not forward; answer with `message`. `retry_after` is whole seconds (at least one), the
    /// same number the message states, so a client that waits it out gets through.
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// Park the call for a human decision under this rule.
    RequireApproval(ApprovalRule),
}

/// The fallback when a deny rule gives no `reason`.
pub(super) const DENIED_WITHOUT_REASON: &str = "not allowed for agents";
/// The reason given for a tool that a `default: deny` policy does not list.
pub(super) const NOT_LISTED: &str = "not listed in the policy (default: deny)";

impl Policy {
    /// The tool's own rule, or the default for tools not listed.
    pub fn rule_for(&self, tool: &str) -> ResolvedRule<'_> {
        match self.tools.get(tool) {
            Some(rule) => ResolvedRule { rule, listed: true },
            None => ResolvedRule {
                rule: &self.default_rule,
                listed: false,
            },
        }
    }

    /// Judges a call at `now`, taking a rate-limit slot from `limiter` when the rule has a limit.
    pub fn evaluate(&self, call: &CallSite<'_>, limiter: &RateLimiter, now: Instant) -> Verdict {
        let resolved = self.rule_for(call.tool);
        let name = RuleName(call);
        match resolved.rule {
            Rule::Allow { rate_limit: None } => Verdict::Allow { slot: None },
            Rule::Allow {
                rate_limit: Some(limit),
            } => match limiter.try_acquire(
                &super::Counted {
                    key: &call.rate_key(limit),
                    upstream: call.upstream,
                    tool: call.tool,
                },
                *limit,
                now,
            ) {
                Ok(slot) => Verdict::Allow { slot: Some(slot) },
                Err(wait) => {
                    let (message, retry_after) = rate_limited(&name.to_string(), *limit, wait);
                    Verdict::RateLimited {
                        message,
                        retry_after,
                    }
                }
            },
            Rule::Deny { reason } => {
                let reason = match (resolved.listed, reason) {
                    (false, _) => NOT_LISTED,
                    (true, Some(reason)) => reason.as_str(),
                    (true, None) => DENIED_WITHOUT_REASON,
                };
                Verdict::Deny {
                    message: format!("Denied by policy ({name}): {reason}"),
                }
            }
            Rule::RequireApproval(approval) => Verdict::RequireApproval(approval.clone()),
        }
    }
}

/// `upstream.tool`, the name of a rule in messages.
struct RuleName<'a>(&'a CallSite<'a>);

impl fmt::Display for RuleName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0.upstream, self.0.tool)
    }
}

/// A duration in seconds: `60`, or `0.5` for the odd sub-second window.
pub(super) struct Secs(pub(super) Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}", self.0.as_secs())
        } else {
            write!(f, "{}", self.0.as_secs_f64())
        }
    }
}

/// Rounds up to whole seconds, and to at least one: "retry after 0 s" would invite a busy loop.
/// What the agent reads when a call of rule `name` (`upstream.tool`) is over `limit` and would be
/// accepted after `wait`, and that wait in whole seconds (at least one, as the text says).
pub fn rate_limited(name: &str, limit: RateLimit, wait: Duration) -> (String, Duration) {
    let retry_after = whole_seconds_up(wait);
    let calls = if limit.max() == 1 { "call" } else { "calls" };
    let message = format!(
        "Rate limit for {name}: {} {calls} per {} s; retry after {} s",
        limit.max(),
        Secs(limit.window()),
        retry_after.as_secs()
    );
    (message, retry_after)
}

fn whole_seconds_up(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TELEGRAM: &str = r#"{ "version": "1", "default": "deny",
      "tools": {
        "get_chats":      {},
        "send_message":   { "rate_limit": { "max": 10, "window": 60 } },
        "delete_chat":    { "action": "deny", "reason": "never from an agent" },
        "leave_chat":     { "action": "deny" },
        "export_session": { "action": "require_approval", "approvals": 1, "timeout": 600,
                            "reviewers": ["security"], "notify": ["security@example.org"] } } }"#;

    fn telegram() -> Policy {
        match Policy::parse(Path::new("policies/telegram.json"), TELEGRAM) {
            Ok(policy) => policy,
            Err(error) => panic!("{error}"),
        }
    }

    fn call(tool: &str) -> CallSite<'_> {
        CallSite {
            upstream: "telegram",
            tool,
            agent: "claude",
            session: "session-1",
        }
    }

    fn deny_message(verdict: Verdict) -> String {
        match verdict {
            Verdict::Deny { message } => message,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn a_listed_tool_gets_its_rule_and_others_the_default() {
        let policy = telegram();
        let listed = policy.rule_for("get_chats");
        assert!(listed.listed);
        assert_eq!(listed.rule, &Rule::Allow { rate_limit: None });

        let unlisted = policy.rule_for("send_sticker");
        assert!(!unlisted.listed);
        assert_eq!(unlisted.rule, &Rule::Deny { reason: None });
    }

    #[test]
    fn an_allowed_tool_without_limit_takes_no_slot() {
        let verdict = telegram().evaluate(&call("get_chats"), &RateLimiter::new(), Instant::now());
        assert!(matches!(verdict, Verdict::Allow { slot: None }));
    }

    #[test]
    fn a_deny_rule_tells_the_agent_its_reason() {
        let verdict =
            telegram().evaluate(&call("delete_chat"), &RateLimiter::new(), Instant::now());
        assert_eq!(
            deny_message(verdict),
            "Denied by policy (telegram.delete_chat): never from an agent"
        );
    }

    #[test]
    fn a_deny_rule_without_reason_still_explains() {
        let verdict = telegram().evaluate(&call("leave_chat"), &RateLimiter::new(), Instant::now());
        assert_eq!(
            deny_message(verdict),
            "Denied by policy (telegram.leave_chat): not allowed for agents"
        );
    }

    #[test]
    fn an_unlisted_tool_under_default_deny_is_denied_the_same_way() {
        let verdict =
            telegram().evaluate(&call("send_sticker"), &RateLimiter::new(), Instant::now());
        assert_eq!(
            deny_message(verdict),
            "Denied by policy (telegram.send_sticker): not listed in the policy (default: deny)"
        );
    }

    #[test]
    fn the_eleventh_message_in_a_minute_is_rate_limited() {
        let policy = telegram();
        let limiter = RateLimiter::new();
        let start = Instant::now();
        for i in 0..10 {
            let verdict = policy.evaluate(
                &call("send_message"),
                &limiter,
                start + Duration::from_secs(i),
            );
            assert!(
                matches!(verdict, Verdict::Allow { slot: Some(_) }),
                "call {i}: {verdict:?}"
            );
        }
        // The first call (at 0 s) leaves the window at 60 s; at 36.5 s that is 23.5 s away.
        let at = start + Duration::from_millis(36_500);
        match policy.evaluate(&call("send_message"), &limiter, at) {
            Verdict::RateLimited {
                message,
                retry_after,
            } => {
                assert_eq!(
                    message,
                    "Rate limit for telegram.send_message: 10 calls per 60 s; retry after 24 s"
                );
                assert_eq!(retry_after, Duration::from_secs(24));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // The design's example: 37 s in, the wait is exactly 23 s.
        let at = start + Duration::from_secs(37);
        match policy.evaluate(&call("send_message"), &limiter, at) {
            Verdict::RateLimited { message, .. } => assert_eq!(
                message,
                "Rate limit for telegram.send_message: 10 calls per 60 s; retry after 23 s"
            ),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn an_approval_rule_is_handed_to_the_proxy() {
        let verdict =
            telegram().evaluate(&call("export_session"), &RateLimiter::new(), Instant::now());
        match verdict {
            Verdict::RequireApproval(rule) => {
                assert_eq!(rule.approvals(), 1);
                assert_eq!(rule.timeout(), Duration::from_secs(600));
                assert_eq!(rule.reviewers(), ["security"]);
                assert_eq!(rule.notify(), ["security@example.org"]);
            }
            other => panic!("expected an approval, got {other:?}"),
        }
    }

    #[test]
    fn without_a_policy_file_every_tool_needs_approval() {
        let policy = Policy::require_approval_by_default();
        let verdict = policy.evaluate(&call("get_chats"), &RateLimiter::new(), Instant::now());
        match verdict {
            Verdict::RequireApproval(rule) => {
                assert_eq!(rule.approvals(), 1);
                assert_eq!(rule.timeout(), Duration::from_secs(600));
                assert!(rule.reviewers().is_empty());
            }
            other => panic!("expected an approval, got {other:?}"),
        }
    }

    #[test]
    fn waits_round_up_to_whole_seconds_and_never_to_zero() {
        assert_eq!(
            whole_seconds_up(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(whole_seconds_up(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds_up(Duration::from_secs(23)),
            Duration::from_secs(23)
        );
        assert_eq!(
            whole_seconds_up(Duration::from_millis(22_001)),
            Duration::from_secs(23)
        );
    }
}
