//! Service level objectives: a journey, what counts as good, an objective and a period.

use std::fmt;
use std::time::Duration;

use crate::duration::format_exact;
pub use crate::sli::SliKind;
use crate::time::Timestamp;
use crate::window::Window;

/// The compliance period an objective is measured over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// A window of fixed length ending now, e.g. 28 days.
    Rolling(Duration),
    /// From the first of the current UTC month until now.
    CalendarMonth,
}

impl Period {
    /// The length the alert windows scale against: a calendar month counts as 30 days.
    pub const CALENDAR_MONTH_NOMINAL: Duration = Duration::from_secs(30 * 86_400);

    pub fn nominal(&self) -> Duration {
        match self {
            Period::Rolling(d) => *d,
            Period::CalendarMonth => Self::CALENDAR_MONTH_NOMINAL,
        }
    }

    /// The window holding this period's events at `now`.
    pub fn window(&self, now: Timestamp) -> Window {
        match self {
            Period::Rolling(d) => Window::Last(*d),
            Period::CalendarMonth => Window::Since(now.month_start()),
        }
    }

    /// Time left until the period's budget resets: the rest of the month for a calendar period;
    /// the whole length for a rolling one (events keep rolling off, so it never resets at once).
    pub fn length_at(&self, now: Timestamp) -> Duration {
        match self {
            Period::Rolling(d) => *d,
            Period::CalendarMonth => next_month_start(now) - now.month_start(),
        }
    }

    /// The longest stretch of history this period can ask for.
    pub fn max_span(&self) -> Duration {
        match self {
            Period::Rolling(d) => *d,
            Period::CalendarMonth => Duration::from_secs(31 * 86_400),
        }
    }
}

fn next_month_start(now: Timestamp) -> Timestamp {
    // The 32nd day after a month start always lies in the next month.
    (now.month_start() + Duration::from_secs(32 * 86_400)).month_start()
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Rolling(d) => write!(f, "rolling {}", format_exact(*d)),
            Period::CalendarMonth => f.write_str("calendar month"),
        }
    }
}

/// A validated SLO. Indices refer to the validated journey and policy lists.
#[derive(Clone, Debug)]
pub struct Slo {
    pub name: String,
    pub journey: usize,
    pub sli: SliKind,
    /// In (0, 1), e.g. 0.999.
    pub objective: f64,
    pub period: Period,
    pub policy: usize,
    pub labels: Vec<(String, String)>,
}

impl Slo {
    /// The share of events allowed to be bad.
    pub fn error_budget(&self) -> f64 {
        1.0 - self.objective
    }

    /// The budget as allowed bad events per million.
    pub fn budget_per_million(&self) -> f64 {
        (self.error_budget() * 1e6 * 1e6).round() / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_month_lengths() {
        let feb = Timestamp::from_unix_secs(1_771_335_910); // 2026-02-17
        assert_eq!(Period::CalendarMonth.length_at(feb), Duration::from_secs(28 * 86_400));
        let jan = Timestamp::from_unix_secs(1_768_000_000); // 2026-01-09
        assert_eq!(Period::CalendarMonth.length_at(jan), Duration::from_secs(31 * 86_400));
        assert_eq!(
            Period::CalendarMonth.window(feb),
            Window::Since(Timestamp::from_unix_secs(1_769_904_000))
        );
    }
}
