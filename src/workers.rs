//! How many threads run Airlock's async tasks: `AIRLOCK_WORKER_THREADS`, by default one fewer
//! than the CPUs (at least one).
//!
//! Airlock's blocking work runs elsewhere. Each SQLite connection has its own thread (sqlx),
//! argon2 runs in tokio's blocking pool, and stdio upstreams are processes. The workers run the
//! proxy path: a call handed between a few tasks (the agent's connection, the upstream's, the
//! audit writer). On one thread those hand-offs are queue pushes; across threads each one wakes
//! a parked thread. On the 2-core development machine, sharing its CPUs with the agents and the
//! upstream, one worker instead of two measured half the context switches and ~20% less CPU
//! per call, and 10-20% more calls/s one call at a time (`benches/proxy`). The CPU left over
//! serves the database threads and whatever shares the host.

/// The environment variable that sets the number.
pub const ENV: &str = "AIRLOCK_WORKER_THREADS";
/// More than this is a typo, not a machine.
const MOST: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("{ENV}={0:?} is not a number of threads: a whole number from 1 to {MOST}")]
pub struct BadWorkerThreads(String);

/// The number of worker threads: the environment's, or the default.
pub fn worker_threads() -> Result<usize, BadWorkerThreads> {
    let Some(text) = std::env::var_os(ENV) else {
        return Ok(std::thread::available_parallelism()
            .map_or(1, |cpus| cpus.get().saturating_sub(1).max(1)));
    };
    let text = text.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MOST).contains(&n) => Ok(n),
        _ => Err(BadWorkerThreads(text.into_owned())),
    }
}
