//! Signed checkpoints: the chain's head (number and hash) at a moment, signed with an Ed25519 key
//! from the config (`[audit] signing_key_file`). A JSON-lines export ends with one, so whoever
//! holds the export and the public key can check offline that the file is the log as it was, from
//! its first kept event to that head, without access to the database.
//!
//! The checkpoint also names the export's filter, how many events the file holds and the SHA-256
//! of their hashes in file order, so a filtered export, whose chain has gaps by design, cannot
//! lose, gain or change a line either.
//!
//! The key file holds the 32-byte Ed25519 seed in hex (`airlock audit keygen` writes one and
//! prints the public key). What is signed is the text `airlock-audit-checkpoint` followed by the
//! fields, one per line, in the order of [`Checkpoint::signed_text`].

use std::path::Path;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The last line of a JSON-lines export: `{"checkpoint": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointLine {
    pub checkpoint: Checkpoint,
}

/// The chain's head, where the kept log starts, and (when a key is configured) a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The newest event's number and hash.
    pub seq: i64,
    pub hash: String,
    /// The last pruned event's number and hash (0 and the genesis hash when nothing was pruned):
    /// the first kept event follows it.
    pub pruned_seq: i64,
    pub pruned_hash: String,
    pub at: String,
    /// The export's filters (`tool=get_chats agent=claude`), empty for the whole log.
    pub filter: String,
    /// How many events the file holds, and the SHA-256 of their `hash` fields in file order,
    /// each followed by a newline.
    pub events: u64,
    pub events_sha256: String,
    /// Hex Ed25519 public key and signature; absent without `[audit] signing_key_file`.
    pub public_key: Option<String>,
    pub signature: Option<String>,
}

impl Checkpoint {
    /// The text the signature covers.
    pub fn signed_text(&self) -> String {
        format!(
            "airlock-audit-checkpoint\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.seq,
            self.hash,
            self.pruned_seq,
            self.pruned_hash,
            self.at,
            serde_json::Value::String(self.filter.clone()),
            self.events,
            self.events_sha256
        )
    }

    /// Whether the signature is valid for the public key it names; `Ok(false)` when unsigned.
    pub fn signature_holds(&self) -> Result<bool, KeyError> {
        let (Some(public_key), Some(signature)) = (&self.public_key, &self.signature) else {
            return Ok(false);
        };
        let key = hex::decode(public_key).map_err(|_| KeyError::Format)?;
        let signature = hex::decode(signature).map_err(|_| KeyError::Format)?;
        Ok(UnparsedPublicKey::new(&ED25519, key)
            .verify(self.signed_text().as_bytes(), &signature)
            .is_ok())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the audit signing key {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not an Ed25519 key: expected 64 hex digits (a 32-byte seed, as `airlock audit keygen` writes)"
    )]
    Format,
    #[error("cannot make a key: {0}")]
    Random(#[from] getrandom::Error),
}

/// The key checkpoints are signed with.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    seed: Vec<u8>,
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        Self::from_seed(&self.seed).unwrap_or_else(|_| unreachable!("the seed was valid once"))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a hex seed from `path` (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_hex(text.trim())
    }

    pub fn from_hex(seed: &str) -> Result<Self, KeyError> {
        let seed = hex::decode(seed).map_err(|_| KeyError::Format)?;
        Self::from_seed(&seed)
    }

    fn from_seed(seed: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError::Format)?;
        Ok(Self {
            pair,
            seed: seed.to_vec(),
        })
    }

    /// The key `[audit] signing_key_file` names, if it names one.
    pub fn configured(config: &crate::config::AuditConfig) -> Result<Option<Self>, KeyError> {
        config
            .signing_key_file
            .as_deref()
            .map(Self::load)
            .transpose()
    }

    /// A new random key, as its hex seed.
    pub fn generate() -> Result<String, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(hex::encode(seed))
    }

    /// The hex public key a verifier pins.
    pub fn public_key(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// Fills in `checkpoint`'s public key and signature.
    pub fn sign(&self, checkpoint: &mut Checkpoint) {
        checkpoint.public_key = Some(self.public_key());
        let signature = self.pair.sign(checkpoint.signed_text().as_bytes());
        checkpoint.signature = Some(hex::encode(signature.as_ref()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            seq: 7,
            hash: "ab".repeat(32),
            pruned_seq: 0,
            pruned_hash: super::super::GENESIS.to_owned(),
            at: "2026-11-25T14:05:00.000Z".to_owned(),
            filter: String::new(),
            events: 7,
            events_sha256: "cd".repeat(32),
            public_key: None,
            signature: None,
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_hex(&SigningKey::generate().expect("a seed")).expect("a key");
        let mut signed = checkpoint();
        assert!(!signed.signature_holds().expect("unsigned reads as false"));
        key.sign(&mut signed);
        assert!(signed.signature_holds().expect("well formed"));
        let mut moved = signed.clone();
        moved.seq = 6;
        assert!(!moved.signature_holds().expect("well formed"));
        let mut fewer = signed.clone();
        fewer.events = 6;
        assert!(!fewer.signature_holds().expect("well formed"));
        let other = SigningKey::from_hex(&"11".repeat(32)).expect("a key");
        let mut foreign = signed.clone();
        foreign.public_key = Some(other.public_key());
        assert!(!foreign.signature_holds().expect("well formed"));
        assert!(matches!(SigningKey::from_hex("zz"), Err(KeyError::Format)));
    }
}
