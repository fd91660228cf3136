//! Conditional rules, counters, `hide`, `"*"`, agents, audit mode and `[policy] sensitive`, on
//! Intercept-format fixtures written from its POLICY.md.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::policy::risk::classify;

/// POLICY.md's Stripe example, plus Airlock's conditional approval and per-agent rules.
const STRIPE: &str = r#"
version: "1"
description: "Stripe MCP server policies"
hide:
  - delete_account
tools:
  create_charge:
    rules:
      - name: "max single charge"
        conditions:
          - path: "args.amount"
            op: "lte"
            value: 50000
        on_deny: "Single charge cannot exceed $500.00"
      - name: "daily spend cap"
        conditions:
          - path: "state.create_charge.daily_spend"
            op: "lte"
            value: 100000
        on_deny: "Daily spending cap of $1,000.00 reached"
        state:
          counter: "daily_spend"
          window: "day"
          increment_from: "args.amount"
      - name: "allowed currencies"
        conditions:
          - path: "args.currency"
            op: "in"
            value: ["usd", "eur"]
  create_payout:
    rules:
      - name: "big payouts need two"
        action: require_approval
        approvals: 2
        reviewers: ["finance"]
        conditions:
          - path: "args.amount"
            op: "lte"
            value: 50000
  deploy:
    rules:
      - name: "ci deploys"
        agents: ["ci-*"]
        conditions:
          - path: "args.env"
            op: "neq"
            value: "prod"
  delete_customer:
    rules:
      - name: "block destructive action"
        action: "deny"
        on_deny: "Customer deletion is not permitted via AI agents"
  "*":
    rules:
      - name: "global rate limit"
        rate_limit: 3/minute
"#;

fn stripe(default: &str) -> Policy {
    let text = STRIPE.replace(
        "version: \"1\"",
        &format!("version: \"1\"\ndefault: {default}"),
    );
    Policy::parse(Path::new("stripe.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

struct Case<'a> {
    tool: &'a str,
    agent: &'a str,
    args: Value,
    counters: CounterValues,
    risk: Assessment,
    sensitive: Sensitivity,
}

impl<'a> Case<'a> {
    fn new(tool: &'a str, args: Value) -> Self {
        Self {
            tool,
            agent: "claude",
            args,
            counters: CounterValues::default(),
            risk: Assessment::default(),
            sensitive: Sensitivity {
                credential: true,
                destructive: false,
            },
        }
    }

    fn judge(&self, policy: &Policy) -> Verdict {
        let call = CallSite {
            upstream: "stripe",
            tool: self.tool,
            agent: self.agent,
            session: "s",
            args: &self.args,
        };
        let judge = Judge {
            limiter: &RateLimiter::new(),
            now: Instant::now(),
            unix_now: 1_700_000_000,
            counters: &self.counters,
            risk: &self.risk,
            sensitive: self.sensitive,
        };
        policy.evaluate(&call, &judge)
    }
}

fn denied(verdict: Verdict) -> String {
    match verdict {
        Verdict::Deny { message } => message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn allowed(verdict: Verdict) -> Vec<Reservation> {
    match verdict {
        Verdict::Allow { reserve, .. } => reserve,
        other => panic!("expected the call to pass, got {other:?}"),
    }
}

fn parked(verdict: Verdict) -> ApprovalRule {
    match verdict {
        Verdict::RequireApproval { rule, .. } => rule,
        other => panic!("expected the call to park, got {other:?}"),
    }
}

#[test]
fn conditions_say_what_may_pass_and_on_deny_is_the_reason() {
    let policy = stripe("allow");
    let small = json!({"amount": 5000, "currency": "usd"});
    let reserved = allowed(Case::new("create_charge", small).judge(&policy));
    // The tool's own counter first, then "*"'s, each in its calendar window.
    assert_eq!(reserved.len(), 2, "{reserved:?}");
    assert_eq!(reserved[0].key.counter, "daily_spend");
    assert_eq!(reserved[0].amount, 5000, "increment_from args.amount");
    assert_eq!(reserved[0].limit, Some(100_000));
    assert_eq!(
        reserved[0].window_start,
        1_700_000_000 - 1_700_000_000 % 86_400
    );
    assert_eq!(reserved[1].key.scope, "_global");
    assert_eq!(reserved[1].key.counter, "_rate_minute");
    assert_eq!(reserved[1].limit, Some(3));
    assert_eq!(reserved[1].refusal, "3 calls per minute");

    let big = json!({"amount": 60000, "currency": "usd"});
    assert_eq!(
        denied(Case::new("create_charge", big).judge(&policy)),
        "Denied by policy (stripe.create_charge): Single charge cannot exceed $500.00"
    );
    let yen = json!({"amount": 100, "currency": "jpy"});
    assert_eq!(
        denied(Case::new("create_charge", yen).judge(&policy)),
        "Denied by policy (stripe.create_charge): rule \"allowed currencies\": \
         args.currency in [\"usd\",\"eur\"] does not hold"
    );
    let missing = json!({"currency": "usd"});
    assert!(
        denied(Case::new("create_charge", missing).judge(&policy)).contains("cannot exceed"),
        "a missing argument fails its condition"
    );
}

#[test]
fn a_counter_condition_reads_the_counter_and_a_missing_increment_refuses() {
    let policy = stripe("allow");
    let mut case = Case::new("create_charge", json!({"amount": 5000, "currency": "eur"}));
    case.counters.0.insert(
        CounterKey {
            scope: "create_charge".to_owned(),
            counter: "daily_spend".to_owned(),
        },
        100_001,
    );
    assert_eq!(
        denied(case.judge(&policy)),
        "Denied by policy (stripe.create_charge): Daily spending cap of $1,000.00 reached"
    );
    assert_eq!(
        policy.counters_read("create_charge", "claude"),
        [
            CounterKey {
                scope: "create_charge".to_owned(),
                counter: "daily_spend".to_owned()
            },
            CounterKey {
                scope: "_global".to_owned(),
                counter: "_rate_minute".to_owned()
            }
        ]
    );
}

#[test]
fn deny_rules_hide_and_the_wildcard_after_tool_rules() {
    let policy = stripe("allow");
    assert_eq!(
        denied(Case::new("delete_customer", json!({})).judge(&policy)),
        "Denied by policy (stripe.delete_customer): Customer deletion is not permitted via AI agents"
    );
    assert!(policy.hides("delete_account"));
    assert_eq!(
        denied(Case::new("delete_account", json!({})).judge(&policy)),
        "Denied by policy (stripe.delete_account): hidden by the policy"
    );
    // An unlisted tool under default allow still meets "*"'s rules ...
    let reserved = allowed(Case::new("list_products", json!({})).judge(&policy));
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].key.scope, "_global");
    // ... but under default deny it is refused before any rule.
    let strict = stripe("deny");
    assert_eq!(
        denied(Case::new("list_products", json!({})).judge(&strict)),
        "Denied by policy (stripe.list_products): not listed in the policy (default: deny)"
    );
}

#[test]
fn a_require_approval_rule_parks_when_its_conditions_fail() {
    let policy = stripe("allow");
    allowed(Case::new("create_payout", json!({"amount": 100})).judge(&policy));
    let rule = parked(Case::new("create_payout", json!({"amount": 90000})).judge(&policy));
    assert_eq!(rule.approvals(), 2);
    assert_eq!(rule.reviewers(), ["finance"]);
    assert_eq!(
        rule.reason(),
        Some("rule \"big payouts need two\": args.amount lte 50000 does not hold")
    );
}

#[test]
fn parking_rules_combine_and_deny_beats_park() {
    let text = r#"
version: "1"
tools:
  wire:
    rules:
      - name: "a"
        action: require_approval
        approvals: 1
        timeout: 900
        reviewers: ["alice@example.org", "bob@example.org"]
      - name: "b"
        action: require_approval
        approvals: 2
        timeout: 300
        reviewers: ["bob@example.org", "carol@example.org"]
        notify: ["ops@example.org"]
  wire_all:
    rules:
      - name: "park"
        action: require_approval
      - name: "but never"
        action: deny
"#;
    let policy = Policy::parse(Path::new("p.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    let rule = parked(Case::new("wire", json!({})).judge(&policy));
    assert_eq!(rule.approvals(), 2);
    assert_eq!(rule.timeout(), Duration::from_secs(300));
    assert_eq!(rule.reviewers(), ["bob@example.org"]);
    assert_eq!(rule.notify(), ["ops@example.org"]);
    assert!(denied(Case::new("wire_all", json!({})).judge(&policy)).contains("rule \"but never\""));
}

#[test]
fn rules_for_other_agents_are_skipped_and_the_default_applies() {
    for default in ["allow", "deny"] {
        let policy = stripe(default);
        let mut ci = Case::new("deploy", json!({"env": "prod"}));
        ci.agent = "ci-bot";
        assert!(denied(ci.judge(&policy)).contains("args.env neq \"prod\""));
        let mut staging = Case::new("deploy", json!({"env": "staging"}));
        staging.agent = "ci-bot";
        allowed(staging.judge(&policy));
        // claude is not `ci-*`: the tool is as if unlisted for it.
        let claude = Case::new("deploy", json!({"env": "prod"}));
        match default {
            "allow" => {
                allowed(claude.judge(&policy));
            }
            _ => assert!(denied(claude.judge(&policy)).contains("not listed")),
        }
    }
}

#[test]
fn audit_mode_records_what_would_have_happened_and_lets_the_call_pass() {
    let text = STRIPE.replace("version: \"1\"", "version: \"1\"\nmode: audit");
    let policy = Policy::parse(Path::new("p.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    match Case::new("delete_customer", json!({})).judge(&policy) {
        Verdict::Allow { shadow, why, .. } => {
            assert_eq!(
                shadow,
                ["would have been denied: Customer deletion is not permitted via AI agents"]
            );
            assert!(why.contains("audit mode"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // hide still holds in audit mode.
    assert!(denied(Case::new("delete_account", json!({})).judge(&policy)).contains("hidden"));
    // A rule alone can be in audit mode.
    let one = STRIPE.replace(
        "        action: \"deny\"\n",
        "        action: \"deny\"\n        mode: audit\n",
    );
    let policy = Policy::parse(Path::new("p.yaml"), &one).unwrap_or_else(|e| panic!("{e}"));
    allowed(Case::new("delete_customer", json!({})).judge(&policy));
    assert!(
        denied(Case::new("create_charge", json!({"amount": 1e9})).judge(&policy))
            .contains("exceed")
    );
}

#[test]
fn sensitive_parks_a_credential_tool_its_rule_allows_unless_the_risk_is_accepted() {
    let seed = r#"{"version":"1","default":"deny","tools":{"export_session":{}}}"#;
    let policy = Policy::parse(Path::new("p.json"), seed).unwrap_or_else(|e| panic!("{e}"));
    let mut case = Case::new("export_session", json!({"account":"main"}));
    case.risk = classify(&json!({
        "name": "export_session",
        "description": "Export the Session string of an account"
    }));
    let rule = parked(case.judge(&policy));
    assert_eq!(rule.approvals(), 1);
    assert_eq!(
        rule.reason(),
        Some(
            "looks credential-exporting: name `export_session`, description 'Export the \
             Session string of an account'; allowed by its rule, parked by [policy] sensitive"
        )
    );
    let accepted =
        r#"{"version":"1","default":"deny","tools":{"export_session":{"accept_risk":true}}}"#;
    let policy = Policy::parse(Path::new("p.json"), accepted).unwrap_or_else(|e| panic!("{e}"));
    allowed(case.judge(&policy));
}

#[test]
fn every_operator_means_what_intercept_says() {
    let cases: &[(&str, Value, Value, bool)] = &[
        ("eq", json!("main"), json!("main"), true),
        ("eq", json!(5), json!("5"), true),
        ("eq", json!("main"), json!("dev"), false),
        ("neq", json!("draft"), json!("main"), true),
        ("in", json!(["usd", "eur"]), json!("eur"), true),
        ("in", json!(["usd", "eur"]), json!("jpy"), false),
        ("not_in", json!(["admin"]), json!("user"), true),
        ("not_in", json!(["admin"]), json!("admin"), false),
        ("lt", json!(100), json!(99), true),
        ("lt", json!(100), json!(100), false),
        ("lte", json!(100), json!(100), true),
        ("gt", json!(0), json!(1), true),
        ("gt", json!(0), json!("x"), false),
        ("gte", json!(1), json!(1), true),
        ("regex", json!("^feat/"), json!("feat/x"), true),
        ("regex", json!("^feat/"), json!("fix/x"), false),
        ("contains", json!("test"), json!("a test run"), true),
        ("contains", json!("b"), json!(["a", "b"]), true),
        ("contains", json!("z"), json!(["a", "b"]), false),
        ("exists", json!(true), json!("anything"), true),
        ("exists", json!(false), json!("anything"), false),
    ];
    for (op, value, actual, holds) in cases {
        let text = format!(
            r#"{{"version":"1","tools":{{"t":{{"rules":[{{"name":"r","conditions":[{{"path":"args.a.b","op":"{op}","value":{value}}}]}}]}}}}}}"#
        );
        let policy = Policy::parse(Path::new("p.json"), &text).unwrap_or_else(|e| panic!("{e}"));
        let verdict = Case::new("t", json!({"a": {"b": actual}})).judge(&policy);
        assert_eq!(
            matches!(verdict, Verdict::Allow { .. }),
            *holds,
            "{op} {value} on {actual}"
        );
    }
    // `exists: false` holds for a missing field, and every other operator fails on one.
    let text = r#"{"version":"1","tools":{"t":{"rules":[{"name":"r","conditions":[{"path":"args.x","op":"exists","value":false}]}]}}}"#;
    let policy = Policy::parse(Path::new("p.json"), text).unwrap_or_else(|e| panic!("{e}"));
    allowed(Case::new("t", json!({})).judge(&policy));
}

#[test]
fn sensitive_destructive_parks_a_destructive_tool_only_when_asked_to() {
    let policy = Policy::parse(Path::new("p.json"), r#"{"version":"1","default":"allow"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut case = Case::new("delete_chat", json!({"chat_id": 1}));
    case.risk = classify(&json!({"name": "delete_chat"}));
    allowed(case.judge(&policy));
    case.sensitive.destructive = true;
    let rule = parked(case.judge(&policy));
    assert_eq!(
        rule.reason(),
        Some(
            "looks destructive: name `delete_chat`; allowed by the policy's default, parked by \
             [policy] sensitive"
        )
    );
}

#[test]
fn a_continued_call_is_refused_only_by_what_refuses_it_outright() {
    let policy = stripe("allow");
    let outright = |tool: &str, args: Value| {
        policy.refuses_outright(&CallSite {
            upstream: "stripe",
            tool,
            agent: "claude",
            session: "s",
            args: &args,
        })
    };
    assert_eq!(
        outright("delete_customer", json!({})).as_deref(),
        Some(
            "Denied by policy (stripe.delete_customer): Customer deletion is not permitted via AI agents"
        )
    );
    assert!(outright("delete_account", json!({})).is_some(), "hidden");
    // Conditions were met when the call was let through; counters and limits were charged then.
    assert_eq!(outright("create_charge", json!({"amount": 90000})), None);
    assert_eq!(outright("refund", json!({})), None);
}
