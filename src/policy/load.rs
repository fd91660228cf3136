//! Strict loading of policy files (JSON or TOML) into a [`Policy`].
//!
//! The format is PolicyLayer's `policy.json` (DESIGN.md, "Policy"); a `*.toml` file holds the same
//! document in TOML syntax. Loading is strict because a setting that is silently ignored is a hole
//! in the policy: unknown keys anywhere, `null` values, duplicate tool names, out-of-range numbers
//! and settings that mean nothing for a rule's action (`approvals` on a denied tool, `rate_limit`
//! on one that needs approval) are all errors. `version` must be `"1"` and is required, as in
//! PolicyLayer's own validator. Every error names the file and the key path and says what would be
//! accepted; syntax and value errors also carry the line and column.
//!
//! Choices that go beyond the contract: `description` (a PolicyLayer top-level key) is accepted;
//! `reason` is accepted on `require_approval` rules as a note for reviewers but rejected on allowed
//! tools, where nobody would ever see it; a tool named `"*"` is rejected because PolicyLayer files
//! mean a wildcard by it, which this format does not support yet.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::error::{Location, PolicyError};
use super::model::{
    ApprovalRule, DEFAULT_APPROVAL_TIMEOUT, DefaultAction, Policy, PolicyOrigin, RateLimit,
    RateScope, Rule,
};

/// The longest `window` or `timeout` accepted, in seconds (365 days).
const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;
/// The largest `rate_limit.max`: the limiter remembers each counted call, so this bounds memory.
const MAX_CALLS: u64 = 100_000;
/// The largest `approvals`.
const MAX_APPROVALS: u64 = 1_000;

/// The syntax a policy file is written in, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    Json,
    Toml,
}

impl PolicyFormat {
    /// `*.json` is JSON and `*.toml` is TOML (case-insensitively); anything else is unsupported.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?;
        if extension.eq_ignore_ascii_case("json") {
            Some(PolicyFormat::Json)
        } else if extension.eq_ignore_ascii_case("toml") {
            Some(PolicyFormat::Toml)
        } else {
            None
        }
    }
}

impl Policy {
    /// Reads and validates the policy file at `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let bytes = std::fs::read(path).map_err(|cause| PolicyError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Validates `bytes` read from `path` (which names the format and is quoted in errors).
    pub(super) fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, PolicyError> {
        let text = String::from_utf8(bytes).map_err(|_| PolicyError::Read {
            path: path.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is not UTF-8"),
        })?;
        Self::parse(path, &text)
    }

    /// Validates the policy document `text`; `path` names the format (by its extension) and is
    /// quoted in errors and kept as the policy's origin.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        // Some Windows editors start UTF-8 files with a byte-order mark; it is not content.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let format =
            PolicyFormat::from_path(path).ok_or_else(|| PolicyError::UnsupportedFormat {
                path: path.to_path_buf(),
            })?;
        let raw = match format {
            PolicyFormat::Json => parse_json(text),
            PolicyFormat::Toml => parse_toml(text),
        };
        raw.and_then(|raw| convert(raw, format, path))
            .map_err(|failure| PolicyError::Invalid {
                path: path.to_path_buf(),
                key_path: failure.key_path,
                message: failure.message,
                location: failure.location,
            })
    }
}

/// An error in the document, before it is tied to the file's path.
struct Failure {
    key_path: String,
    message: String,
    location: Option<Location>,
}

impl Failure {
    fn at(key_path: String, message: String) -> Self {
        Self {
            key_path,
            message,
            location: None,
        }
    }
}

/// The key path in `serde_path_to_error` notation, without its placeholders: it writes the root
/// as `.` and a key it could not read (a syntax error) as `?`; the message leaves those unnamed.
fn key_path(path: &serde_path_to_error::Path) -> String {
    let mut rendered = path.to_string();
    if rendered == "." || rendered == "?" {
        return String::new();
    }
    while let Some(known) = rendered.strip_suffix(".?") {
        rendered.truncate(known.len());
    }
    rendered
}

fn parse_json(text: &str) -> Result<RawPolicy, Failure> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let Table(raw) = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| json_failure(key_path(error.path()), error.into_inner()))?;
    // Trailing content after the document is an error too, not silently dropped.
    deserializer
        .end()
        .map_err(|error| json_failure(String::new(), error))?;
    Ok(raw)
}

fn json_failure(key_path: String, error: serde_json::Error) -> Failure {
    let (line, column) = (error.line(), error.column());
    let mut message = error.to_string();
    let location = if line > 0 {
        // serde_json appends the position to the message; it is reported separately here.
        let suffix = format!(" at line {line} column {column}");
        if message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
        Some(Location {
            line,
            column: column.max(1),
        })
    } else {
        None
    };
    Failure {
        key_path,
        message,
        location,
    }
}

fn parse_toml(text: &str) -> Result<RawPolicy, Failure> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|error| toml_failure(String::new(), &error, text))?;
    serde_path_to_error::deserialize(deserializer)
        .map(|Table(raw)| raw)
        .map_err(|error| toml_failure(key_path(error.path()), error.inner(), text))
}

fn toml_failure(key_path: String, error: &toml::de::Error, text: &str) -> Failure {
    let location = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| Location {
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
        });
    Failure {
        key_path,
        message: error.message().trim_end().to_owned(),
        location,
    }
}

// ---- The document as written ------------------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default, deserialize_with = "present")]
    version: Option<Version>,
    #[serde(default, deserialize_with = "present")]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    default: Option<Action>,
    #[serde(default)]
    tools: ToolTable,
    /// Resource URIs or globs to rules.
    #[serde(default)]
    resources: PatternTable,
    /// Prompt names or globs to rules.
    #[serde(default)]
    prompts: PatternTable,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, deserialize_with = "present")]
    action: Option<Action>,
    #[serde(default, deserialize_with = "present")]
    reason: Option<Text>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Table<RawRateLimit>>,
    /// `"session"` counts `rate_limit` per session (PolicyLayer's way); `"agent"` is the default.
    #[serde(default, deserialize_with = "present")]
    per: Option<Per>,
    #[serde(default, deserialize_with = "present")]
    approvals: Option<Approvals>,
    #[serde(default, deserialize_with = "present")]
    timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "present")]
    reviewers: Option<Vec<Text>>,
    #[serde(default, deserialize_with = "present")]
    notify: Option<Vec<Text>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    max: Calls,
    window: Seconds,
}

/// An object (a JSON object, a TOML table) and nothing else. Derived struct deserializers also
/// accept an array and read its items by position, so `"rate_limit": [10, 60]` would load; the
/// format has no such form, so it is refused like any other unknown shape.
struct Table<T>(T);

/// What a [`Table`] holds, in words for the error when something else is found.
trait Described {
    const EXPECTING: &'static str;
}

impl Described for RawPolicy {
    const EXPECTING: &'static str =
        "a policy with the keys \"version\", \"default\", \"tools\", \"resources\" and \"prompts\"";
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
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `version`: only `"1"` exists (the integer `1` is read the same way).
struct Version;

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
enum Action {
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
struct Per(RateScope);

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
struct WholeNumber {
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
struct Seconds(Duration);

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
struct Calls(u32);

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
struct Approvals(u32);

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
struct Text(String);

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

/// `tools`: tool names to rules. Unlike a plain map, a name given twice is an error (JSON allows
/// it and a later `{}` would silently override an earlier deny), and so are `""` and `"*"`.
#[derive(Default)]
struct ToolTable(BTreeMap<String, RawRule>);

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
                    if name == "*" {
                        return Err(de::Error::custom(
                            "\"*\" is not a tool name: wildcard rules are not supported yet; \
                             use \"default\" for the tools not listed",
                        ));
                    }
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
struct PatternTable(Vec<(String, RawRule)>);

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

// ---- From the document to the model -----------------------------------------------------------

fn convert(raw: RawPolicy, format: PolicyFormat, path: &Path) -> Result<Policy, Failure> {
    if raw.version.is_none() {
        let example = match format {
            PolicyFormat::Json => "\"version\": \"1\"",
            PolicyFormat::Toml => "version = \"1\"",
        };
        return Err(Failure::at(
            "version".to_owned(),
            format!("missing; add {example} at the top of the file"),
        ));
    }
    let default = match raw.default {
        None | Some(Action::Allow) => DefaultAction::Allow,
        Some(Action::Deny) => DefaultAction::Deny,
        Some(Action::RequireApproval) => DefaultAction::RequireApproval,
    };
    let mut tools = BTreeMap::new();
    for (name, rule) in raw.tools.0 {
        let rule = convert_rule(&format!("tools.{name}"), true, rule)?;
        tools.insert(name, rule);
    }
    let patterns = |section: &str, table: PatternTable| {
        table
            .0
            .into_iter()
            .map(|(name, rule)| {
                convert_rule(&format!("{section}.{name}"), false, rule).map(|rule| (name, rule))
            })
            .collect::<Result<Vec<_>, Failure>>()
    };
    let resources = patterns("resources", raw.resources)?
        .into_iter()
        .map(|(pattern, rule)| (super::methods::canonical_pattern(&pattern), rule))
        .collect();
    let prompts = patterns("prompts", raw.prompts)?;
    Ok(Policy {
        origin: PolicyOrigin::File(path.to_path_buf()),
        description: raw.description,
        default,
        default_is_explicit: raw.default.is_some(),
        default_rule: default.to_rule(),
        tools,
        resources,
        prompts,
    })
}

/// The rule at `at` (`tools.send_message`); `is_tool` because only tool calls are counted by
/// rate limits.
fn convert_rule(at: &str, is_tool: bool, raw: RawRule) -> Result<Rule, Failure> {
    let action = raw.action.unwrap_or(Action::Allow);
    let key = |name: &str| format!("{at}.{name}");
    let misplaced = |name: &str, applies_to: &str| {
        Failure::at(
            key(name),
            format!("`{name}` applies only to {applies_to}; remove it or change the rule's action"),
        )
    };
    const APPROVAL_ONLY: &str = "\"action\": \"require_approval\"";

    if !matches!(action, Action::RequireApproval) {
        let approval_keys = [
            ("approvals", raw.approvals.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("reviewers", raw.reviewers.is_some()),
            ("notify", raw.notify.is_some()),
        ];
        if let Some((name, _)) = approval_keys.iter().find(|(_, set)| *set) {
            return Err(misplaced(name, APPROVAL_ONLY));
        }
    }
    if !matches!(action, Action::Allow) && raw.rate_limit.is_some() {
        return Err(misplaced(
            "rate_limit",
            "allowed tools (no \"action\", or \"action\": \"allow\")",
        ));
    }
    if raw.per.is_some() && raw.rate_limit.is_none() {
        return Err(misplaced("per", "rules with a \"rate_limit\""));
    }
    if !is_tool && raw.rate_limit.is_some() {
        return Err(misplaced("rate_limit", "tools"));
    }

    match action {
        Action::Allow => {
            if raw.reason.is_some() {
                return Err(misplaced(
                    "reason",
                    "\"action\": \"deny\" (shown to the agent) or \"require_approval\" (shown to reviewers)",
                ));
            }
            let rate_limit = match raw.rate_limit {
                None => None,
                // The value checks above make `new` succeed; should they ever disagree, the file
                // is refused rather than loaded without its limit.
                Some(Table(limit)) => Some(
                    RateLimit::new(limit.max.0, limit.window.0)
                        .ok_or_else(|| {
                            Failure::at(
                                key("rate_limit"),
                                "expected at least 1 call over a window of at least 1 second"
                                    .to_owned(),
                            )
                        })?
                        .counted_per(raw.per.map_or(RateScope::Agent, |Per(per)| per)),
                ),
            };
            Ok(Rule::Allow { rate_limit })
        }
        Action::Deny => Ok(Rule::Deny {
            reason: raw.reason.map(|text| text.0),
        }),
        Action::RequireApproval => Ok(Rule::RequireApproval(ApprovalRule {
            approvals: raw.approvals.map_or(1, |a| a.0),
            timeout: raw.timeout.map_or(DEFAULT_APPROVAL_TIMEOUT, |t| t.0),
            reviewers: names(&key("reviewers"), raw.reviewers)?,
            notify: names(&key("notify"), raw.notify)?,
            reason: raw.reason.map(|text| text.0),
        })),
    }
}

/// A `reviewers` or `notify` list; an entry given twice is an error (it may be a typo of another).
fn names(key_path: &str, list: Option<Vec<Text>>) -> Result<Vec<String>, Failure> {
    let mut names: Vec<String> = Vec::new();
    for Text(name) in list.unwrap_or_default() {
        if names.contains(&name) {
            return Err(Failure::at(
                key_path.to_owned(),
                format!("{name:?} is listed twice"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_JSON: &str = r#"{ "version": "1", "default": "deny",
  "tools": {
    "get_chats":      {},
    "send_message":   { "rate_limit": { "max": 10, "window": 60 } },
    "delete_account": { "action": "deny", "reason": "never from an agent" },
    "export_session": { "action": "require_approval", "approvals": 1, "timeout": 600,
                        "reviewers": ["security"], "notify": ["security@example.org"] } } }"#;

    const EXAMPLE_TOML: &str = r#"
version = "1"
default = "deny"

[tools.get_chats]

[tools.send_message]
rate_limit = { max = 10, window = 60 }

[tools.delete_account]
action = "deny"
reason = "never from an agent"

[tools.export_session]
action = "require_approval"
approvals = 1
timeout = 600
reviewers = ["security"]
notify = ["security@example.org"]
"#;

    fn parse(name: &str, text: &str) -> Policy {
        match Policy::parse(Path::new(name), text) {
            Ok(policy) => policy,
            Err(error) => panic!("{error}"),
        }
    }

    /// The error line for an invalid document.
    fn error(name: &str, text: &str) -> String {
        match Policy::parse(Path::new(name), text) {
            Ok(policy) => panic!("loaded: {policy:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn json_error(text: &str) -> String {
        error("policies/telegram.json", text)
    }

    fn toml_error(text: &str) -> String {
        error("policies/telegram.toml", text)
    }

    fn rule<'a>(policy: &'a Policy, tool: &str) -> &'a Rule {
        match policy.tools.get(tool) {
            Some(rule) => rule,
            None => panic!("{tool} not listed"),
        }
    }

    fn assert_example(policy: &Policy) {
        assert_eq!(policy.default_action(), DefaultAction::Deny);
        assert!(!policy.default_is_implicit());
        assert_eq!(policy.tools().count(), 4);
        assert_eq!(rule(policy, "get_chats"), &Rule::Allow { rate_limit: None });
        assert_eq!(
            rule(policy, "send_message"),
            &Rule::Allow {
                rate_limit: RateLimit::new(10, Duration::from_secs(60))
            }
        );
        assert_eq!(
            rule(policy, "delete_account"),
            &Rule::Deny {
                reason: Some("never from an agent".to_owned())
            }
        );
        assert_eq!(
            rule(policy, "export_session"),
            &Rule::RequireApproval(ApprovalRule {
                approvals: 1,
                timeout: Duration::from_secs(600),
                reviewers: vec!["security".to_owned()],
                notify: vec!["security@example.org".to_owned()],
                reason: None,
            })
        );
    }

    #[test]
    fn the_design_example_loads_from_json() {
        let policy = parse("policies/telegram.json", EXAMPLE_JSON);
        assert_example(&policy);
        assert_eq!(
            policy.origin(),
            &PolicyOrigin::File("policies/telegram.json".into())
        );
    }

    #[test]
    fn the_same_policy_loads_from_toml() {
        let toml = parse("policies/telegram.toml", EXAMPLE_TOML);
        assert_example(&toml);
        let json = parse("policies/telegram.json", EXAMPLE_JSON);
        assert_eq!(toml.tools, json.tools);
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(
            PolicyFormat::from_path(Path::new("a/b.JSON")),
            Some(PolicyFormat::Json)
        );
        assert_eq!(
            PolicyFormat::from_path(Path::new("b.policy.toml")),
            Some(PolicyFormat::Toml)
        );
        assert_eq!(PolicyFormat::from_path(Path::new("b.yaml")), None);
        assert_eq!(
            error("policies/telegram.yaml", "version: \"1\""),
            "policies/telegram.yaml: cannot tell the policy file's format from its name; \
             name it *.json or *.toml"
        );
    }

    #[test]
    fn omitted_settings_take_their_defaults() {
        let policy = parse(
            "p.json",
            r#"{"version": "1", "tools": {"a": {}, "b": {"action": "allow"},
                "c": {"action": "deny"}, "d": {"action": "require_approval"}}}"#,
        );
        assert_eq!(policy.default_action(), DefaultAction::Allow);
        assert!(policy.default_is_implicit());
        assert_eq!(policy.description(), None);
        assert_eq!(rule(&policy, "a"), &Rule::Allow { rate_limit: None });
        assert_eq!(rule(&policy, "b"), &Rule::Allow { rate_limit: None });
        assert_eq!(rule(&policy, "c"), &Rule::Deny { reason: None });
        assert_eq!(
            rule(&policy, "d"),
            &Rule::RequireApproval(ApprovalRule {
                approvals: 1,
                timeout: DEFAULT_APPROVAL_TIMEOUT,
                reviewers: Vec::new(),
                notify: Vec::new(),
                reason: None,
            })
        );
        assert_eq!(DEFAULT_APPROVAL_TIMEOUT, Duration::from_secs(600));

        let bare = parse("p.json", r#"{"version": "1"}"#);
        assert_eq!(bare.tools().count(), 0);
        let defaults = parse("p.json", r#"{"version": 1, "default": "require_approval"}"#);
        assert_eq!(defaults.default_action(), DefaultAction::RequireApproval);
        assert_eq!(
            defaults.default_rule,
            Policy::require_approval_by_default().default_rule
        );
    }

    #[test]
    fn description_and_approval_notes_are_kept() {
        let policy = parse(
            "p.toml",
            "version = \"1\"\ndescription = \"Telegram\"\n\
             [tools.ban]\naction = \"require_approval\"\nreason = \"  affects others \"\n",
        );
        assert_eq!(policy.description(), Some("Telegram"));
        match rule(&policy, "ban") {
            Rule::RequireApproval(approval) => {
                assert_eq!(approval.reason(), Some("affects others"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_at_the_top_is_an_error() {
        assert_eq!(
            json_error(r#"{"version": "1", "defualt": "deny"}"#),
            "policies/telegram.json: defualt: unknown field `defualt`, expected one of `version`, \
             `description`, `default`, `tools`, `resources`, `prompts` (line 1, column 26)"
        );
    }

    #[test]
    fn an_unknown_key_in_a_rule_is_an_error() {
        assert_eq!(
            json_error(r#"{"version": "1", "tools": {"delete_chat": {"acton": "deny"}}}"#),
            "policies/telegram.json: tools.delete_chat.acton: unknown field `acton`, expected one \
             of `action`, `reason`, `rate_limit`, `per`, `approvals`, `timeout`, `reviewers`, `notify` \
             (line 1, column 50)"
        );
        assert_eq!(
            toml_error("version = \"1\"\n[tools.delete_chat]\nacton = \"deny\"\n"),
            "policies/telegram.toml: tools.delete_chat.acton: unknown field `acton`, expected one \
             of `action`, `reason`, `rate_limit`, `per`, `approvals`, `timeout`, `reviewers`, `notify` \
             (line 3, column 1)"
        );
    }

    #[test]
    fn an_unknown_key_in_a_rate_limit_is_an_error() {
        assert_eq!(
            json_error(
                r#"{"version": "1", "tools": {"send": {"rate_limit": {"max": 1, "window": 60, "burst": 5}}}}"#
            ),
            "policies/telegram.json: tools.send.rate_limit.burst: unknown field `burst`, \
             expected `max` or `window` (line 1, column 82)"
        );
    }

    #[test]
    fn a_bad_action_is_an_error() {
        assert_eq!(
            json_error(r#"{"version": "1", "tools": {"x": {"action": "block"}}}"#),
            "policies/telegram.json: tools.x.action: unknown action \"block\"; use \"allow\", \
             \"deny\" or \"require_approval\" (line 1, column 50)"
        );
        assert_eq!(
            toml_error("version = \"1\"\ndefault = \"ask\"\n"),
            "policies/telegram.toml: default: unknown action \"ask\"; use \"allow\", \"deny\" \
             or \"require_approval\" (line 2, column 11)"
        );
    }

    #[test]
    fn a_zero_max_is_an_error() {
        assert_eq!(
            json_error(
                r#"{"version": "1", "tools": {"send_message": {"rate_limit": {"max": 0, "window": 60}}}}"#
            ),
            "policies/telegram.json: tools.send_message.rate_limit.max: expected a positive whole \
             number of calls, found 0 (line 1, column 67)"
        );
    }

    #[test]
    fn a_negative_window_is_an_error() {
        assert_eq!(
            json_error(
                r#"{"version": "1", "tools": {"send_message": {"rate_limit": {"max": 10, "window": -5}}}}"#
            ),
            "policies/telegram.json: tools.send_message.rate_limit.window: expected a positive \
             whole number of seconds, found -5 (line 1, column 82)"
        );
        assert_eq!(
            toml_error(
                "version = \"1\"\n[tools.send_message]\nrate_limit = { max = 10, window = -5 }\n"
            ),
            "policies/telegram.toml: tools.send_message.rate_limit.window: expected a positive \
             whole number of seconds, found -5 (line 3, column 35)"
        );
    }

    #[test]
    fn numbers_must_be_whole_and_in_range() {
        let cases = [
            (
                r#""window": 1.5"#,
                "window: expected a positive whole number of seconds, found 1.5",
            ),
            (
                r#""window": 60.0"#,
                "window: expected a positive whole number of seconds, found 60.0",
            ),
            (
                r#""window": "60""#,
                "window: invalid type: string \"60\", expected a positive whole number of seconds",
            ),
            (
                r#""window": 0"#,
                "window: expected a positive whole number of seconds, found 0",
            ),
            (
                r#""window": 31536001"#,
                "window: expected at most 31536000 seconds, found 31536001",
            ),
        ];
        for (window, expected) in cases {
            let text = format!(
                r#"{{"version": "1", "tools": {{"s": {{"rate_limit": {{"max": 1, {window}}}}}}}}}"#
            );
            let message = json_error(&text);
            assert!(
                message.contains(&format!("tools.s.rate_limit.{expected}")),
                "{message}"
            );
        }
        let message = json_error(
            r#"{"version": "1", "tools": {"s": {"rate_limit": {"max": 100001, "window": 1}}}}"#,
        );
        assert!(
            message.contains("max: expected at most 100000 calls, found 100001"),
            "{message}"
        );
        let message = json_error(
            r#"{"version": "1", "tools": {"s": {"action": "require_approval", "approvals": 0}}}"#,
        );
        assert!(
            message.contains(
                "tools.s.approvals: expected a positive whole number of approvals, found 0"
            ),
            "{message}"
        );
        let message = json_error(
            r#"{"version": "1", "tools": {"s": {"action": "require_approval", "timeout": 0}}}"#,
        );
        assert!(
            message
                .contains("tools.s.timeout: expected a positive whole number of seconds, found 0"),
            "{message}"
        );
    }

    #[test]
    fn a_rate_limit_needs_both_keys() {
        let message = json_error(r#"{"version": "1", "tools": {"s": {"rate_limit": {"max": 1}}}}"#);
        assert!(
            message.contains("tools.s.rate_limit: missing field `window`"),
            "{message}"
        );
        let message = json_error(r#"{"version": "1", "tools": {"s": {"rate_limit": "5/hour"}}}"#);
        assert!(
            message.contains("tools.s.rate_limit: invalid type: string \"5/hour\", expected a rate limit with the keys \"max\" (calls) and \"window\" (seconds)"),
            "{message}"
        );
    }

    #[test]
    fn an_unsupported_or_missing_version_is_an_error() {
        assert_eq!(
            json_error(r#"{"version": "2", "tools": {}}"#),
            "policies/telegram.json: version: unsupported policy version \"2\"; this Airlock \
             reads version \"1\" (line 1, column 15)"
        );
        assert!(json_error(r#"{"version": 2}"#).contains("unsupported policy version 2;"));
        assert_eq!(
            json_error(r#"{"default": "deny", "tools": {}}"#),
            "policies/telegram.json: version: missing; add \"version\": \"1\" at the top of the file"
        );
        assert_eq!(
            toml_error("default = \"deny\"\n"),
            "policies/telegram.toml: version: missing; add version = \"1\" at the top of the file"
        );
    }

    #[test]
    fn resources_and_prompts_take_rules_by_name_or_glob_in_their_order() {
        let policy = parse(
            "p.json",
            r#"{"version": "1", "default": "deny",
                "resources": {"telegram://account/*": {"action": "deny"}, "*": {}},
                "prompts": {"summarize_chat": {"action": "require_approval", "reason": "a transcript"}}}"#,
        );
        let resources: Vec<&str> = policy.resources().map(|(name, _)| name).collect();
        assert_eq!(resources, ["telegram://account/*", "*"]);
        assert_eq!(policy.prompts().count(), 1);
        assert!(
            json_error(
                r#"{"version": "1", "resources": {"a": {"rate_limit": {"max": 1, "window": 1}}}}"#
            )
            .contains("resources.a.rate_limit: `rate_limit` applies only to tools")
        );
        assert!(
            json_error(r#"{"version": "1", "prompts": {"a": {}, "a": {"action": "deny"}}}"#)
                .contains("\"a\" is listed twice")
        );
        assert!(
            json_error(r#"{"version": "1", "prompts": {"a": {"actoin": "deny"}}}"#)
                .contains("prompts.a.actoin: unknown field `actoin`")
        );
    }

    #[test]
    fn rate_limits_count_per_agent_unless_the_rule_says_per_session() {
        let policy = parse(
            "p.json",
            r#"{"version": "1", "tools": {
                "a": {"rate_limit": {"max": 5, "window": 60}},
                "b": {"rate_limit": {"max": 5, "window": 60}, "per": "session"},
                "c": {"rate_limit": {"max": 5, "window": 60}, "per": "agent"}}}"#,
        );
        let per = |tool| match rule(&policy, tool) {
            Rule::Allow {
                rate_limit: Some(limit),
            } => limit.per(),
            other => panic!("{other:?}"),
        };
        assert_eq!(per("a"), RateScope::Agent);
        assert_eq!(per("b"), RateScope::Session);
        assert_eq!(per("c"), RateScope::Agent);
    }

    #[test]
    fn settings_that_do_not_fit_the_action_are_errors() {
        let cases = [
            (
                r#"{"action": "deny", "approvals": 2}"#,
                "tools.x.approvals: `approvals` applies only to \"action\": \"require_approval\"",
            ),
            (
                r#"{"timeout": 60}"#,
                "tools.x.timeout: `timeout` applies only to \"action\": \"require_approval\"",
            ),
            (
                r#"{"action": "allow", "reviewers": ["a@b"]}"#,
                "tools.x.reviewers: `reviewers` applies only",
            ),
            (
                r#"{"action": "deny", "notify": ["a@b"]}"#,
                "tools.x.notify: `notify` applies only",
            ),
            (
                r#"{"action": "deny", "rate_limit": {"max": 1, "window": 1}}"#,
                "tools.x.rate_limit: `rate_limit` applies only to allowed tools",
            ),
            (
                r#"{"action": "require_approval", "rate_limit": {"max": 1, "window": 1}}"#,
                "tools.x.rate_limit: `rate_limit` applies only to allowed tools",
            ),
            (
                r#"{"reason": "why not"}"#,
                "tools.x.reason: `reason` applies only to \"action\": \"deny\"",
            ),
            (
                r#"{"per": "session"}"#,
                "tools.x.per: `per` applies only to rules with a \"rate_limit\"",
            ),
            (
                r#"{"rate_limit": {"max": 1, "window": 1}, "per": "tool"}"#,
                "tools.x.per: unknown scope \"tool\"",
            ),
        ];
        for (rule, expected) in cases {
            let message = json_error(&format!(r#"{{"version": "1", "tools": {{"x": {rule}}}}}"#));
            assert!(
                message.starts_with(&format!("policies/telegram.json: {expected}")),
                "{message}"
            );
        }
    }

    #[test]
    fn nulls_blanks_and_repeats_are_errors() {
        let message = json_error(r#"{"version": "1", "default": null}"#);
        assert!(message.contains("default: invalid type: null"), "{message}");
        let message =
            json_error(r#"{"version": "1", "tools": {"x": {"action": "deny", "reason": " "}}}"#);
        assert!(
            message.contains("tools.x.reason: expected a non-empty string"),
            "{message}"
        );
        let message = json_error(
            r#"{"version": "1", "tools": {"x": {"action": "require_approval", "reviewers": ["a@b", "a@b"]}}}"#,
        );
        assert!(
            message.contains("tools.x.reviewers: \"a@b\" is listed twice"),
            "{message}"
        );
        let message =
            json_error(r#"{"version": "1", "tools": {"x": {"action": "deny"}, "x": {}}}"#);
        assert!(
            message.contains("tools: tool \"x\" is listed twice"),
            "{message}"
        );
        let message = json_error(
            r#"{"version": "1", "tools": {"x": {"action": "deny", "action": "allow"}}}"#,
        );
        assert!(
            message.contains("tools.x: duplicate field `action`"),
            "{message}"
        );
        let message = toml_error("version = \"1\"\nversion = \"1\"\n");
        assert!(message.contains("duplicate key"), "{message}");
    }

    #[test]
    fn wildcards_and_empty_tool_names_are_refused() {
        let message = json_error(r#"{"version": "1", "tools": {"*": {"action": "deny"}}}"#);
        assert!(
            message.contains("\"*\" is not a tool name: wildcard rules are not supported yet"),
            "{message}"
        );
        let message = json_error(r#"{"version": "1", "tools": {"": {}}}"#);
        assert!(message.contains("\"\" is not a tool name"), "{message}");
    }

    #[test]
    fn syntax_errors_and_trailing_content_name_the_position() {
        assert_eq!(
            json_error("{\"version\": \"1\",\n  \"tools\": {\n}"),
            "policies/telegram.json: EOF while parsing an object (line 3, column 1)"
        );
        let message = json_error(r#"{"version": "1"} {}"#);
        assert_eq!(
            message,
            "policies/telegram.json: trailing characters (line 1, column 18)"
        );
        let message = toml_error("version = \"1\"\n[tools\n");
        assert!(message.starts_with("policies/telegram.toml: "), "{message}");
        assert!(message.ends_with("(line 2, column 7)"), "{message}");
        let message = json_error("");
        assert!(message.contains("EOF while parsing a value"), "{message}");
    }

    #[test]
    fn only_objects_are_read_as_objects() {
        assert_eq!(
            json_error(r#"["1", null, "allow", {}]"#),
            "policies/telegram.json: invalid type: sequence, expected a policy with the keys \
             \"version\", \"default\", \"tools\", \"resources\" and \"prompts\" (line 1, column 1)"
        );
        let message = json_error(r#"{"version": "1", "tools": {"s": {"rate_limit": [10, 60]}}}"#);
        assert!(
            message.contains("tools.s.rate_limit: invalid type: sequence, expected a rate limit"),
            "{message}"
        );
        let message = json_error(r#"{"version": "1", "tools": {"s": ["deny"]}}"#);
        assert!(
            message.contains("tools.s: invalid type: sequence, expected a rule"),
            "{message}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let policy = parse(
            "p.json",
            "\u{feff}{\"version\": \"1\", \"default\": \"deny\"}",
        );
        assert_eq!(policy.default_action(), DefaultAction::Deny);
    }

    #[test]
    fn an_unreadable_file_names_the_file_and_the_cause() {
        let message = match Policy::load(Path::new("/nonexistent/telegram.json")) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("loaded a missing file"),
        };
        assert!(
            message.starts_with("/nonexistent/telegram.json: cannot read the policy file: "),
            "{message}"
        );
        let message = match Policy::from_bytes(Path::new("p.json"), vec![0xff, 0xfe]) {
            Err(error) => error.to_string(),
            Ok(_) => panic!("loaded garbage"),
        };
        assert_eq!(
            message,
            "p.json: cannot read the policy file: the file is not UTF-8"
        );
    }
}
