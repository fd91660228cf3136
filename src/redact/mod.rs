//! Masks argument fields that look like secrets before they are shown or kept: on the dashboard,
//! in the API, in emails, and in the store once a call is over (`tool_calls.args_shown`, which
//! replaces the real arguments when the call leaves `pending`/`forwarding`). The digest a reviewer
//! approves is taken over the real arguments, so masking never changes what an approval binds to;
//! a reviewer who may decide can reveal a masked value on the call page (audited).
//!
//! A reviewer must not approve what they cannot see, so the rules aim at secrets and leave
//! ordinary values alone (`tests` holds a corpus of both):
//! - **Names.** A field is masked when its name holds a secret word: `password`, `passphrase`,
//!   `secret`, `credential`, `cookie`, `authorization`, `apikey` (also `api key`, `api_key`,
//!   `X-Api-Key`), `privatekey`, `accesskey`, `accesstoken`, `sessionstring`, ... (compared in
//!   lower case without separators), or is one of the short words `pin`, `otp`, `cvv`, `passwd`
//!   (as a word of the name: `pinCode` yes, `spinner` no). `token` and `session` alone are
//!   ambiguous (`token: "USDC"`, `max_tokens: 1000`, `session: "main"`): such a field is masked
//!   only when its value is text that is not a plain word.
//! - **Values.** A string starting with a configured prefix (`sk-`), or at least `long_values`
//!   characters long with a random-looking run in it: 20 or more base64 characters mixing upper
//!   case, lower case and digits and switching between them often (keys and session strings do;
//!   paths, file names and identifiers do not), or 64 or more hex digits (a 256-bit key).
//!
//! The rules are the built-in ones plus `[redaction]` in the config (see [`RedactionConfig`]).

mod scan;
#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use scan::{fold, has_random_run, is_run_char, mask_url_passwords, plain_word, random_run, words};

/// What a masked value shows: the reviewer knows a field is there and hidden.
pub const MASK: &str = "•••• (redacted)";

/// Field-name fragments (compared in lower case without separators) that mark a secret.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "apikey",
    "authorization",
    "privatekey",
    "cookie",
    "credential",
    "accesskey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "bearertoken",
    "idtoken",
    "apitoken",
    "sessionstring",
    "sessionkey",
    "sessiontoken",
    "sessioncookie",
    "signingkey",
    "encryptionkey",
    "seedphrase",
    "mnemonic",
];

/// Short words that mark a secret only as a whole word of the name (`pin`, not `spinner`).
const SECRET_WORDS: &[&str] = &["pin", "otp", "cvv", "cvc", "passwd", "pwd", "pass", "pw"];

/// Words that mark a secret, or an ordinary value: masked only when the value is not plain.
const AMBIGUOUS_WORDS: &[&str] = &["token", "session", "auth", "key"];

/// Last words that make a name describe a secret rather than hold it (`authorization_url`,
/// `cookie_consent`, `password_policy`, `token_type`).
const DESCRIPTORS: &[&str] = &[
    "url",
    "uri",
    "endpoint",
    "type",
    "mode",
    "name",
    "policy",
    "consent",
    "enabled",
    "required",
    "hint",
    "length",
    "format",
    "expiry",
    "expires",
    "expiration",
    "label",
    "count",
];

/// Value prefixes of well-known credentials (GitHub, GitLab, Slack, Stripe, AWS, Google, npm,
/// PyPI, Hugging Face, JWTs, Airlock's own tokens, HTTP authorization values), masked when at
/// least 8 characters follow.
const SECRET_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xapp-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "eyJhbGci",
    "npm_",
    "pypi-",
    "hf_",
    "alk_",
    "rl_",
    "Bearer ",
    "Basic ",
];

/// `[redaction]`: rules added to the built-in ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// More field-name fragments that mark a secret (`"iban"` masks `iban`, `payer_IBAN`, ...).
    pub fields: Vec<String>,
    /// Values starting with one of these are secrets whatever their field (`"sk-"`, `"ghp_"`).
    pub prefixes: Vec<String>,
    /// A string at least this long made only of base64 / base64url / hex characters, with a
    /// digit and a letter, reads as a secret; 0 turns that rule off.
    pub long_values: usize,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            fields: Vec::new(),
            prefixes: Vec::new(),
            long_values: 40,
        }
    }
}

impl RedactionConfig {
    /// The first rule that cannot work, as (key, message).
    pub fn problem(&self) -> Option<(String, String)> {
        for (i, field) in self.fields.iter().enumerate() {
            if fold(field).is_empty() {
                return Some((
                    format!("redaction.fields[{i}]"),
                    "is empty: it would mask every field".to_owned(),
                ));
            }
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            if prefix.chars().count() < 3 {
                return Some((
                    format!("redaction.prefixes[{i}]"),
                    format!("{prefix:?} is too short: give at least 3 characters, such as \"sk-\""),
                ));
            }
        }
        None
    }
}

/// The masking rules in force.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// `[redaction] fields`, folded: matched anywhere in a folded name.
    fields: Vec<String>,
    prefixes: Vec<String>,
    long_values: usize,
}

static BUILT_IN: LazyLock<Redactor> = LazyLock::new(|| Redactor::new(&RedactionConfig::default()));

impl Redactor {
    pub fn new(config: &RedactionConfig) -> Self {
        Self {
            fields: config.fields.iter().map(|f| fold(f)).collect(),
            prefixes: config.prefixes.clone(),
            long_values: config.long_values,
        }
    }

    /// The built-in rules alone (for rows stored before `args_shown` existed).
    pub fn built_in() -> &'static Self {
        &BUILT_IN
    }

    /// `value` with secret-looking fields replaced by [`MASK`].
    pub fn redact(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| {
                        let shown = if self.masks_field(key, value) {
                            Value::String(MASK.to_owned())
                        } else {
                            self.redact(value)
                        };
                        (key.clone(), shown)
                    })
                    .collect::<Map<String, Value>>(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact(v)).collect()),
            Value::String(text) => Value::String(self.redact_string(text)),
            other => other.clone(),
        }
    }

    /// A string value as people may see it: whole [`MASK`] when it is a credential (a known or
    /// configured prefix, or one random-looking run and nothing else); otherwise each random run
    /// and each password in a URL is masked where it stands, so the rest stays readable
    /// (`attacker.•••• (redacted)@evil.example` shows where the address goes).
    fn redact_string(&self, text: &str) -> String {
        if self.prefixed(text) {
            return MASK.to_owned();
        }
        let text = mask_url_passwords(text);
        if self.long_values == 0 || text.len() < self.long_values {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(start) = rest.find(is_run_char) {
            out.push_str(&rest[..start]);
            let after = &rest[start..];
            let end = after.find(|c: char| !is_run_char(c)).unwrap_or(after.len());
            let run = &after[..end];
            out.push_str(if random_run(run) { MASK } else { run });
            rest = &after[end..];
        }
        out.push_str(rest);
        if out == MASK { MASK.to_owned() } else { out }
    }

    fn prefixed(&self, text: &str) -> bool {
        self.prefixes.iter().any(|p| text.starts_with(p.as_str()))
            || SECRET_PREFIXES
                .iter()
                .any(|p| text.starts_with(p) && text.len() >= p.len() + 8)
    }

    /// A line of free text (an upstream's stderr) with secret-looking words masked: words that
    /// match the value rules, and the value after a secret name and `:` or `=` (also in debug
    /// dumps such as `"password": String("...")`).
    pub fn redact_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        // After a secret name: whether a `:` or `=` has followed it yet.
        let mut armed: Option<bool> = None;
        for c in text.chars().chain(std::iter::once('\n')) {
            let separator = c.is_whitespace()
                || matches!(
                    c,
                    '"' | '\'' | ',' | ';' | '&' | '(' | ')' | '[' | ']' | '{' | '}' | ':' | '='
                );
            if !separator {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                let shown = match armed {
                    // Wrappers a debug dump puts around the value, and auth schemes.
                    Some(true)
                        if matches!(
                            word.as_str(),
                            "String" | "Some" | "Str" | "Bearer" | "Basic" | "Token" | "token"
                        ) =>
                    {
                        false
                    }
                    Some(true) => {
                        armed = None;
                        true
                    }
                    // Key material is masked even where its letters spell a secret's name
                    // (a random run holding `ApiKey` is still a value, not a name).
                    _ if self.is_secret_value(&word) => {
                        // A random-looking secret name (`X-Api-Key-3f9a...`) still arms.
                        armed = self.is_secret_name(&word).then_some(false);
                        true
                    }
                    // In free text a bare `token=` or `session:` is taken at its word.
                    _ if self.is_secret_name(&word)
                        || AMBIGUOUS_WORDS.contains(&word.to_lowercase().as_str()) =>
                    {
                        armed = Some(false);
                        false
                    }
                    _ => {
                        armed = None;
                        self.is_secret_value(&word)
                    }
                };
                out.push_str(if shown { MASK } else { &word });
                word.clear();
            }
            if matches!(c, ':' | '=') && armed.is_some() {
                armed = Some(true);
            }
            out.push(c);
        }
        out.pop();
        out
    }

    /// Whether the field `name` holding `value` is masked as a whole.
    fn masks_field(&self, name: &str, value: &Value) -> bool {
        if value.is_null() {
            return false;
        }
        if self.is_secret_name(name) {
            return true;
        }
        let words = words(name);
        let describes = words
            .last()
            .is_some_and(|last| DESCRIPTORS.contains(&last.as_str()));
        let ambiguous = !describes
            && words
                .iter()
                .any(|word| AMBIGUOUS_WORDS.contains(&word.as_str()));
        // `token: "USDC"` and `max_tokens: 1000` are ordinary; `token: "a1b2…"` is not.
        ambiguous && value.as_str().is_some_and(|text| !plain_word(text))
    }

    /// Whether a field name says it holds a secret: a configured fragment anywhere in it, or a
    /// built-in secret term as a run of its words (`api_key`, `sessionString`, not `secretary`),
    /// unless its last word makes it describe one (`authorization_url`).
    fn is_secret_name(&self, name: &str) -> bool {
        let folded = fold(name);
        if self
            .fields
            .iter()
            .any(|field| folded.contains(field.as_str()))
        {
            return true;
        }
        let words = words(name);
        if words
            .last()
            .is_some_and(|last| DESCRIPTORS.contains(&last.as_str()))
        {
            return false;
        }
        (0..words.len()).any(|start| {
            let mut run = String::new();
            words[start..].iter().any(|word| {
                run.push_str(word);
                SECRET_NAMES.contains(&run.as_str())
                    || (run == *word && SECRET_WORDS.contains(&run.as_str()))
            })
        })
    }

    /// Whether a word of free text is a secret as it stands (for [`Self::redact_text`]).
    fn is_secret_value(&self, text: &str) -> bool {
        self.prefixed(text)
            || (self.long_values > 0 && text.len() >= self.long_values && has_random_run(text))
    }
}
