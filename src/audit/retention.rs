//! Keeping the audit log to `[audit] retain_days`, and the SQLite files free of what was removed.
//!
//! Once an hour (and at start), events older than the retention are removed by
//! [`Store::audit_prune`], which keeps the last removed event's number and hash so the chain still
//! verifies, and records the removal as an event of its own. On SQLite, the write-ahead log is
//! also checkpointed and truncated every minute: scrubbed arguments and removed events would
//! otherwise linger in old WAL frames (the main file's freed space is zeroed by `secure_delete`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Backend, Store};

/// How often old events are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the SQLite WAL is truncated.
const WAL_EVERY: Duration = Duration::from_secs(60);

/// Removes events older than `retain_days` (0: none) once; returns how many went.
pub async fn prune_once(store: &Store, retain_days: u32) -> Result<i64, crate::store::StoreError> {
    if retain_days == 0 {
        return Ok(0);
    }
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(retain_days));
    let why = format!("older than {retain_days} days, [audit] retain_days");
    Ok(store
        .audit_prune(&crate::domain::Timestamp::from(cutoff).text(), &why)
        .await?
        .unwrap_or(0))
}

/// Runs retention and WAL truncation until `shutdown`.
pub fn spawn(store: Store, retain_days: u32, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut wal = tokio::time::interval(WAL_EVERY);
        let sqlite = store.backend() == Backend::Sqlite;
        loop {
            tokio::select! {
                _ = prune.tick() => match prune_once(&store, retain_days).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, retain_days, "old audit events removed"),
                    Err(e) => tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot remove old audit events"),
                },
                _ = wal.tick(), if sqlite => {
                    if let Err(e) = store.truncate_wal().await {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot truncate the SQLite WAL");
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
}
