//! Points in time. The clock is always an argument: nothing in `slis` reads the system time.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since the Unix epoch (UTC). Spans carry nanosecond timestamps, so does this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    pub const fn from_unix_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    pub const fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    pub const fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// The start of the UTC calendar month holding this instant.
    pub fn month_start(self) -> Timestamp {
        use chrono::{Datelike, TimeZone, Utc};
        let dt = Utc.timestamp_nanos(self.0);
        let start = Utc
            .with_ymd_and_hms(dt.year(), dt.month(), 1, 0, 0, 0)
            .single()
            .expect("the first of a month at midnight UTC always exists");
        Timestamp::from_unix_secs(start.timestamp())
    }
}

/// Saturating: timestamps far outside the i64 range clamp instead of wrapping.
impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_nanos(rhs)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_nanos(rhs)))
    }
}

/// Time from `rhs` to `self`, zero when `rhs` is later.
impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, rhs: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(rhs.0).max(0) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{TimeZone, Utc};
        let dt = Utc.timestamp_nanos(self.0);
        write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// A duration in nanoseconds, saturating at `i64::MAX` (292 years).
pub(crate) fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_start_is_midnight_of_the_first() {
        // 2026-02-17T13:45:10Z
        let t = Timestamp::from_unix_secs(1_771_335_910);
        assert_eq!(t.month_start().to_string(), "2026-02-01T00:00:00.000Z");
        assert_eq!(t.month_start().month_start(), t.month_start());
    }

    #[test]
    fn subtraction_saturates_at_zero() {
        let a = Timestamp::from_unix_secs(10);
        let b = Timestamp::from_unix_secs(20);
        assert_eq!(b - a, Duration::from_secs(10));
        assert_eq!(a - b, Duration::ZERO);
    }
}
