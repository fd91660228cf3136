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

mod convert;
mod convert_rules;
mod raw;
mod raw_rules;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod yaml_tests;

use std::path::Path;

use super::error::{Location, PolicyError};
use super::model::Policy;
use convert::convert;
use raw::{RawPolicy, Table};

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
    /// PolicyLayer Intercept's YAML (its POLICY.md), read unchanged.
    Yaml,
}

impl PolicyFormat {
    /// `*.json` is JSON, `*.toml` TOML, `*.yaml` and `*.yml` YAML (case-insensitively); anything
    /// else is unsupported.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(PolicyFormat::Json),
            "toml" => Some(PolicyFormat::Toml),
            "yaml" | "yml" => Some(PolicyFormat::Yaml),
            _ => None,
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
            PolicyFormat::Yaml => parse_yaml(text),
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

fn parse_yaml(text: &str) -> Result<RawPolicy, Failure> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer)
        .map(|Table(raw)| raw)
        .map_err(|error| {
            let key_path = key_path(error.path());
            let inner = error.into_inner();
            let location = inner.location().map(|at| Location {
                line: at.line(),
                column: at.column(),
            });
            let mut message = inner.to_string();
            // serde_yaml_ng appends the position and starts nested errors with their path; both
            // are reported separately here.
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            if let Some((path, rest)) = message.split_once(": ")
                && !path.contains(char::is_whitespace)
            {
                message = rest.to_owned();
            }
            Failure {
                key_path,
                message,
                location,
            }
        })
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
