//! Secrets: tokens handed to agents and reviewers (generated from the OS's CSPRNG, shown once,
//! stored only as their SHA-256 in hex), and reviewers' passwords (stored only as argon2id hashes,
//! in PHC string form so the parameters travel with the hash).

use sha2::{Digest, Sha256};

/// A new random token with a recognisable prefix (`alk_`), so leaked tokens are easy to grep for.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("alk_{}", hex(&bytes)))
}

/// A new single-use link secret (`rl_` and 32 random bytes in hex): review and set-password links.
pub fn generate_link_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("rl_{}", hex(&bytes)))
}

/// The key an agent token's MCP task ids are made with: derived from the token itself (in memory
/// only, like the token while its request is served), so the store, which keeps only the ids'
/// SHA-256, cannot make or list them, and yet every instance can list an agent's tasks.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskKey(String);

impl TaskKey {
    pub fn of_token(token: &str) -> Self {
        Self(sha256_hex(format!("airlock task ids\n{token}").as_bytes()))
    }

    /// The id of the task this token has for call `call` (one per token and call): `task_` and
    /// 64 hex digits, unguessable without the token.
    pub fn task_id(&self, call: &str) -> String {
        format!(
            "task_{}",
            sha256_hex(format!("{}\n{call}", self.0).as_bytes())
        )
    }
}

impl std::fmt::Debug for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskKey(..)")
    }
}

/// An unguessable id for an MCP session (visible ASCII, as the spec asks).
pub fn generate_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// A new password for a person to type: five groups of four letters and digits (about 103 bits),
/// without the look-alikes 0/o and 1/l.
pub fn generate_password() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)?;
    let mut password = String::with_capacity(24);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            password.push('-');
        }
        password.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    Ok(password)
}

/// The shortest password Airlock accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the system's random number generator failed")]
    Random(#[from] getrandom::Error),
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// The argon2id hash (PHC string, default parameters: 19 MiB, 2 passes) of `password`. Slow by
/// design: call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether `password` matches the PHC `hash`; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Constant-time comparison of two tokens, so a guess learns nothing from timing.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hash_to_64_hex_digits() {
        let a = generate_token().expect("rng");
        let b = generate_token().expect("rng");
        assert_ne!(a, b);
        assert!(a.starts_with("alk_") && a.len() == 68);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify_only_themselves() {
        let password = generate_password().expect("rng");
        assert_eq!(password.len(), 24);
        let hash = hash_password(&password).expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&password, &hash));
        assert!(!verify_password("wrong password", &hash));
        assert!(!verify_password(&password, "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }
}
