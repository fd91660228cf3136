//! Length limits on what people send the reviewer face, checked while a form or query is read and
//! before any other work: an oversized field is refused (400) before it reaches the database, a
//! password hash, a page or the log. Whatever is stored (emails, token labels, reasons) has a limit
//! that fits its use; everything else gets a generous one, so no field is unbounded.
//!
//! Bodies themselves are bounded too ([`MAX_BODY_BYTES`] on the whole face), so a field cannot be
//! large even before it is read.

use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The largest request body the reviewer face reads (forms and API calls are small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An email address (RFC 5321's path limit).
pub const EMAIL: usize = 254;
/// A password as typed.
pub const PASSWORD: usize = 1024;
/// A label on an API token.
pub const LABEL: usize = 100;
/// A short choice (`approve`, a role, a digest, a CSRF token).
pub const CHOICE: usize = 128;
/// Anything else: a search, a filter, a page to return to.
pub const OTHER: usize = 2048;

/// A string field of at most `MAX` bytes; longer ones fail to deserialize with a message that says
/// so (and never repeats the value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<const MAX: usize> Deref for Text<MAX> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> serde::Serialize for Text<MAX> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bounded<const MAX: usize>;

        impl<const MAX: usize> Visitor<'_> for Bounded<MAX> {
            type Value = Text<MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "text of at most {MAX} bytes")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<MAX>, E> {
                if v.len() > MAX {
                    Err(E::custom(format_args!(
                        "a field is too long ({} bytes; at most {MAX})",
                        v.len()
                    )))
                } else {
                    Ok(Text(v.to_owned()))
                }
            }
        }

        deserializer.deserialize_str(Bounded::<MAX>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Form {
        #[serde(default)]
        email: Text<EMAIL>,
    }

    #[test]
    fn a_field_over_its_limit_is_refused_without_repeating_it() {
        let ok: Form = serde_urlencoded::from_str("email=a%40b.org").expect("short");
        assert_eq!(&*ok.email, "a@b.org");
        let long = "x".repeat(EMAIL + 1);
        let Err(error) = serde_urlencoded::from_str::<Form>(&format!("email={long}")) else {
            panic!("a long field was read");
        };
        assert!(
            error
                .to_string()
                .contains("too long (255 bytes; at most 254)")
        );
        assert!(!error.to_string().contains("xxxx"));
        let empty: Form = serde_urlencoded::from_str("").expect("defaults");
        assert!(empty.email.is_empty());
    }
}
