//! Giving memory back to the system. glibc's allocator keeps what a burst freed (a thousand
//! requests held open, ten thousand calls parked at once) inside its per-thread arenas for
//! reuse, so a quiet server's resident memory stays at its busiest; `malloc_trim` hands the
//! free pages back. Done every few seconds, it costs a walk over the arenas.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often freed memory is handed back.
const EVERY: Duration = Duration::from_secs(10);

/// Hands freed memory back every [`EVERY`] until `stop` (with glibc; elsewhere nothing to do).
pub fn spawn_trimmer(stop: CancellationToken) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            // The walk takes the allocator's locks: off the async workers, so the proxy path
            // does not wait for it.
            if tokio::task::spawn_blocking(trim).await.is_err() {
                return;
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` only returns free pages to the system; it takes the allocator's
    // locks itself and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
