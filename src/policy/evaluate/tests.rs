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
        args: &Value::Null,
    }
}

/// The verdict on `tool` (no arguments, no counters, a tool with no risk, `sensitive` on).
fn verdict(policy: &Policy, tool: &str, limiter: &RateLimiter, now: Instant) -> Verdict {
    let judge = Judge {
        limiter,
        now,
        unix_now: 0,
        counters: &CounterValues::default(),
        risk: &Assessment::default(),
        sensitive: Sensitivity {
            credential: true,
            destructive: false,
        },
    };
    policy.evaluate(&call(tool), &judge)
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
    let verdict = verdict(
        &telegram(),
        "get_chats",
        &RateLimiter::new(),
        Instant::now(),
    );
    assert!(matches!(verdict, Verdict::Allow { slot: None, .. }));
}

#[test]
fn a_deny_rule_tells_the_agent_its_reason() {
    let verdict = verdict(
        &telegram(),
        "delete_chat",
        &RateLimiter::new(),
        Instant::now(),
    );
    assert_eq!(
        deny_message(verdict),
        "Denied by policy (telegram.delete_chat): never from an agent"
    );
}

#[test]
fn a_deny_rule_without_reason_still_explains() {
    let verdict = verdict(
        &telegram(),
        "leave_chat",
        &RateLimiter::new(),
        Instant::now(),
    );
    assert_eq!(
        deny_message(verdict),
        "Denied by policy (telegram.leave_chat): not allowed for agents"
    );
}

#[test]
fn an_unlisted_tool_under_default_deny_is_denied_the_same_way() {
    let verdict = verdict(
        &telegram(),
        "send_sticker",
        &RateLimiter::new(),
        Instant::now(),
    );
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
        let verdict = verdict(
            &policy,
            "send_message",
            &limiter,
            start + Duration::from_secs(i),
        );
        assert!(
            matches!(verdict, Verdict::Allow { slot: Some(_), .. }),
            "call {i}: {verdict:?}"
        );
    }
    // The first call (at 0 s) leaves the window at 60 s; at 36.5 s that is 23.5 s away.
    let at = start + Duration::from_millis(36_500);
    match verdict(&policy, "send_message", &limiter, at) {
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
    match verdict(&policy, "send_message", &limiter, at) {
        Verdict::RateLimited { message, .. } => assert_eq!(
            message,
            "Rate limit for telegram.send_message: 10 calls per 60 s; retry after 23 s"
        ),
        other => panic!("expected a rate limit, got {other:?}"),
    }
}

#[test]
fn an_approval_rule_is_handed_to_the_proxy() {
    let verdict = verdict(
        &telegram(),
        "export_session",
        &RateLimiter::new(),
        Instant::now(),
    );
    match verdict {
        Verdict::RequireApproval { rule, .. } => {
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
    let verdict = verdict(&policy, "get_chats", &RateLimiter::new(), Instant::now());
    match verdict {
        Verdict::RequireApproval { rule, .. } => {
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
