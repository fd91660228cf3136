//! The policy document as written: strict serde types that refuse unknown keys, `null`, duplicate
//! names and out-of-range numbers, each with an error naming what would be accepted.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::{MAX_APPROVALS, MAX_CALLS, MAX_SECONDS};
use crate::policy::model::RateScope;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default, deserialize_with = "present")]
    pub(super) version: Option<Version>,
    #[serde(default, deserialize_with = "present")]
    pub(super) description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) default: Option<Action>,
    #[serde(default)]
    pub(super) tools: ToolTable,
    /// Resource URIs or globs to rules.
    #[serde(default)]
    pub(super) resources: PatternTable,
    /// Prompt names or globs to rules.
    #[serde(default)]
    pub(super) prompts: PatternTable,
    /// Tools removed from `tools/list` and refused (`"*"`: all).
    #[serde(default, deserialize_with = "present")]
    pub(super) hide: Option<Vec<Text>>,
    /// `audit`: record verdicts, let calls pass.
    #[serde(default, deserialize_with = "present")]
    pub(super) mode: Option<super::raw_rules::RawMode>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    #[serde(default, deserialize_with = "present")]
    pub(super) action: Option<Action>,
    #[serde(default, deserialize_with = "present")]
    pub(super) reason: Option<Text>,
    #[serde(default, deserialize_with = "present")]
    pub(super) rate_limit: Option<Table<RawRateLimit>>,
    /// `"session"` counts `rate_limit` per session (PolicyLayer's way); `"agent"` is the default.
    #[serde(default, deserialize_with = "present")]
    pub(super) per: Option<Per>,
    #[serde(default, deserialize_with = "present")]
    pub(super) approvals: Option<Approvals>,
    #[serde(default, deserialize_with = "present")]
    pub(super) timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "present")]
    pub(super) reviewers: Option<Vec<Text>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) notify: Option<Vec<Text>>,
    /// `true`: `[policy] sensitive` lets this tool run as its rule says.
    #[serde(default, deserialize_with = "present")]
    pub(super) accept_risk: Option<bool>,
    /// Conditional rules (Intercept's `rules:`).
    #[serde(default, deserialize_with = "present")]
    pub(super) rules: Option<Vec<Table<super::raw_rules::RawCondRule>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) max: Calls,
    pub(super) window: Seconds,
}

/// An object (a JSON object, a TOML table) and nothing else. Derived struct deserializers also
/// accept an array and read its items by position, so `"rate_limit": [10, 60]` would load; the
/// format has no such form, so it is refused like any other unknown shape.
pub(super) struct Table<T>(pub(super) T);

/// What a [`Table`] holds, in words for the error when something else is found.
pub(super) trait Described {
    const EXPECTING: &'static str;
}

impl Described for RawPolicy {
    const EXPECTING: &'static str = "a policy with the keys \"version\", \"default\", \"tools\", \"hide\", \"resources\" and \"prompts\"";
}

impl Described for RawRule {
    const EXPECTING: &'static str =
        "a rule: {} to allow, or keys such as \"action\", \"reason\", \"rate_limit\"";
}

impl Described for RawRateLimit {
    const EXPECTING: &'static str =
        "a rate limit with the keys \"max\" (calls) and \"window\" (seconds)";
}

impl<'de, T: Deserialize<'de> + Described> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Described> Visitor<'de> for TableVisitor<T> {
            type Value = Table<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Table<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Table)
            }
        }

        deserializer.deserialize_map(TableVisitor(std::marker::PhantomData))
    }
}

/// Deserializes an optional key that, when present, must hold a value: `null` is an error rather
/// than a silent "not set".
pub(super) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `version`: only `"1"` exists (the integer `1` is read the same way).
pub(super) struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;

        fn unsupported<E: de::Error>(found: impl fmt::Display) -> E {
            E::custom(format_args!(
                "unsupported policy version {found}; this Airlock reads version \"1\""
            ))
        }

        impl Visitor<'_> for VersionVisitor {
            type Value = Version;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the policy format version \"1\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                if v == "1" {
                    Ok(Version)
                } else {
                    Err(unsupported(format_args!("{v:?}")))
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Version, E> {
                if v == 1 {
                    Ok(Version)
                } else {
                    Err(unsupported(v))
                }
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Version, E> {
                if v == 1 {
                    Ok(Version)
                } else {
                    Err(unsupported(v))
                }
            }
        }

        deserializer.deserialize_any(VersionVisitor)
    }
}

/// An `action` or `default` value.
#[derive(Clone, Copy)]
pub(super) enum Action {
    Allow,
    Deny,
    RequireApproval,
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionVisitor;

        impl Visitor<'_> for ActionVisitor {
            type Value = Action;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of \"allow\", \"deny\", \"require_approval\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Action, E> {
                match v {
                    "allow" => Ok(Action::Allow),
                    "deny" => Ok(Action::Deny),
                    "require_approval" => Ok(Action::RequireApproval),
                    other => Err(E::custom(format_args!(
                        "unknown action {other:?}; use \"allow\", \"deny\" or \"require_approval\""
                    ))),
                }
            }
        }

        deserializer.deserialize_str(ActionVisitor)
    }
}

/// `per`: whose calls a rate limit counts together.
pub(super) struct Per(pub(super) RateScope);

impl<'de> Deserialize<'de> for Per {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PerVisitor;

        impl Visitor<'_> for PerVisitor {
            type Value = Per;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"agent\" or \"session\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Per, E> {
                match v {
                    "agent" => Ok(Per(RateScope::Agent)),
                    "session" => Ok(Per(RateScope::Session)),
                    other => Err(E::custom(format_args!(
                        "unknown scope {other:?}; use \"agent\" (the default: across sessions) or \"session\""
                    ))),
                }
            }
        }

        deserializer.deserialize_str(PerVisitor)
    }
}

/// A whole number in `min..=max`, with messages that say what the number counts.
pub(super) struct WholeNumber {
    unit: &'static str,
    min: u64,
    max: u64,
}

impl WholeNumber {
    fn check<E: de::Error>(&self, found: impl fmt::Display, value: Option<u64>) -> Result<u64, E> {
        match value {
            Some(v) if (self.min..=self.max).contains(&v) => Ok(v),
            Some(v) if v > self.max => Err(E::custom(format_args!(
                "expected at most {} {}, found {found}",
                self.max, self.unit
            ))),
            _ => Err(E::custom(format_args!("expected {self}, found {found}",))),
        }
    }
}

impl fmt::Display for WholeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == 1 {
            write!(f, "a positive whole number of {}", self.unit)
        } else {
            write!(f, "a whole number of {} from {}", self.unit, self.min)
        }
    }
}

impl Visitor<'_> for WholeNumber {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        self.check(v, Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        self.check(v, u64::try_from(v).ok())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // Fractions are refused even when whole (`60.0`): the format's numbers are integers.
        self.check(format_args!("{v:?}"), None)
    }
}

/// `window` and `timeout`: 1 second to [`MAX_SECONDS`].
pub(super) struct Seconds(pub(super) Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = WholeNumber {
            unit: "seconds",
            min: 1,
            max: MAX_SECONDS,
        };
        deserializer
            .deserialize_any(visitor)
            .map(|secs| Seconds(Duration::from_secs(secs)))
    }
}

/// `rate_limit.max`: 1 to [`MAX_CALLS`].
pub(super) struct Calls(pub(super) u32);

impl<'de> Deserialize<'de> for Calls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = WholeNumber {
            unit: "calls",
            min: 1,
            max: MAX_CALLS,
        };
        let n = deserializer.deserialize_any(visitor)?;
        u32::try_from(n).map(Calls).map_err(de::Error::custom)
    }
}

/// `approvals`: 1 to [`MAX_APPROVALS`].
pub(super) struct Approvals(pub(super) u32);

impl<'de> Deserialize<'de> for Approvals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = WholeNumber {
            unit: "approvals",
            min: 1,
            max: MAX_APPROVALS,
        };
        let n = deserializer.deserialize_any(visitor)?;
        u32::try_from(n).map(Approvals).map_err(de::Error::custom)
    }
}

/// A string that is not blank, with surrounding whitespace removed.
pub(super) struct Text(pub(super) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                let trimmed = v.trim();
                if trimmed.is_empty() {
                    Err(E::custom(
                        "expected a non-empty string; remove the key or fill it in",
                    ))
                } else {
                    Ok(Text(trimmed.to_owned()))
                }
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// `tools`: tool names (and `"*"`, the rules for every tool) to rules. Unlike a plain map, a name
/// given twice is an error (JSON allows it and a later `{}` would silently override an earlier
/// deny), and so is `""`.
#[derive(Default)]
pub(super) struct ToolTable(pub(super) BTreeMap<String, RawRule>);

impl<'de> Deserialize<'de> for ToolTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToolsVisitor;

        impl<'de> Visitor<'de> for ToolsVisitor {
            type Value = ToolTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from tool names to rules")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ToolTable, A::Error> {
                let mut tools = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.trim().is_empty() {
                        return Err(de::Error::custom(format_args!(
                            "{name:?} is not a tool name; use the name the upstream lists in tools/list"
                        )));
                    }
                    match tools.entry(name) {
                        Entry::Occupied(entry) => {
                            return Err(de::Error::custom(format_args!(
                                "tool {:?} is listed twice; keep one rule per tool",
                                entry.key()
                            )));
                        }
                        Entry::Vacant(entry) => {
                            entry.insert(map.next_value::<Table<RawRule>>()?.0);
                        }
                    }
                }
                Ok(ToolTable(tools))
            }
        }

        deserializer.deserialize_map(ToolsVisitor)
    }
}

/// `resources` and `prompts`: names or globs (`*`, `?`) to rules, in the file's order. A name given
/// twice is an error, and so is `""`.
#[derive(Default)]
pub(super) struct PatternTable(pub(super) Vec<(String, RawRule)>);

impl<'de> Deserialize<'de> for PatternTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternsVisitor;

        impl<'de> Visitor<'de> for PatternsVisitor {
            type Value = PatternTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from names or globs (`*`, `?`) to rules")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PatternTable, A::Error> {
                let mut entries: Vec<(String, RawRule)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.trim().is_empty() {
                        return Err(de::Error::custom(format_args!(
                            "{name:?} is not a name; give a URI, a prompt name or a glob such as \"*\""
                        )));
                    }
                    if entries.iter().any(|(known, _)| *known == name) {
                        return Err(de::Error::custom(format_args!(
                            "{name:?} is listed twice; keep one rule per name"
                        )));
                    }
                    let rule = map.next_value::<Table<RawRule>>()?.0;
                    entries.push((name, rule));
                }
                Ok(PatternTable(entries))
            }
        }

        deserializer.deserialize_map(PatternsVisitor)
    }
}
