//! Password checks and hashes for the reviewer face. Argon2id is slow and takes 19 MiB per run by
//! design, so at most one runs per CPU at a time (off the async threads); a request that cannot get
//! a turn within `WAIT_FOR_TURN` is told Airlock is busy instead of queueing without bound, so a
//! flood of sign-in attempts costs a bounded amount of memory and CPU.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::secrets::{self, PasswordError};

/// How long a password check waits for a free turn before giving up.
const WAIT_FOR_TURN: Duration = Duration::from_secs(10);

pub struct PasswordWork {
    turns: Semaphore,
}

/// No turn was free in time.
#[derive(Debug)]
pub struct Busy;

impl Default for PasswordWork {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            turns: Semaphore::new(cpus),
        }
    }
}

impl PasswordWork {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let _turn = tokio::time::timeout(WAIT_FOR_TURN, self.turns.acquire())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(work).await.map_err(|_| Busy)
    }

    /// Whether `password` matches the stored `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        self.run(move || secrets::verify_password(&password, &hash))
            .await
    }

    /// The argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<Result<String, PasswordError>, Busy> {
        self.run(move || secrets::hash_password(&password)).await
    }
}
