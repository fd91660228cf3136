//! Secret tokens handed to agents (and later reviewers): generated from the OS's CSPRNG, shown once,
//! stored only as their SHA-256 in hex.

use sha2::{Digest, Sha256};

/// A new random token with a recognisable prefix (`alk_`), so leaked tokens are easy to grep for.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("alk_{}", hex(&bytes)))
}

/// An unguessable id for an MCP session (visible ASCII, as the spec asks).
pub fn generate_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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
}
