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

use serde_json::Value;

use super::model::{ApprovalRule, DefaultAction, Policy, RateLimit, RateScope, Rule, ToolEntry};
use super::rate_limit::{RateLimiter, Slot};
use super::risk::{Assessment, Risk};
use super::rules::{CondRule, CounterKey, CounterValues, Mode, RuleAction, Window};

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
    /// The call's `arguments` (an object, or `null` when it has none).
    pub args: &'a Value,
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

/// What else a verdict depends on besides the policy and the call.
pub struct Judge<'a> {
    pub limiter: &'a RateLimiter,
    pub now: Instant,
    /// The same moment as Unix seconds, for the calendar windows of counters.
    pub unix_now: i64,
    /// The current values of the counters the call's conditions read ([`Policy::counters_read`]).
    pub counters: &'a CounterValues,
    /// What the tool's definition says about its risk.
    pub risk: &'a Assessment,
    pub sensitive: Sensitivity,
}

/// `[policy] sensitive`: which risky tools are parked although their rule allows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sensitivity {
    pub credential: bool,
    pub destructive: bool,
}

impl Sensitivity {
    /// What `[policy]` asks for.
    pub fn of(config: &crate::config::PolicyConfig) -> Self {
        let on = config.sensitive == crate::config::SensitiveSetting::RequireApproval;
        Self {
            credential: on,
            destructive: on && config.sensitive_destructive,
        }
    }

    /// Whether a tool with `risk` is parked when its rule merely allows it.
    pub fn parks(self, risk: Risk) -> bool {
        match risk {
            Risk::Credential => self.credential,
            Risk::Destructive => self.destructive,
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
    /// with [`Slot::release`] if the upstream call fails. `reserve` are the counter increments to
    /// take before forwarding (and give back if the upstream answers with an error).
    Allow {
        slot: Option<Slot>,
        reserve: Vec<Reservation>,
        /// For the audit log: `allowed by its rule`, `allowed by the policy's default`.
        why: String,
        /// What rules in `mode: audit` would have done (`would have been denied: ...`).
        shadow: Vec<String>,
    },
    /// Do not forward; answer with `message` as an `isError` result.
    Deny { message: String },
    /// Do not forward; answer with `message`. `retry_after` is whole seconds (at least one), the
    /// same number the message states, so a client that waits it out gets through.
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// Park the call for a human decision under this rule (its reason says why).
    RequireApproval {
        rule: ApprovalRule,
        shadow: Vec<String>,
    },
}

/// One counter increment a call takes before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub key: CounterKey,
    pub window: Window,
    /// The start of the window it counts in (Unix seconds).
    pub window_start: i64,
    pub amount: i64,
    /// The most the counter may reach with this increment; `None` counts without a limit.
    pub limit: Option<i64>,
    /// What the agent reads when the limit is reached.
    pub refusal: String,
}

/// The fallback when a deny rule gives no `reason`.
pub(super) const DENIED_WITHOUT_REASON: &str = "not allowed for agents";
/// The reason given for a tool that a `default: deny` policy does not list.
pub(super) const NOT_LISTED: &str = "not listed in the policy (default: deny)";
/// The reason given for a hidden tool.
pub(super) const HIDDEN: &str = "hidden by the policy";

/// What the rules said so far, enforced or only recorded.
#[derive(Default)]
struct Tally {
    deny: Option<String>,
    park: Option<ApprovalRule>,
    shadow: Vec<String>,
}

impl Tally {
    fn deny(&mut self, mode: Mode, reason: String) {
        match mode {
            Mode::Audit => self
                .shadow
                .push(format!("would have been denied: {reason}")),
            Mode::Enforce => {
                self.deny.get_or_insert(reason);
            }
        }
    }

    fn park(&mut self, mode: Mode, rule: ApprovalRule) {
        match mode {
            Mode::Audit => self.shadow.push(format!(
                "would have been parked: {}",
                rule.reason().unwrap_or("approval required")
            )),
            Mode::Enforce => {
                self.park = Some(match self.park.take() {
                    Some(parked) => parked.combine(rule),
                    None => rule,
                });
            }
        }
    }
}

impl Policy {
    /// The tool's own rule, or the default for tools not listed.
    pub fn rule_for(&self, tool: &str) -> ResolvedRule<'_> {
        match self.tools.get(tool) {
            Some(entry) => ResolvedRule {
                rule: &entry.rule,
                listed: true,
            },
            None => ResolvedRule {
                rule: &self.default_rule,
                listed: false,
            },
        }
    }

    /// The tool's entry when it speaks for `agent` (see [`ToolEntry::listed_for`]).
    pub fn entry_for(&self, tool: &str, agent: &str) -> Option<&ToolEntry> {
        self.tools.get(tool).filter(|entry| entry.listed_for(agent))
    }

    /// The conditional rules that apply to `agent`'s calls of `tool`, tool's own first, then
    /// `"*"`'s (which do not apply to a tool a `default: deny` policy does not list), with the
    /// mode each is enforced in.
    pub fn rules_for<'a>(&'a self, tool: &str, agent: &'a str) -> Vec<(&'a CondRule, Mode)> {
        let entry = self.entry_for(tool, agent);
        let own = entry
            .map(|entry| entry.rules.as_slice())
            .unwrap_or_default();
        let wildcard: &[CondRule] = if entry.is_none() && self.default == DefaultAction::Deny {
            &[]
        } else {
            &self.wildcard
        };
        own.iter()
            .chain(wildcard)
            .filter(|rule| rule.applies_to(agent))
            .map(|rule| {
                let mode = if self.mode == Mode::Audit {
                    Mode::Audit
                } else {
                    rule.mode
                };
                (rule, mode)
            })
            .collect()
    }

    /// Whether some call of `tool` may wait for a human: its rule or one of its (or `"*"`'s)
    /// rules can park it, or `[policy] sensitive` parks it for its `risk`.
    pub fn may_park(&self, tool: &str, risk: &Assessment, sensitive: Sensitivity) -> bool {
        let entry = self.tools.get(tool);
        let rule = entry.map_or(&self.default_rule, |entry| &entry.rule);
        let rules_park = entry
            .iter()
            .flat_map(|entry| entry.rules.iter())
            .chain(&self.wildcard)
            .any(|rule| matches!(rule.action(), RuleAction::RequireApproval(_)));
        matches!(rule, Rule::RequireApproval(_))
            || rules_park
            || self.sensitive_risk(tool, risk, sensitive).is_some()
    }

    /// The risk for which `[policy] sensitive` parks calls of `tool` that its rule allows (not
    /// one whose entry accepts the risk), if any.
    pub fn sensitive_risk(
        &self,
        tool: &str,
        risk: &Assessment,
        sensitive: Sensitivity,
    ) -> Option<Risk> {
        if !matches!(self.rule_for(tool).rule, Rule::Allow { .. })
            || self.tools.get(tool).is_some_and(ToolEntry::accept_risk)
        {
            return None;
        }
        risk.risk().filter(|risk| sensitive.parks(*risk))
    }

    /// The counters the conditions of `agent`'s calls of `tool` read, to fetch before
    /// [`Policy::evaluate`].
    pub fn counters_read(&self, tool: &str, agent: &str) -> Vec<CounterKey> {
        let mut keys: Vec<CounterKey> = Vec::new();
        for (rule, _) in self.rules_for(tool, agent) {
            for key in rule.reads() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        keys
    }

    /// The window each counter of this policy counts in.
    pub fn counter_window(&self, key: &CounterKey) -> Option<Window> {
        self.tools
            .values()
            .flat_map(|entry| entry.rules.iter())
            .chain(&self.wildcard)
            .filter_map(CondRule::state)
            .find(|spec| spec.key() == key)
            .map(super::rules::CounterSpec::window)
    }

    /// Judges a call: hide, then (under `default: deny`) whether it is listed, then its rule,
    /// its conditional rules and the `"*"` rules (deny beats park beats allow), then
    /// `[policy] sensitive`, then its rate limit and counters.
    /// Why `call` is refused whatever its arguments, counters and limits say: its tool hidden,
    /// its rule a deny, or a deny rule without conditions for it (its own or `"*"`'s), the
    /// policy enforcing. A multi-round-trip retry that continues a call Airlock let through is
    /// judged by this alone (see `mcp::continuations`): its arguments passed the conditions
    /// once, and its limits and counters were charged then.
    pub fn refuses_outright(&self, call: &CallSite<'_>) -> Option<String> {
        let name = RuleName(call);
        if self.hides(call.tool) {
            return Some(format!("Denied by policy ({name}): {HIDDEN}"));
        }
        let entry = self.entry_for(call.tool, call.agent);
        let mut tally = Tally::default();
        if let Rule::Deny { reason } = entry.map_or(&self.default_rule, |entry| &entry.rule) {
            tally.deny(self.mode, deny_reason(entry, reason.as_ref()).to_owned());
        }
        for (rule, mode) in self.rules_for(call.tool, call.agent) {
            if matches!(rule.action(), RuleAction::Deny) {
                judge_rule(rule, mode, call.args, &CounterValues::default(), &mut tally);
            }
        }
        tally
            .deny
            .map(|reason| format!("Denied by policy ({name}): {reason}"))
    }

    pub fn evaluate(&self, call: &CallSite<'_>, judge: &Judge<'_>) -> Verdict {
        let name = RuleName(call);
        let denied = |reason: &str| Verdict::Deny {
            message: format!("Denied by policy ({name}): {reason}"),
        };
        if self.hides(call.tool) {
            return denied(HIDDEN);
        }
        let entry = self.entry_for(call.tool, call.agent);
        let mut tally = Tally::default();
        let rule = entry.map_or(&self.default_rule, |entry| &entry.rule);
        let mut rate_limit = None;
        match rule {
            Rule::Allow { rate_limit: limit } => rate_limit = *limit,
            Rule::Deny { reason } => {
                tally.deny(self.mode, deny_reason(entry, reason.as_ref()).to_owned());
            }
            Rule::RequireApproval(approval) => tally.park(self.mode, approval.clone()),
        }
        let rules = self.rules_for(call.tool, call.agent);
        for (rule, mode) in &rules {
            judge_rule(rule, *mode, call.args, judge.counters, &mut tally);
        }
        let shadow = std::mem::take(&mut tally.shadow);
        if let Some(reason) = tally.deny {
            return denied(&reason);
        }
        if let Some(rule) = tally.park {
            return Verdict::RequireApproval { rule, shadow };
        }
        if let Some(rule) = self.sensitive_park(entry, judge) {
            return Verdict::RequireApproval { rule, shadow };
        }
        let mut reserve = Vec::new();
        for (rule, mode) in &rules {
            match reservation(rule, *mode, call.args, judge.unix_now) {
                Ok(Some(taken)) => reserve.push(taken),
                Ok(None) => {}
                Err(why) => return denied(&why),
            }
        }
        let why = match (entry.is_some(), shadow.is_empty()) {
            (_, false) => "allowed (the policy or a rule is in audit mode)",
            (true, true) => "allowed by its rule",
            (false, true) => "allowed by the policy's default",
        }
        .to_owned();
        let allowed = Verdict::Allow {
            slot: None,
            reserve,
            why,
            shadow,
        };
        match rate_limit {
            None => allowed,
            Some(limit) => self.within(limit, call, judge, allowed),
        }
    }

    /// `allowed` with its slot of the tool's rate limit taken, or the refusal (in audit mode,
    /// recorded and allowed anyway).
    fn within(
        &self,
        limit: RateLimit,
        call: &CallSite<'_>,
        judge: &Judge<'_>,
        allowed: Verdict,
    ) -> Verdict {
        let Verdict::Allow {
            reserve,
            why,
            mut shadow,
            ..
        } = allowed
        else {
            return allowed;
        };
        let counted = super::Counted {
            key: &call.rate_key(&limit),
            upstream: call.upstream,
            tool: call.tool,
        };
        let slot = match judge.limiter.try_acquire(&counted, limit, judge.now) {
            Ok(slot) => Some(slot),
            Err(wait) => {
                let (message, retry_after) = rate_limited(&RuleName(call).to_string(), limit, wait);
                if self.mode != Mode::Audit {
                    return Verdict::RateLimited {
                        message,
                        retry_after,
                    };
                }
                shadow.push(format!("would have been rate-limited: {message}"));
                None
            }
        };
        Verdict::Allow {
            slot,
            reserve,
            why,
            shadow,
        }
    }

    /// The approval `[policy] sensitive` asks for a risky tool that its rules let through, unless
    /// its entry accepts the risk.
    fn sensitive_park(&self, entry: Option<&ToolEntry>, judge: &Judge<'_>) -> Option<ApprovalRule> {
        if entry.is_some_and(ToolEntry::accept_risk) {
            return None;
        }
        let risk = judge
            .risk
            .risk()
            .filter(|risk| judge.sensitive.parks(*risk))?;
        let why = judge.risk.explain(risk)?;
        let by = if entry.is_some() {
            "its rule"
        } else {
            "the policy's default"
        };
        Some(ApprovalRule::stock(Some(format!(
            "{why}; allowed by {by}, parked by [policy] sensitive"
        ))))
    }
}

/// What one conditional rule says about a call.
fn judge_rule(
    rule: &CondRule,
    mode: Mode,
    args: &Value,
    counters: &CounterValues,
    tally: &mut Tally,
) {
    let because = |failing: Option<&super::rules::Condition>| match failing {
        Some(condition) => format!(
            "rule {:?}: {} does not hold",
            rule.name(),
            condition.describe()
        ),
        None => format!("rule {:?}", rule.name()),
    };
    match rule.action() {
        RuleAction::Deny => {
            let reason = rule.on_deny.clone().unwrap_or_else(|| because(None));
            tally.deny(mode, reason);
        }
        RuleAction::Evaluate => {
            if let Some(failing) = rule.failing(args, counters) {
                let reason = rule
                    .on_deny
                    .clone()
                    .unwrap_or_else(|| because(Some(failing)));
                tally.deny(mode, reason);
            }
        }
        RuleAction::RequireApproval(approval) => {
            let failing = rule.failing(args, counters);
            if rule.conditions().is_empty() || failing.is_some() {
                tally.park(mode, approval.clone().because(because(failing)));
            }
        }
    }
}

/// The counter increment `rule` takes for a call at `unix_now`; `Err` when the increment cannot
/// be read from the arguments. A rule in audit mode counts without a limit.
fn reservation(
    rule: &CondRule,
    mode: Mode,
    args: &Value,
    unix_now: i64,
) -> Result<Option<Reservation>, String> {
    let Some(spec) = rule.state() else {
        return Ok(None);
    };
    let amount = spec
        .increment_for(args)
        .map_err(|why| format!("rule {:?}: {why}", rule.name()))?;
    let limit = match mode {
        Mode::Enforce => rule.counter_limit(),
        Mode::Audit => None,
    };
    let refusal = spec.refusal.clone();
    Ok(Some(Reservation {
        key: spec.key().clone(),
        window: spec.window(),
        window_start: spec.window().start(unix_now),
        amount,
        limit,
        refusal,
    }))
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

/// The reason a deny rule gives: its own, the unlisted text for a tool the policy does not list,
/// or the plain one.
fn deny_reason<'a>(entry: Option<&ToolEntry>, reason: Option<&'a String>) -> &'a str {
    match (entry.is_some(), reason) {
        (false, _) => NOT_LISTED,
        (true, Some(reason)) => reason.as_str(),
        (true, None) => DENIED_WITHOUT_REASON,
    }
}

#[cfg(test)]
mod rules_tests;
#[cfg(test)]
mod tests;
