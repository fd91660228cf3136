//! Which agent calls `/mcp`: bearer tokens, compared by their SHA-256 against `[[agent]]` entries
//! of the config and tokens made by `airlock token create`; a token is never logged or echoed.
//! (The `Host` and `Origin` checks every face shares are in `crate::http_guard`.)

use axum::http::{HeaderMap, header};

use crate::config::Config;
use crate::secrets::sha256_hex;
use crate::store::{Store, StoreError};

/// The agent a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub name: crate::domain::AgentName,
    /// The SHA-256 of the token used: rate limits of stateless clients count per token.
    pub token_sha256: String,
    /// What the token's MCP task ids are made with.
    pub task_key: crate::secrets::TaskKey,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing bearer token: send `Authorization: Bearer <token>` (create one with `airlock token create --agent NAME`)"
    )]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("cannot check the token")]
    Store(#[from] StoreError),
}

/// Recently verified tokens, so that a busy agent's every request is not a database query (it
/// was the largest part of Airlock's own cost per call in `benches/proxy.rs`). Entries live
/// `TOKEN_CACHE_TTL`: a token removed from the database stops working within that time, the same
/// bound DESIGN.md allows for decisions made elsewhere. Unknown tokens are never cached, so a new
/// token works at once.
#[derive(Default)]
pub struct TokenCache {
    verified:
        std::sync::Mutex<std::collections::HashMap<String, (AgentIdentity, std::time::Instant)>>,
}

const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// While the database is unreachable, a token verified this recently is still accepted, so agents
/// keep their allowed tools through an outage (a call that needs approval is refused anyway: it
/// cannot be parked without the database).
const TOKEN_CACHE_OUTAGE_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Past this many entries the cache starts over rather than grow.
const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    fn get(&self, digest: &str, max_age: std::time::Duration) -> Option<AgentIdentity> {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verified
            .get(digest)
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(agent, _)| agent.clone())
    }

    fn put(&self, agent: &AgentIdentity) {
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= TOKEN_CACHE_MAX {
            verified.clear();
        }
        verified.insert(
            agent.token_sha256.clone(),
            (agent.clone(), std::time::Instant::now()),
        );
    }
}

/// Finds the agent behind the request's bearer token.
pub async fn authenticate(
    config: &Config,
    store: &Store,
    cache: &TokenCache,
    headers: &HeaderMap,
) -> Result<AgentIdentity, AuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)?;
    let digest = sha256_hex(token.as_bytes());
    // A cached identity has its task key; it is derived (a hash) only when one is made.
    let task_key = || crate::secrets::TaskKey::of_token(token);
    if let Some(agent) = config
        .agents
        .iter()
        .find(|a| a.token_sha256.eq_ignore_ascii_case(&digest))
    {
        return Ok(AgentIdentity {
            name: crate::domain::AgentName::new(agent.name.as_str()),
            token_sha256: digest,
            task_key: task_key(),
        });
    }
    if let Some(agent) = cache.get(&digest, TOKEN_CACHE_TTL) {
        return Ok(agent);
    }
    let found = match store.agent_by_token(&digest).await {
        Ok(found) => found,
        Err(e) => {
            if let Some(agent) = cache.get(&digest, TOKEN_CACHE_OUTAGE_TTL) {
                tracing::warn!(agent = %agent.name, error = %e, "database unreachable; accepting a recently verified token");
                return Ok(agent);
            }
            return Err(e.into());
        }
    };
    match found {
        Some(agent) => {
            let agent = AgentIdentity {
                name: agent.name,
                token_sha256: digest,
                task_key: task_key(),
            };
            cache.put(&agent);
            Ok(agent)
        }
        None => Err(AuthError::Invalid),
    }
}
