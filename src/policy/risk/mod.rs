//! Sensitive by default: which tools hand over a credential, and which are destructive, judged
//! from what the upstream says about them (name, title, description, schema field names) and
//! never from what it claims (`readOnlyHint` is untrusted: the Telegram server files
//! `export_session` as read-only).
//!
//! [`classify`] reads one `tools/list` entry and returns an [`Assessment`]: the kinds of risk it
//! found and, for each, the evidence (`name `export_session``, `description '导出指定账号的
//! Session字符串'`). The gate parks a credential tool whose rule merely allows it, unless `[policy]
//! sensitive = "allow"` or the rule says `accept_risk` (DESIGN.md, "Policy depth"); `check`, the
//! tools page and the reviewers see the same evidence. Annotations can only raise a risk: an
//! explicit `destructiveHint: true` counts as destructive evidence.
//!
//! The signals are data (`words.rs`); their precision and recall on a labelled set of real tool
//! definitions (`tests/data/risk_tools.jsonl`) are in README and checked by `tests.rs`.

#[cfg(test)]
mod tests;
mod words;

use serde_json::Value;

use words::*;

/// A kind of risk a tool can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    /// Calling it hands over access: a session string, an API key, a password, a private key.
    Credential,
    /// It deletes, sends, pays or changes access.
    Destructive,
}

impl Risk {
    /// How the risk is named to people: `credential-exporting`, `destructive`.
    pub fn looks(self) -> &'static str {
        match self {
            Risk::Credential => "credential-exporting",
            Risk::Destructive => "destructive",
        }
    }
}

/// Where in a tool's definition a signal was found, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub place: Place,
    /// The matched name, field or the sentence of the description (shortened).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Name,
    Title,
    Description,
    Output,
    Annotation,
}

/// What [`classify`] found about one tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    pub credential: Vec<Evidence>,
    pub destructive: Vec<Evidence>,
}

/// The longest description excerpt quoted as evidence, in characters.
const QUOTE_CHARS: usize = 60;

impl Assessment {
    /// The most serious risk found, if any (a credential tool is reported as that alone).
    pub fn risk(&self) -> Option<Risk> {
        if !self.credential.is_empty() {
            Some(Risk::Credential)
        } else if !self.destructive.is_empty() {
            Some(Risk::Destructive)
        } else {
            None
        }
    }

    /// The evidence of `risk`.
    pub fn evidence(&self, risk: Risk) -> &[Evidence] {
        match risk {
            Risk::Credential => &self.credential,
            Risk::Destructive => &self.destructive,
        }
    }

    /// `looks credential-exporting: name `export_session`, description 'Export the Session
    /// string...'`, or `None` when the tool does not look like `risk`.
    pub fn explain(&self, risk: Risk) -> Option<String> {
        let evidence = self.evidence(risk);
        if evidence.is_empty() {
            return None;
        }
        let shown: Vec<String> = evidence.iter().map(Evidence::to_string).collect();
        Some(format!("looks {}: {}", risk.looks(), shown.join(", ")))
    }
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.place {
            Place::Name => write!(f, "name `{}`", self.text),
            Place::Title => write!(f, "title '{}'", self.text),
            Place::Description => write!(f, "description '{}'", self.text),
            Place::Output => write!(f, "output field `{}`", self.text),
            Place::Annotation => write!(f, "annotation {}", self.text),
        }
    }
}

/// The risks of one tool as an upstream lists it (a `tools/list` entry; only `name` is needed).
pub fn classify(tool: &Value) -> Assessment {
    let text = |key: &str| tool.get(key).and_then(Value::as_str).unwrap_or_default();
    let name = text("name");
    let words = words(name);
    let mut found = Assessment::default();
    let coins = {
        let lower = text("description").to_lowercase();
        COIN_CONTEXT
            .iter()
            .any(|word| find_words(&lower, word).is_some())
    };
    if name_is_credential(&words, coins) {
        found.credential.push(Evidence {
            place: Place::Name,
            text: name.to_owned(),
        });
    }
    for (place, prose) in [
        (Place::Title, text("title")),
        (Place::Description, text("description")),
    ] {
        if let Some(sentence) = credential_sentence(prose) {
            found.credential.push(Evidence {
                place,
                text: quote(sentence),
            });
        }
    }
    for field in output_fields(tool) {
        if CREDENTIAL_FIELDS.contains(&words_of_field(&field).as_str()) {
            found.credential.push(Evidence {
                place: Place::Output,
                text: field,
            });
        }
    }
    let reads = words
        .first()
        .is_some_and(|first| READ_VERBS.contains(&first.as_str()));
    if !reads {
        if name_is_destructive(&words) {
            found.destructive.push(Evidence {
                place: Place::Name,
                text: name.to_owned(),
            });
        }
        if let Some(sentence) = destructive_sentence(text("description")) {
            found.destructive.push(Evidence {
                place: Place::Description,
                text: quote(sentence),
            });
        }
    }
    if tool.pointer("/annotations/destructiveHint") == Some(&Value::Bool(true)) {
        found.destructive.push(Evidence {
            place: Place::Annotation,
            text: "destructiveHint".to_owned(),
        });
    }
    found
}

/// Whether a tool's name alone looks credential-exporting (`export_session`, `getApiToken`).
pub fn looks_credential_exporting(tool: &str) -> bool {
    name_is_credential(&words(tool), false)
}

/// `coins`: the description speaks of coins, so a bare `token` in the name is one.
fn name_is_credential(words: &[String], coins: bool) -> bool {
    let is = |word: &String, table: &[&str]| table.contains(&word.as_str());
    let has = |word: &str| words.iter().any(|w| w == word);
    let mints = words.iter().any(|w| is(w, MINTING));
    if !mints
        && (words.iter().any(|w| is(w, NOT_HANDING_OUT))
            || MADE_NOT_HANDED
                .iter()
                .any(|(verb, noun)| has(verb) && has(noun)))
    {
        return false;
    }
    if words
        .iter()
        .any(|w| is(w, CREDENTIAL_NOUNS) && !words_after(words, w, NOT_A_SECRET_AFTER_STRONG))
    {
        return true;
    }
    if words.windows(2).any(|pair| {
        CREDENTIAL_PAIRS.contains(&(pair[0].as_str(), pair[1].as_str()))
            && !words_after(words, &pair[1], NOT_A_SECRET_AFTER_STRONG)
    }) {
        return true;
    }
    if coins {
        return false;
    }
    // `get_secret`, `create_token`, `export_session`: a handing-out verb first and the bare
    // noun last (`get_token_price`, `get_active_sessions_count` are something else).
    match (words.first(), words.last()) {
        (Some(first), Some(last)) if words.len() >= 2 => {
            is(first, EXPORT_VERBS) && is(last, BARE_NOUNS) && !has("active")
        }
        _ => false,
    }
}

/// True when a word of `table` follows `word` in the name (`password_strength`).
fn words_after(words: &[String], word: &str, table: &[&str]) -> bool {
    words
        .iter()
        .skip_while(|w| w.as_str() != word)
        .skip(1)
        .any(|w| table.contains(&w.as_str()))
}

fn name_is_destructive(words: &[String]) -> bool {
    let Some(first) = words.first() else {
        return false;
    };
    let runs_harmless = words_after(words, "run", HARMLESS_RUNS);
    if words
        .iter()
        .any(|w| DESTRUCTIVE_VERBS.contains(&w.as_str()) && !(w == "run" && runs_harmless))
    {
        return true;
    }
    DESTRUCTIVE_FIRST_VERBS.contains(&first.as_str())
        && !words
            .iter()
            .skip(1)
            .any(|w| HARMLESS_OBJECTS.contains(&w.as_str()))
}

/// The first sentence of `prose` that names a secret after a verb that hands one out (and does
/// not say it is withheld, or made by a generator).
fn credential_sentence(prose: &str) -> Option<&str> {
    sentences(prose).find(|sentence| {
        let lower = sentence.to_lowercase();
        let withheld = NEGATIONS_EN
            .iter()
            .any(|word| find_words(&lower, word).is_some())
            || NEGATIONS_ZH.iter().any(|word| lower.contains(word))
            || MADE_NOT_HANDED.iter().any(|(verb, noun)| {
                find_words(&lower, verb).is_some() && find_words(&lower, noun).is_some()
            });
        if withheld {
            return false;
        }
        let en = CREDENTIAL_PHRASES_EN
            .iter()
            .filter_map(|phrase| find_words(&lower, phrase))
            .any(|at| {
                let before = lower[..at].trim_end();
                let taken = TAKEN_BEFORE.iter().any(|words| {
                    before
                        .strip_suffix(words)
                        .is_some_and(|rest| !rest.ends_with(|c: char| c.is_ascii_alphanumeric()))
                });
                !taken
                    && EXPORT_WORDS_EN
                        .iter()
                        .any(|verb| find_words(before, verb).is_some())
            });
        let zh = CREDENTIAL_PHRASES_ZH
            .iter()
            .filter_map(|phrase| lower.find(phrase))
            .any(|at| {
                EXPORT_WORDS_ZH
                    .iter()
                    .any(|verb| lower[..at].contains(verb))
            });
        en || zh
    })
}

/// The first sentence of `prose` that says the tool deletes, sends, pays or overwrites.
fn destructive_sentence(prose: &str) -> Option<&str> {
    sentences(prose).next().filter(|sentence| {
        let lower = sentence.to_lowercase();
        DESTRUCTIVE_PHRASES_EN
            .iter()
            .any(|phrase| find_words(&lower, phrase).is_some())
            || DESTRUCTIVE_PHRASES_ZH
                .iter()
                .any(|phrase| lower.contains(phrase))
    })
}

/// Sentences of a description: split at `.`, `!`, `?`, `;` followed by a space, at their Chinese
/// forms and at line breaks.
fn sentences(prose: &str) -> impl Iterator<Item = &str> {
    let mut rest = prose;
    std::iter::from_fn(move || {
        let rest_trimmed = rest.trim_start();
        if rest_trimmed.is_empty() {
            return None;
        }
        let mut end = rest_trimmed.len();
        let mut chars = rest_trimmed.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let ends = match c {
                '。' | '！' | '？' | '；' | '\n' => true,
                '.' | '!' | '?' | ';' => chars.peek().is_none_or(|(_, next)| next.is_whitespace()),
                _ => false,
            };
            if ends {
                end = at + c.len_utf8();
                break;
            }
        }
        let (sentence, after) = rest_trimmed.split_at(end);
        rest = after;
        Some(sentence.trim())
    })
}

/// Where `phrase` occurs in `text` as whole words (not inside `passwordless`' neighbours).
fn find_words(text: &str, phrase: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() && c.is_ascii();
    text.match_indices(phrase).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// A description sentence shortened for a one-line reason.
fn quote(sentence: &str) -> String {
    let sentence = sentence.trim_end_matches(['.', '。']);
    if sentence.chars().count() <= QUOTE_CHARS {
        return sentence.to_owned();
    }
    let mut short: String = sentence.chars().take(QUOTE_CHARS).collect();
    short.push_str("...");
    short
}

/// The property names of the tool's output schema, one level of nesting deep.
fn output_fields(tool: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    let Some(Value::Object(top)) = tool.pointer("/outputSchema/properties") else {
        return fields;
    };
    for (name, schema) in top {
        fields.push(name.clone());
        if let Some(Value::Object(inner)) = schema.get("properties") {
            fields.extend(inner.keys().cloned());
        }
    }
    fields
}

/// A field name's words joined by spaces: `sessionString` and `session_string` are `session string`.
fn words_of_field(field: &str) -> String {
    words(field).join(" ")
}

/// Lower-case words of `export_session`, `exportSession`, `export-session`, `APIKey`.
fn words(name: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let starts_word = c.is_ascii_uppercase()
            && previous.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(char::is_ascii_lowercase))
            });
        if starts_word {
            spaced.push(' ');
        }
        spaced.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            ' '
        });
    }
    spaced.split_whitespace().map(str::to_owned).collect()
}
