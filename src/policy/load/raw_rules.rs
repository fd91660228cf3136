//! The written form of conditional rules (`rules:` under a tool, Intercept's format, the same in
//! JSON), strict like the rest of the document: unknown keys, `null` and bad shapes are errors.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::Value;

use super::raw::{Approvals, Described, Seconds, Table, Text, present};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondRule {
    #[serde(default, deserialize_with = "present")]
    pub(super) name: Option<Text>,
    #[serde(default, deserialize_with = "present")]
    pub(super) action: Option<CondAction>,
    /// `N/minute|hour|day`: Intercept's shorthand for a counter and its `lte` condition.
    #[serde(default, deserialize_with = "present")]
    pub(super) rate_limit: Option<Shorthand>,
    #[serde(default, deserialize_with = "present")]
    pub(super) conditions: Option<Vec<Table<RawCondition>>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) on_deny: Option<Text>,
    #[serde(default, deserialize_with = "present")]
    pub(super) state: Option<Table<RawState>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) approvals: Option<Approvals>,
    #[serde(default, deserialize_with = "present")]
    pub(super) timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "present")]
    pub(super) reviewers: Option<Vec<Text>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) notify: Option<Vec<Text>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) reason: Option<Text>,
    #[serde(default, deserialize_with = "present")]
    pub(super) agents: Option<Vec<Text>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) mode: Option<RawMode>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub(super) path: Text,
    pub(super) op: OpName,
    pub(super) value: Value,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) counter: Text,
    pub(super) window: WindowName,
    #[serde(default, deserialize_with = "present")]
    pub(super) increment: Option<Increment>,
    #[serde(default, deserialize_with = "present")]
    pub(super) increment_from: Option<Text>,
}

impl Described for RawCondRule {
    const EXPECTING: &'static str = "a rule with a \"name\" and keys such as \"action\", \"conditions\", \"rate_limit\", \"state\"";
}

impl Described for RawCondition {
    const EXPECTING: &'static str = "a condition with the keys \"path\", \"op\" and \"value\"";
}

impl Described for RawState {
    const EXPECTING: &'static str = "a state block with the keys \"counter\", \"window\" and optionally \"increment\" or \"increment_from\"";
}

/// Reads a string out of a fixed set, naming the set when something else is found.
fn one_of<'de, D, T>(
    deserializer: D,
    what: &'static str,
    choices: &'static [(&'static str, T)],
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Copy,
{
    struct OneOf<T: 'static> {
        what: &'static str,
        choices: &'static [(&'static str, T)],
    }

    impl<T: Copy> Visitor<'_> for OneOf<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}: {}", self.what, self.names())
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            self.choices
                .iter()
                .find(|(name, _)| *name == v)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    E::custom(format_args!(
                        "unknown {} {v:?}; use {}",
                        self.what,
                        self.names()
                    ))
                })
        }
    }

    impl<T> OneOf<T> {
        fn names(&self) -> String {
            let quoted: Vec<String> = self
                .choices
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            quoted.join(", ")
        }
    }

    deserializer.deserialize_str(OneOf { what, choices })
}

/// A rule's `action`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CondAction {
    Evaluate,
    Deny,
    RequireApproval,
}

impl<'de> Deserialize<'de> for CondAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            "rule action",
            &[
                ("evaluate", CondAction::Evaluate),
                ("deny", CondAction::Deny),
                ("require_approval", CondAction::RequireApproval),
            ],
        )
    }
}

/// `mode`: `enforce` (the default) or `audit`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RawMode {
    Enforce,
    Audit,
}

impl<'de> Deserialize<'de> for RawMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            "mode",
            &[("enforce", RawMode::Enforce), ("audit", RawMode::Audit)],
        )
    }
}

/// A condition's `op`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OpName {
    Eq,
    Neq,
    In,
    NotIn,
    Lt,
    Lte,
    Gt,
    Gte,
    Regex,
    Contains,
    Exists,
}

impl<'de> Deserialize<'de> for OpName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            "operator",
            &[
                ("eq", OpName::Eq),
                ("neq", OpName::Neq),
                ("in", OpName::In),
                ("not_in", OpName::NotIn),
                ("lt", OpName::Lt),
                ("lte", OpName::Lte),
                ("gt", OpName::Gt),
                ("gte", OpName::Gte),
                ("regex", OpName::Regex),
                ("contains", OpName::Contains),
                ("exists", OpName::Exists),
            ],
        )
    }
}

/// A counter's `window`.
#[derive(Clone, Copy)]
pub(super) struct WindowName(pub(super) crate::policy::rules::Window);

const WINDOWS: &[(&str, crate::policy::rules::Window)] = &[
    ("minute", crate::policy::rules::Window::Minute),
    ("hour", crate::policy::rules::Window::Hour),
    ("day", crate::policy::rules::Window::Day),
];

impl<'de> Deserialize<'de> for WindowName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(deserializer, "window", WINDOWS).map(WindowName)
    }
}

/// `increment`: a whole number from 1.
pub(super) struct Increment(pub(super) i64);

impl<'de> Deserialize<'de> for Increment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(deserializer)?;
        match i64::try_from(n) {
            Ok(n) if n >= 1 => Ok(Increment(n)),
            _ => Err(de::Error::custom(
                "expected a positive whole number to add on each call",
            )),
        }
    }
}

/// `rate_limit: 5/hour`.
pub(super) struct Shorthand {
    pub(super) count: u32,
    pub(super) window: crate::policy::rules::Window,
}

impl<'de> Deserialize<'de> for Shorthand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let fix = "write it as N/minute, N/hour or N/day, e.g. \"5/hour\"";
        let (count, window) = text.split_once('/').ok_or_else(|| {
            de::Error::custom(format_args!("{text:?} is not a rate limit; {fix}"))
        })?;
        let count = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=super::MAX_CALLS as u32).contains(n))
            .ok_or_else(|| {
                de::Error::custom(format_args!(
                    "rate_limit count must be a positive whole number (at most {}), got {count:?}; {fix}",
                    super::MAX_CALLS
                ))
            })?;
        let window = WINDOWS
            .iter()
            .find(|(name, _)| *name == window.trim())
            .map(|(_, w)| *w)
            .ok_or_else(|| {
                de::Error::custom(format_args!(
                    "rate_limit window must be minute, hour or day, got {window:?}; {fix}"
                ))
            })?;
        Ok(Shorthand { count, window })
    }
}
