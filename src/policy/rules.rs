//! Conditional rules (Intercept's `rules:` list, and the same list in JSON): a rule applies to
//! some agents, says what may pass (`conditions`, all ANDed) and what happens otherwise (deny, or
//! park for a human), and may keep a counter (`state`) that is reserved before forwarding.
//!
//! Evaluation is pure: the caller reads the counters the conditions mention beforehand
//! ([`CounterValues`]) and reserves the increments afterwards; see `evaluate.rs` for the order.

use std::collections::HashMap;

use serde_json::Value;

use super::model::ApprovalRule;

/// One rule of a tool's `rules` list (or of `"*"`).
#[derive(Debug, Clone)]
pub struct CondRule {
    pub(super) name: String,
    pub(super) action: RuleAction,
    pub(super) conditions: Vec<Condition>,
    /// What the agent is told when this rule denies (`on_deny`).
    pub(super) on_deny: Option<String>,
    pub(super) state: Option<CounterSpec>,
    /// Agent-name globs this rule is for; empty means every agent.
    pub(super) agents: Vec<String>,
    pub(super) mode: Mode,
}

/// What a rule does with a call whose conditions do not all hold.
#[derive(Debug, Clone)]
pub enum RuleAction {
    /// Deny it (Intercept's `evaluate`).
    Evaluate,
    /// Deny every call (no conditions).
    Deny,
    /// Park it for a human; without conditions, park every call.
    RequireApproval(ApprovalRule),
}

/// Whether a verdict is enforced or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Record what would have happened and let the call pass (shadow mode).
    Audit,
}

/// `path op value`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub(super) path: ValuePath,
    pub(super) op: Op,
    /// The path as written, for messages (`args.amount`).
    pub(super) written: String,
}

/// Where a condition reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuePath {
    /// `args.a.b`: the call's arguments, one key per step.
    Args(Vec<String>),
    /// `state.<scope>.<counter>`: a counter of this agent's (`_global` for `"*"` rules).
    State(CounterKey),
}

/// A counter: its scope (a tool name, or `_global`) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub scope: String,
    pub counter: String,
}

/// A condition's operator with its value, checked at load time.
#[derive(Debug, Clone)]
pub enum Op {
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    Regex(regex::Regex),
    Contains(Value),
    Exists(bool),
}

/// A rule's `state` block.
#[derive(Debug, Clone)]
pub struct CounterSpec {
    pub(super) key: CounterKey,
    pub(super) window: Window,
    pub(super) increment: i64,
    /// `increment_from: args.amount`: the argument's value is the increment instead.
    pub(super) increment_from: Option<Vec<String>>,
    /// Why a call over the limit is refused: the rule's `on_deny`, `5 calls per hour` for the
    /// `rate_limit` shorthand, or a sentence naming the counter.
    pub(super) refusal: String,
}

/// A calendar-aligned UTC window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Minute,
    Hour,
    Day,
}

impl Window {
    pub fn seconds(self) -> i64 {
        match self {
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
        }
    }

    /// The start of the window holding `unix_seconds` (UTC, so days start at midnight UTC).
    pub fn start(self, unix_seconds: i64) -> i64 {
        unix_seconds - unix_seconds.rem_euclid(self.seconds())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
}

/// The current values of the counters a call's conditions read (absent: zero).
#[derive(Debug, Default, Clone)]
pub struct CounterValues(pub HashMap<CounterKey, i64>);

impl CounterValues {
    fn get(&self, key: &CounterKey) -> i64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

impl CondRule {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn action(&self) -> &RuleAction {
        &self.action
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    pub fn agents(&self) -> &[String] {
        &self.agents
    }

    pub fn state(&self) -> Option<&CounterSpec> {
        self.state.as_ref()
    }

    /// Whether the rule is for `agent` (no `agents` list: for everyone).
    pub fn applies_to(&self, agent: &str) -> bool {
        self.agents.is_empty()
            || self
                .agents
                .iter()
                .any(|glob| super::methods::glob_match(glob, agent))
    }

    /// The first condition that does not hold for these arguments and counters.
    pub fn failing(&self, args: &Value, counters: &CounterValues) -> Option<&Condition> {
        self.conditions
            .iter()
            .find(|condition| !condition.holds(args, counters))
    }

    /// The most this rule's counter may reach, from a `lt`/`lte` condition on the counter itself
    /// (Intercept's reading: `lte 5` allows 5, `lt 5` allows 4). `None`: counted, never limited.
    pub fn counter_limit(&self) -> Option<i64> {
        let key = &self.state.as_ref()?.key;
        self.conditions
            .iter()
            .find_map(|condition| match (&condition.path, &condition.op) {
                (ValuePath::State(k), Op::Lte(v)) if k == key => Some(*v as i64),
                (ValuePath::State(k), Op::Lt(v)) if k == key => Some(*v as i64 - 1),
                _ => None,
            })
    }

    /// The counters this rule's conditions read.
    pub fn reads(&self) -> impl Iterator<Item = &CounterKey> {
        self.conditions.iter().filter_map(|c| match &c.path {
            ValuePath::State(key) => Some(key),
            ValuePath::Args(_) => None,
        })
    }
}

impl CounterSpec {
    pub fn key(&self) -> &CounterKey {
        &self.key
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// How much a call adds: `increment`, or the argument `increment_from` names (a whole
    /// number; a fraction is truncated as Intercept does). `Err` names what is wrong with it.
    pub fn increment_for(&self, args: &Value) -> Result<i64, String> {
        let Some(path) = &self.increment_from else {
            return Ok(self.increment);
        };
        let written = format!("args.{}", path.join("."));
        match resolve(args, path) {
            None => Err(format!("{written} is missing, and the counter adds it")),
            Some(value) => number(value)
                .map(|n| n as i64)
                .ok_or_else(|| format!("{written} is not a number, and the counter adds it")),
        }
    }
}

impl Condition {
    /// The path as written (`args.amount`).
    pub fn path(&self) -> &str {
        &self.written
    }

    /// `args.amount lte 50000`, for reviewers and `policy test`.
    pub fn describe(&self) -> String {
        let (op, value) = match &self.op {
            Op::Eq(v) => ("eq", v.to_string()),
            Op::Neq(v) => ("neq", v.to_string()),
            Op::In(v) => ("in", Value::Array(v.clone()).to_string()),
            Op::NotIn(v) => ("not_in", Value::Array(v.clone()).to_string()),
            Op::Lt(v) => ("lt", v.to_string()),
            Op::Lte(v) => ("lte", v.to_string()),
            Op::Gt(v) => ("gt", v.to_string()),
            Op::Gte(v) => ("gte", v.to_string()),
            Op::Regex(r) => ("regex", Value::String(r.as_str().to_owned()).to_string()),
            Op::Contains(v) => ("contains", v.to_string()),
            Op::Exists(v) => ("exists", v.to_string()),
        };
        format!("{} {op} {value}", self.written)
    }

    /// Whether the condition holds (Intercept's semantics: a missing value fails every operator
    /// but `exists: false`; numbers compare as numbers, everything else as its text).
    pub fn holds(&self, args: &Value, counters: &CounterValues) -> bool {
        let counted;
        let found = match &self.path {
            ValuePath::Args(path) => resolve(args, path).filter(|v| !v.is_null()),
            ValuePath::State(key) => {
                counted = Value::from(counters.get(key));
                Some(&counted)
            }
        };
        if let Op::Exists(expected) = self.op {
            return found.is_some() == expected;
        }
        let Some(actual) = found else {
            return false;
        };
        match &self.op {
            Op::Eq(v) => equal(actual, v),
            Op::Neq(v) => !equal(actual, v),
            Op::In(list) => list.iter().any(|v| equal(actual, v)),
            Op::NotIn(list) => !list.iter().any(|v| equal(actual, v)),
            Op::Lt(v) => number(actual).is_some_and(|a| a < *v),
            Op::Lte(v) => number(actual).is_some_and(|a| a <= *v),
            Op::Gt(v) => number(actual).is_some_and(|a| a > *v),
            Op::Gte(v) => number(actual).is_some_and(|a| a >= *v),
            Op::Regex(re) => actual.as_str().is_some_and(|s| re.is_match(s)),
            Op::Contains(v) => match actual {
                Value::String(s) => v.as_str().is_some_and(|needle| s.contains(needle)),
                Value::Array(items) => items.iter().any(|item| equal(item, v)),
                _ => false,
            },
            Op::Exists(_) => true,
        }
    }
}

/// The value at `path` in the arguments, one object key per step.
fn resolve<'a>(args: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(args, |at, key| at.as_object()?.get(key))
}

/// A number, or a string that reads as one (Intercept coerces both sides).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// Equal as numbers when both read as numbers, else as text.
fn equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => text(a) == text(b),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
