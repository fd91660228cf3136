//! Signed review links: an email's Approve and Reject links carry a token bound to the call, the
//! reviewer, the action, the argument digest the email showed, and an expiry (the call's), signed
//! with HMAC-SHA256 under a server key. The key is made once and kept in the database, so every
//! instance on it signs and checks alike. A token is good for one use (its nonce is recorded when
//! the decision is made); GET only shows a confirmation page, since mail scanners fetch links.
//!
//! Token: `base64url(JSON claims) "." base64url(HMAC(key, first part))`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::{Store, StoreError};

/// The name of the signing key in `server_secrets`.
const KEY_NAME: &str = "review_link_key";

/// What a review link may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkAction {
    Approve,
    Reject,
}

impl LinkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// What a link is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The call's id.
    pub call: String,
    /// The reviewer's email: the link decides as this user.
    pub reviewer: String,
    pub action: LinkAction,
    /// The argument digest the email showed.
    pub digest: String,
    /// Unix seconds after which the link is void.
    pub expires: i64,
    /// Random; recorded when the link is used.
    pub nonce: String,
}

/// Why a token is not a valid link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLink {
    /// Not a token, or its signature does not match: edited, cut, or made elsewhere.
    Tampered,
    Expired,
}

pub struct LinkSigner {
    key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkKeyError {
    #[error("cannot load the review link key")]
    Store(#[from] StoreError),
    #[error("the system's random number generator failed")]
    Random(#[from] getrandom::Error),
}

impl LinkSigner {
    /// The signer with the database's key, making the key on first use.
    pub async fn load(store: &Store) -> Result<Self, LinkKeyError> {
        let candidate = crate::secrets::generate_token()?;
        let key = store.server_secret(KEY_NAME, &candidate).await?;
        Ok(Self {
            key: key.into_bytes(),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &LinkClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of a genuine, unexpired token. (Whether it was used is the store's business.)
    pub fn verify(&self, token: &str) -> Result<LinkClaims, BadLink> {
        let (payload, signature) = token.split_once('.').ok_or(BadLink::Tampered)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| BadLink::Tampered)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| BadLink::Tampered)?;
        let claims: LinkClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(BadLink::Tampered)?;
        if claims.expires < time::OffsetDateTime::now_utc().unix_timestamp() {
            return Err(BadLink::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LinkSigner {
        LinkSigner {
            key: b"test key".to_vec(),
        }
    }

    fn claims(expires: i64) -> LinkClaims {
        LinkClaims {
            call: "c1".to_owned(),
            reviewer: "alice@example.org".to_owned(),
            action: LinkAction::Approve,
            digest: "ab".repeat(32),
            expires,
            nonce: "n1".to_owned(),
        }
    }

    #[test]
    fn a_signed_link_verifies_and_any_change_breaks_it() {
        let later = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
        let token = signer().sign(&claims(later));
        assert_eq!(signer().verify(&token), Ok(claims(later)));

        let (payload, signature) = token.split_once('.').expect("two parts");
        let mut edited = claims(later);
        edited.action = LinkAction::Reject;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&edited).expect("json"));
        assert_eq!(
            signer().verify(&format!("{forged_payload}.{signature}")),
            Err(BadLink::Tampered)
        );
        assert_eq!(signer().verify(payload), Err(BadLink::Tampered));
        let other = LinkSigner {
            key: b"other key".to_vec(),
        };
        assert_eq!(other.verify(&token), Err(BadLink::Tampered));
        let past = signer().sign(&claims(later - 120));
        assert_eq!(signer().verify(&past), Err(BadLink::Expired));
    }
}
