//! Failed sign-ins in the audit log, capped: anyone can fail to sign in, and audit events are
//! permanent, so an unauthenticated flood must not grow the log without bound. The first
//! [`PER_HOUR`] failures of each UTC hour are recorded one by one (`sign_in_failed`, with the
//! email typed and the client address); the rest are counted, and one `sign_in_failed_suppressed`
//! event carries their number once the hour is over (or at shutdown). The count lives in this
//! process: each instance caps its own, and a crash loses at most one hour's count (never an
//! event that was recorded).

use std::sync::Mutex;

use crate::store::{Store, StoreError};

/// Failed sign-ins per hour recorded one by one.
pub const PER_HOUR: u32 = 100;

#[derive(Default)]
struct Hour {
    /// Unix time of the hour's start.
    start: i64,
    recorded: u32,
    suppressed: u64,
}

/// This process's count of failed sign-ins in the current hour.
#[derive(Default)]
pub struct FailedSignIns {
    hour: Mutex<Hour>,
}

/// What to write for one failed sign-in.
enum Write {
    Event,
    Nothing,
}

impl FailedSignIns {
    fn hour(&self) -> std::sync::MutexGuard<'_, Hour> {
        self.hour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a failed sign-in for `email` (as typed) from `client`, or counts it when this
    /// hour's events are used up.
    pub async fn record(&self, store: &Store, email: &str, client: &str) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let start = now - now.rem_euclid(3600);
        let (finished, write) = {
            let mut hour = self.hour();
            let finished = (hour.start != start).then(|| {
                std::mem::replace(
                    &mut *hour,
                    Hour {
                        start,
                        ..Hour::default()
                    },
                )
            });
            let write = if hour.recorded < PER_HOUR {
                hour.recorded += 1;
                Write::Event
            } else {
                hour.suppressed += 1;
                Write::Nothing
            };
            (finished, write)
        };
        if let Some(finished) = finished {
            write_suppressed(store, &finished).await?;
        }
        match write {
            Write::Event => {
                let detail = format!("from {client}");
                let actor = crate::domain::Actor::new(email, crate::domain::Via::Dashboard);
                super::record(store, "sign_in_failed", &actor, Some(&detail)).await
            }
            Write::Nothing => Ok(()),
        }
    }

    /// Writes the count of a finished hour (or, with `all`, of the current one too, at shutdown).
    pub async fn flush(&self, store: &Store, all: bool) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let taken = {
            let mut hour = self.hour();
            (hour.suppressed > 0 && (all || hour.start + 3600 <= now)).then(|| {
                let taken = Hour {
                    start: hour.start,
                    recorded: hour.recorded,
                    suppressed: hour.suppressed,
                };
                hour.suppressed = 0;
                taken
            })
        };
        match taken {
            Some(hour) => write_suppressed(store, &hour).await,
            None => Ok(()),
        }
    }
}

async fn write_suppressed(store: &Store, hour: &Hour) -> Result<(), StoreError> {
    if hour.suppressed == 0 {
        return Ok(());
    }
    let clock = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .ok()
            })
            .unwrap_or_default()
    };
    let detail = format!(
        "{} more failed sign-ins from {} to {} were not recorded one by one (at most {PER_HOUR} an hour are)",
        hour.suppressed,
        clock(hour.start),
        clock(hour.start + 3600)
    );
    super::record(
        store,
        "sign_in_failed_suppressed",
        &crate::domain::Actor::system(crate::domain::Via::Dashboard),
        Some(&detail),
    )
    .await
}
