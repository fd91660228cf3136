//! From written conditional rules to [`CondRule`]s: Intercept's validation (every error its
//! `validate` command knows, with Airlock's key paths and fixes) plus Airlock's additions
//! (`require_approval`, `agents`, `mode`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::Failure;
use super::raw::{Table, Text};
use super::raw_rules::{
    CondAction, OpName, RawCondRule, RawCondition, RawMode, RawState, Shorthand,
};
use crate::policy::model::{ApprovalRule, DEFAULT_APPROVAL_TIMEOUT};
use crate::policy::rules::{
    CondRule, Condition, CounterKey, CounterSpec, Mode, Op, RuleAction, ValuePath,
};

/// The rules of one tool (`scope` is its name, or `_global` for `"*"`), at `at` (`tools.x.rules`).
pub(super) fn convert_rules(
    at: &str,
    scope: &str,
    raw: Vec<Table<RawCondRule>>,
) -> Result<Vec<CondRule>, Failure> {
    let mut rules: Vec<CondRule> = Vec::with_capacity(raw.len());
    for (i, Table(rule)) in raw.into_iter().enumerate() {
        let here = format!("{at}[{i}]");
        let rule = convert_rule(&here, scope, rule)?;
        if let Some(spec) = rule.state()
            && let Some(earlier) = rules
                .iter()
                .position(|r| r.state().is_some_and(|s| s.key() == spec.key()))
        {
            return Err(Failure::at(
                format!("{here}.state.counter"),
                format!(
                    "duplicate state counter {:?} (also used by rules[{earlier}]); use different counter names or windows",
                    spec.key().counter
                ),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Every `state.<scope>.<counter>` a condition reads must be kept by some rule of that scope.
pub(super) fn check_counter_references(
    tools: &BTreeMap<String, Vec<CondRule>>,
) -> Result<(), Failure> {
    for (tool, rules) in tools {
        for (i, rule) in rules.iter().enumerate() {
            for (j, key) in
                rule.conditions()
                    .iter()
                    .enumerate()
                    .filter_map(|(j, c)| match &c.path {
                        ValuePath::State(key) => Some((j, key)),
                        ValuePath::Args(_) => None,
                    })
            {
                let owner = if key.scope == "_global" {
                    "*"
                } else {
                    key.scope.as_str()
                };
                let kept = tools.get(owner).is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|r| r.state().is_some_and(|s| s.key() == key))
                });
                if !kept {
                    return Err(Failure::at(
                        format!("tools.{tool}.rules[{i}].conditions[{j}].path"),
                        format!(
                            "state.{}.{} is kept by no rule; add a \"state\" block with counter {:?} to a rule of {owner:?}",
                            key.scope, key.counter, key.counter
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn convert_rule(at: &str, scope: &str, mut raw: RawCondRule) -> Result<CondRule, Failure> {
    let key = |name: &str| format!("{at}.{name}");
    let name = raw.name.take().map(|Text(name)| name).ok_or_else(|| {
        Failure::at(
            key("name"),
            "missing; every rule needs a \"name\" (it is shown when the rule refuses)".to_owned(),
        )
    })?;
    let action = raw.action.unwrap_or(CondAction::Evaluate);
    if action != CondAction::RequireApproval
        && let Some(which) = approval_key(&raw)
    {
        return Err(Failure::at(
            key(which),
            format!(
                "`{which}` applies only to \"action\": \"require_approval\"; remove it or change the action"
            ),
        ));
    }
    if action == CondAction::RequireApproval && raw.on_deny.is_some() {
        return Err(Failure::at(
            key("on_deny"),
            "a require_approval rule never denies; say why in \"reason\" (shown to reviewers)"
                .to_owned(),
        ));
    }
    let mut conditions = raw
        .conditions
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, Table(c))| convert_condition(&format!("{at}.conditions[{j}]"), c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut state = raw
        .state
        .take()
        .map(|Table(s)| convert_state(&key("state"), scope, s))
        .transpose()?;
    if let Some(shorthand) = raw.rate_limit.take() {
        if !conditions.is_empty() || state.is_some() {
            return Err(Failure::at(
                key("rate_limit"),
                "rate_limit cannot be combined with conditions or state; use separate rules or the full syntax".to_owned(),
            ));
        }
        if action != CondAction::Evaluate {
            return Err(Failure::at(
                key("rate_limit"),
                "rate_limit cannot be used with this action; remove \"action\" (it defaults to evaluate)".to_owned(),
            ));
        }
        let (condition, spec) = expand(scope, &shorthand);
        conditions.push(condition);
        state = Some(spec);
    }
    let on_deny = raw.on_deny.take().map(|Text(text)| text);
    if let (Some(spec), Some(text)) = (&mut state, &on_deny) {
        spec.refusal = text.clone();
    }
    let action = rule_action(at, action, !conditions.is_empty(), &mut raw)?;
    let agents = raw
        .agents
        .unwrap_or_default()
        .into_iter()
        .map(|Text(glob)| glob)
        .collect();
    Ok(CondRule {
        name,
        action,
        conditions,
        on_deny,
        state,
        agents,
        mode: match raw.mode {
            Some(RawMode::Audit) => Mode::Audit,
            Some(RawMode::Enforce) | None => Mode::Enforce,
        },
    })
}

/// The rule's action, checked against whether it has conditions; the approval settings are
/// taken from `raw` for `require_approval`.
fn rule_action(
    at: &str,
    action: CondAction,
    has_conditions: bool,
    raw: &mut RawCondRule,
) -> Result<RuleAction, Failure> {
    let key = |name: &str| format!("{at}.{name}");
    match action {
        CondAction::Deny if has_conditions => Err(Failure::at(
            key("conditions"),
            "deny rules must not have conditions; remove them, or use \"action\": \"evaluate\" to deny only when they fail".to_owned(),
        )),
        CondAction::Deny => Ok(RuleAction::Deny),
        CondAction::Evaluate if !has_conditions => Err(Failure::at(
            key("conditions"),
            "evaluate rules must have at least one condition (or a rate_limit); add one, or use \"action\": \"deny\"".to_owned(),
        )),
        CondAction::Evaluate => Ok(RuleAction::Evaluate),
        CondAction::RequireApproval => Ok(RuleAction::RequireApproval(ApprovalRule {
            approvals: raw.approvals.take().map_or(1, |a| a.0),
            timeout: raw.timeout.take().map_or(DEFAULT_APPROVAL_TIMEOUT, |t| t.0),
            reviewers: super::convert::names(&key("reviewers"), raw.reviewers.take())?,
            notify: super::convert::names(&key("notify"), raw.notify.take())?,
            reason: raw.reason.take().map(|Text(text)| text),
        })),
    }
}

/// The first approval setting a rule has, if any.
fn approval_key(raw: &RawCondRule) -> Option<&'static str> {
    [
        ("approvals", raw.approvals.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("reviewers", raw.reviewers.is_some()),
        ("notify", raw.notify.is_some()),
        ("reason", raw.reason.is_some()),
    ]
    .into_iter()
    .find_map(|(name, set)| set.then_some(name))
}

/// `rate_limit: N/window` as Intercept expands it: a counter `_rate_<window>` in the rule's
/// scope, and the condition that it stays at most N.
fn expand(scope: &str, shorthand: &Shorthand) -> (Condition, CounterSpec) {
    let counter = CounterKey {
        scope: scope.to_owned(),
        counter: format!("_rate_{}", shorthand.window.as_str()),
    };
    let condition = Condition {
        written: format!("state.{}.{}", counter.scope, counter.counter),
        path: ValuePath::State(counter.clone()),
        op: Op::Lte(f64::from(shorthand.count)),
    };
    let calls = if shorthand.count == 1 {
        "call"
    } else {
        "calls"
    };
    let spec = CounterSpec {
        key: counter,
        window: shorthand.window,
        increment: 1,
        increment_from: None,
        refusal: format!(
            "{} {calls} per {}",
            shorthand.count,
            shorthand.window.as_str()
        ),
    };
    (condition, spec)
}

fn convert_condition(at: &str, raw: RawCondition) -> Result<Condition, Failure> {
    let Text(written) = raw.path;
    let path = parse_path(&written).map_err(|why| Failure::at(format!("{at}.path"), why))?;
    let bad = |why: &str| Failure::at(format!("{at}.value"), why.to_owned());
    let list = |value: Value| match value {
        Value::Array(items) => Ok(items),
        _ => Err(bad(
            "this operator needs a list value, e.g. [\"usd\", \"eur\"]",
        )),
    };
    let number = |value: &Value| {
        value
            .as_f64()
            .ok_or_else(|| bad("this operator needs a numeric value"))
    };
    let op = match raw.op {
        OpName::Eq => Op::Eq(raw.value),
        OpName::Neq => Op::Neq(raw.value),
        OpName::In => Op::In(list(raw.value)?),
        OpName::NotIn => Op::NotIn(list(raw.value)?),
        OpName::Lt => Op::Lt(number(&raw.value)?),
        OpName::Lte => Op::Lte(number(&raw.value)?),
        OpName::Gt => Op::Gt(number(&raw.value)?),
        OpName::Gte => Op::Gte(number(&raw.value)?),
        OpName::Contains => Op::Contains(raw.value),
        OpName::Exists => Op::Exists(
            raw.value
                .as_bool()
                .ok_or_else(|| bad("\"exists\" needs true or false"))?,
        ),
        OpName::Regex => {
            let pattern = raw
                .value
                .as_str()
                .ok_or_else(|| bad("a regex value must be a string"))?;
            Op::Regex(
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| bad(&format!("invalid regex {pattern:?}: {e}")))?,
            )
        }
    };
    Ok(Condition { path, op, written })
}

/// `args.a.b` or `state.<scope>.<counter>`.
fn parse_path(written: &str) -> Result<ValuePath, String> {
    if let Some(rest) = written.strip_prefix("args.") {
        let steps: Vec<String> = rest.split('.').map(str::to_owned).collect();
        if steps.iter().any(String::is_empty) {
            return Err(format!(
                "{written:?} has an empty step; write args.field or args.a.b"
            ));
        }
        return Ok(ValuePath::Args(steps));
    }
    if let Some(rest) = written.strip_prefix("state.") {
        return match rest.split_once('.') {
            Some((scope, counter)) if !scope.is_empty() && !counter.is_empty() => {
                Ok(ValuePath::State(CounterKey {
                    scope: scope.to_owned(),
                    counter: counter.to_owned(),
                }))
            }
            _ => Err(format!(
                "{written:?} is not a counter; write state.<tool>.<counter> or state._global.<counter>"
            )),
        };
    }
    Err(format!(
        "path must start with \"args.\" or \"state.\", got {written:?}"
    ))
}

fn convert_state(at: &str, scope: &str, raw: RawState) -> Result<CounterSpec, Failure> {
    let Text(counter) = raw.counter;
    if raw.increment.is_some() && raw.increment_from.is_some() {
        return Err(Failure::at(
            format!("{at}.increment"),
            "give \"increment\" or \"increment_from\", not both".to_owned(),
        ));
    }
    let increment_from = match raw.increment_from {
        None => None,
        Some(Text(path)) => match parse_path(&path) {
            Ok(ValuePath::Args(steps)) => Some(steps),
            _ => {
                return Err(Failure::at(
                    format!("{at}.increment_from"),
                    format!("increment_from must start with \"args.\", got {path:?}"),
                ));
            }
        },
    };
    let window = raw.window.0;
    Ok(CounterSpec {
        refusal: format!(
            "counter {counter} reached its limit for this {}",
            window.as_str()
        ),
        key: CounterKey {
            scope: scope.to_owned(),
            counter,
        },
        window,
        increment: raw.increment.map_or(1, |i| i.0),
        increment_from,
    })
}
