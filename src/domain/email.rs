//! Reviewers are named by their email address.

/// A plausible email address: one `@` with text on both sides, no spaces or control characters.
pub fn is_plausible_email(email: &str) -> bool {
    email.len() <= 254
        && email.split('@').count() == 2
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_one_at_and_no_spaces() {
        assert!(is_plausible_email("alice@example.org"));
        for bad in [
            "alice",
            "@example.org",
            "alice@",
            "a@b@c",
            "al ice@example.org",
            "a\n@b",
        ] {
            assert!(!is_plausible_email(bad), "{bad:?}");
        }
    }
}
