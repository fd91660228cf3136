//! Time as Airlock stores it: RFC 3339 UTC text with exactly three fractional digits
//! (`2026-11-25T14:05:00.000Z`), so that comparing two stored times as text (`expires_at < $1`)
//! orders them as times on both database engines.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::stored_as_text;

/// A moment, UTC, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// Text that is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time")]
pub struct BadTime(pub String);

const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(OffsetDateTime::now_utc())
    }

    /// The time `text` spells in RFC 3339 (any offset, any precision), truncated to the
    /// millisecond.
    pub fn parse(text: &str) -> Result<Self, BadTime> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Self::from)
            .map_err(|_| BadTime(text.to_owned()))
    }

    pub fn get(self) -> OffsetDateTime {
        self.0
    }

    /// The stored text.
    pub fn text(self) -> String {
        self.to_string()
    }

    /// The time of day, `HH:MM` (UTC), as messages show an expiry.
    pub fn clock(self) -> String {
        self.0
            .format(time::macros::format_description!("[hour]:[minute]"))
            .unwrap_or_default()
    }

    /// `2026-12-01 14:05 UTC`, for sentences.
    pub fn minute(self) -> String {
        self.0
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .unwrap_or_default()
    }

    /// Seconds from `self` to `later` (negative when `later` is earlier).
    pub fn seconds_until(self, later: Timestamp) -> f64 {
        (later.0 - self.0).as_seconds_f64()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let millis = at.millisecond();
        Self(at.replace_millisecond(millis).unwrap_or(at))
    }
}

impl std::ops::Add<time::Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, by: time::Duration) -> Timestamp {
        Self::from(self.0 + by)
    }
}

impl std::ops::Sub<time::Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, by: time::Duration) -> Timestamp {
        Self::from(self.0 - by)
    }
}

impl std::ops::Sub for Timestamp {
    type Output = time::Duration;

    fn sub(self, earlier: Timestamp) -> time::Duration {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(FORMAT) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

stored_as_text!(Timestamp, |at| at.text(), |text| {
    Timestamp::parse(&text).map_err(|e| e.to_string())
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_have_one_width_and_read_back_as_they_were() {
        let at = Timestamp::parse("2026-11-25T15:05:00.123456+01:00").expect("a time");
        assert_eq!(at.text(), "2026-11-25T14:05:00.123Z");
        assert_eq!(Timestamp::parse(&at.text()), Ok(at));
        let later = at + time::Duration::seconds(90);
        assert!(at.text() < later.text(), "text order is time order");
        assert_eq!(at.seconds_until(later), 90.0);
        assert_eq!(later.clock(), "14:06");
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
