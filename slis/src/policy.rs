//! Alert policies: tables of (long window, short window, burn factor, severity). Data, not code.

use std::fmt;
use std::time::Duration;

use crate::slo::Period;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Fire when the burn rate exceeds `factor` over both windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowRule {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
    pub severity: Severity,
}

/// The Google SRE Workbook's multiwindow, multi-burn-rate table ("Alerting on SLOs", table 5-8),
/// written for a 30-day period: (long, short, burn factor, severity).
pub const WORKBOOK: &[(Duration, Duration, f64, Severity)] = &[
    (
        Duration::from_secs(3_600),
        Duration::from_secs(300),
        14.4,
        Severity::Page,
    ),
    (
        Duration::from_secs(6 * 3_600),
        Duration::from_secs(1_800),
        6.0,
        Severity::Page,
    ),
    (
        Duration::from_secs(3 * 86_400),
        Duration::from_secs(6 * 3_600),
        1.0,
        Severity::Ticket,
    ),
];

/// The period the Workbook's windows were written for.
pub const WORKBOOK_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// The low-traffic guard of the default policy: below this many events in the long window, no alert.
pub const DEFAULT_MIN_EVENTS: u64 = 100;

#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    /// The period `rules` are written for; an SLO with another period scales the windows by
    /// `slo.period / reference_period` (factors stay: they are shares of the budget per window).
    pub reference_period: Duration,
    /// No alert fires while the long window holds fewer events than this.
    pub min_events: u64,
    pub rules: Vec<WindowRule>,
}

impl Policy {
    pub const DEFAULT_NAME: &'static str = "default";

    /// The SRE Workbook policy (DESIGN.md), used by every SLO that names no policy.
    pub fn workbook() -> Policy {
        Policy {
            name: Self::DEFAULT_NAME.to_owned(),
            reference_period: WORKBOOK_PERIOD,
            min_events: DEFAULT_MIN_EVENTS,
            rules: WORKBOOK
                .iter()
                .map(|&(long, short, factor, severity)| WindowRule {
                    long,
                    short,
                    factor,
                    severity,
                })
                .collect(),
        }
    }

    /// The rules with windows scaled to an SLO's period.
    pub fn rules_for(&self, period: &Period) -> impl Iterator<Item = WindowRule> + '_ {
        let scale = period.nominal().as_secs_f64() / self.reference_period.as_secs_f64();
        self.rules.iter().map(move |r| WindowRule {
            long: scale_duration(r.long, scale),
            short: scale_duration(r.short, scale),
            ..*r
        })
    }
}

/// Scales to whole seconds, so scaled windows print and align cleanly.
fn scale_duration(d: Duration, scale: f64) -> Duration {
    if scale == 1.0 {
        return d;
    }
    Duration::from_secs((d.as_secs_f64() * scale).round().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_scale_with_the_period() {
        let p = Policy::workbook();
        let days = |d: u64| Period::Rolling(Duration::from_secs(d * 86_400));
        let got: Vec<_> = p
            .rules_for(&days(30))
            .map(|r| (r.long.as_secs(), r.short.as_secs()))
            .collect();
        assert_eq!(got, [(3_600, 300), (21_600, 1_800), (259_200, 21_600)]);
        let got: Vec<_> = p
            .rules_for(&days(28))
            .map(|r| (r.long.as_secs(), r.short.as_secs()))
            .collect();
        assert_eq!(got, [(3_360, 280), (20_160, 1_680), (241_920, 20_160)]);
        let got: Vec<_> = p
            .rules_for(&days(7))
            .map(|r| (r.long.as_secs(), r.short.as_secs()))
            .collect();
        assert_eq!(got, [(840, 70), (5_040, 420), (60_480, 5_040)]);
        let month: Vec<_> = p.rules_for(&Period::CalendarMonth).collect();
        assert_eq!(month, p.rules);
    }
}
