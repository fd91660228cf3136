//! The history page's chart: decisions per day over the last [`DAYS`] days, stacked by kind.
//!
//! Counting a fortnight of decisions reads every one of them (a million calls over three months
//! put 150,000 in the window, over 100 ms on SQLite), so the days before today are counted once
//! per day and kept ([`DecisionChart`]); today's are counted again when a call has changed since
//! (every change writes a call history row), an index range of one day. A past day hardly changes: a call is decided once, and what it becomes after its
//! approval (forwarding, completed, failed) stays in the same kind. Two things do move a past
//! day's figures: an approved call its agent never picks up becomes unclaimed, and a purge
//! (`[retention]`) takes calls out. So kept counts older than [`RECOUNT`] are counted again in
//! the background, the page showing the kept ones meanwhile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::{Date, OffsetDateTime};

use crate::domain::{CallStatus, Timestamp};
use crate::store::{Store, StoreError};

/// Days the chart covers, today included.
pub const DAYS: i64 = 14;
/// How long kept counts are shown before they are counted again.
const RECOUNT: Duration = Duration::from_secs(3600);
/// Chart geometry: the plot's height and one day's width, in SVG units.
const HEIGHT: i64 = 120;
const DAY_WIDTH: i64 = 40;

/// The bar kinds, bottom up: a name and a colour class.
const KINDS: [(&str, &str); 3] = [
    ("approved", "approved"),
    ("rejected", "rejected"),
    ("not decided", "muted"),
];

/// Counts per kind of [`KINDS`].
type Counts = [i64; 3];

/// Which of [`KINDS`] a decided call counts as.
fn kind(status: CallStatus) -> Option<usize> {
    match status {
        CallStatus::Approved
        | CallStatus::Forwarding
        | CallStatus::Completed
        | CallStatus::Failed
        | CallStatus::OutcomeUnknown => Some(0),
        CallStatus::Rejected => Some(1),
        CallStatus::Expired
        | CallStatus::Unclaimed
        | CallStatus::Withdrawn
        | CallStatus::Abandoned => Some(2),
        CallStatus::Pending => None,
    }
}

/// One day's column: stacked bars in SVG coordinates.
pub struct ChartDay {
    pub x: i64,
    pub label: String,
    pub bars: Vec<ChartBar>,
    pub total: i64,
}

pub struct ChartBar {
    pub y: i64,
    pub height: i64,
    pub class: &'static str,
    pub title: String,
}

/// The counts of the days before today, kept from the first page that asked for them today.
#[derive(Default)]
pub struct DecisionChart {
    kept: Mutex<Option<Kept>>,
    /// Today's counts and the newest call history row they saw: while no call has changed
    /// since, they stand.
    today: Mutex<Option<(Date, i64, Counts)>>,
}

struct Kept {
    /// The day they were counted on: today then, the last of the chart's days.
    today: Date,
    counted: Instant,
    /// The [`DAYS`]` - 1` days before `today`, oldest first.
    past: Vec<Counts>,
    /// A recount is running.
    recounting: bool,
}

impl DecisionChart {
    /// The chart as of now.
    pub async fn days(self: &Arc<Self>, store: &Store) -> Result<Vec<ChartDay>, StoreError> {
        let today = OffsetDateTime::now_utc().date();
        let first = today - time::Duration::days(DAYS - 1);
        let mut counts = match self.kept(today, store) {
            Some(past) => past,
            None => {
                let past = count(store, first, today).await?;
                self.keep(today, past.clone());
                past
            }
        };
        counts.push(self.today(store, today).await?);
        Ok(draw(first, &counts))
    }

    /// Today's counts, counted again only when some call changed since they were.
    async fn today(&self, store: &Store, today: Date) -> Result<Counts, StoreError> {
        let newest = store.latest_event().await?;
        let kept = self.today.lock().ok().and_then(|slot| {
            slot.filter(|(day, seen, _)| *day == today && *seen == newest)
                .map(|(_, _, counts)| counts)
        });
        if let Some(counts) = kept {
            return Ok(counts);
        }
        let counts = count(store, today, today + time::Duration::days(1))
            .await?
            .first()
            .copied()
            .unwrap_or_default();
        if let Ok(mut slot) = self.today.lock() {
            *slot = Some((today, newest, counts));
        }
        Ok(counts)
    }

    /// Today's kept counts, if any; once they are older than [`RECOUNT`], a recount starts.
    fn kept(self: &Arc<Self>, today: Date, store: &Store) -> Option<Vec<Counts>> {
        let mut slot = self.kept.lock().ok()?;
        let kept = slot.as_mut().filter(|kept| kept.today == today)?;
        if kept.counted.elapsed() > RECOUNT && !kept.recounting {
            kept.recounting = true;
            let (chart, store) = (Arc::clone(self), store.clone());
            tokio::spawn(async move {
                let first = today - time::Duration::days(DAYS - 1);
                match count(&store, first, today).await {
                    Ok(past) => chart.keep(today, past),
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "recounting the chart failed");
                        if let Ok(mut slot) = chart.kept.lock()
                            && let Some(kept) = slot.as_mut()
                        {
                            kept.recounting = false;
                        }
                    }
                }
            });
        }
        Some(kept.past.clone())
    }

    /// Keeps `past` as the counts of the days before `today`, unless a later day's are kept
    /// already (a recount that finished after midnight).
    fn keep(&self, today: Date, past: Vec<Counts>) {
        if let Ok(mut slot) = self.kept.lock()
            && slot.as_ref().is_none_or(|kept| kept.today <= today)
        {
            *slot = Some(Kept {
                today,
                counted: Instant::now(),
                past,
                recounting: false,
            });
        }
    }
}

/// The counts of each day from `first` up to (not including) `end`.
async fn count(store: &Store, first: Date, end: Date) -> Result<Vec<Counts>, StoreError> {
    let days: Vec<String> = std::iter::successors(Some(first), |d| d.next_day())
        .take_while(|d| *d < end)
        .map(|d| d.to_string())
        .collect();
    let mut counts = vec![Counts::default(); days.len()];
    let at_midnight = |d: Date| Timestamp::from(d.midnight().assume_utc());
    for (day, status, n) in store
        .decisions_per_day(at_midnight(first), at_midnight(end))
        .await?
    {
        if let (Some(at), Some(kind)) = (days.iter().position(|d| *d == day), kind(status)) {
            counts[at][kind] += n;
        }
    }
    Ok(counts)
}

/// The columns for `counts`, one per day from `first`.
fn draw(first: Date, counts: &[Counts]) -> Vec<ChartDay> {
    let most = counts
        .iter()
        .map(|c| c.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    std::iter::successors(Some(first), |d| d.next_day())
        .zip(counts)
        .zip(0..)
        .map(|((day, counts), i)| {
            let day = day.to_string();
            let mut top = HEIGHT;
            let bars = counts
                .iter()
                .zip(KINDS)
                .filter(|(count, _)| **count > 0)
                .map(|(count, (name, class))| {
                    let height = (count * HEIGHT / most).max(2);
                    top -= height;
                    ChartBar {
                        y: top,
                        height,
                        class,
                        title: format!("{day}: {count} {name}"),
                    }
                })
                .collect();
            ChartDay {
                x: i * DAY_WIDTH,
                label: day.get(5..).unwrap_or(&day).to_owned(),
                total: counts.iter().sum(),
                bars,
            }
        })
        .collect()
}
