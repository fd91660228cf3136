//! How names and values are read: names folded and cut into words, runs of characters that look
//! random, passwords in URLs.

use super::MASK;

/// A name in lower case without separators (`-`, `_`, spaces, ...), as names are compared.
pub(super) fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of a name, in lower case: split at separators and where lower case meets upper
/// (`pinCode` is `pin`, `code`; `X-Api-Key` is `x`, `api`, `key`).
pub(super) fn words(name: &str) -> Vec<String> {
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
pub(super) fn plain_word(text: &str) -> bool {
    text.chars().count() <= 24
        && text
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '.' | '_'))
}

/// The characters of a run that may be key material: the base64 and base64url alphabets.
pub(super) fn is_run_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | '-' | '_')
}

/// Whether `text` holds a run that looks like key material (see [`random_run`]).
pub(super) fn has_random_run(text: &str) -> bool {
    text.split(|c: char| !is_run_char(c)).any(random_run)
}

/// A run that looks like key material: 20 or more characters of the base64 alphabets mixing
/// upper case, lower case and digits and changing between them at least every third character
/// (random text changes about two times in three; words and identifiers rarely), or 64 or more
/// hex digits.
pub(super) fn random_run(run: &str) -> bool {
    random_base64(run) || (run.len() >= 64 && run.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `text` with the password of every `scheme://user:password@host` in it masked.
pub(super) fn mask_url_passwords(text: &str) -> String {
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
