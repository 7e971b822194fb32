//! Burn-rate and error-budget maths. Pure functions of counts; never NaN, never infinite.

use std::time::Duration;

use crate::policy::WindowRule;
use crate::window::Counts;

/// Burn rate over one window: (bad / total) / (1 − objective).
/// 1.0 spends the budget exactly over the period; 14.4 spends 2% of a 30-day budget in an hour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Burn {
    pub rate: f64,
    /// The window held no events: `rate` is 0, and alerting may treat it specially.
    pub no_data: bool,
}

pub fn burn_rate(c: Counts, objective: f64) -> Burn {
    if c.total == 0 {
        return Burn {
            rate: 0.0,
            no_data: true,
        };
    }
    let ratio = c.bad.min(c.total) as f64 / c.total as f64;
    Burn {
        rate: ratio / (1.0 - objective),
        no_data: false,
    }
}

/// Budget remaining over the period: 1 − bad / ((1 − objective) × total).
/// 1 = untouched, 0 = spent, negative = overspent. Zero traffic gives 1 and `no_data`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub remaining: f64,
    pub no_data: bool,
}

pub fn budget_remaining(period: Counts, objective: f64) -> Budget {
    if period.total == 0 {
        return Budget {
            remaining: 1.0,
            no_data: true,
        };
    }
    let allowed = (1.0 - objective) * period.total as f64;
    Budget {
        remaining: 1.0 - period.bad.min(period.total) as f64 / allowed,
        no_data: false,
    }
}

/// When the budget runs out if the current burn rate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhaustion {
    /// Burn rate zero: never.
    Never,
    /// Already spent.
    Exhausted,
    In(Duration),
}

/// At burn rate `b` the whole budget goes in `period / b`; what is left goes in `remaining × period / b`.
pub fn time_to_exhaustion(remaining: f64, burn: f64, period: Duration) -> Exhaustion {
    if remaining <= 0.0 {
        return Exhaustion::Exhausted;
    }
    if burn <= 0.0 {
        return Exhaustion::Never;
    }
    let secs = remaining * period.as_secs_f64() / burn;
    Exhaustion::In(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// Whether a rule fires: burn above `factor` over both windows, and at least `min_events` in the long one.
pub fn fires(rule: &WindowRule, long: Counts, short: Counts, objective: f64, min_events: u64) -> bool {
    long.total >= min_events.max(1)
        && burn_rate(long, objective).rate > rule.factor
        && burn_rate(short, objective).rate > rule.factor
}

/// How long a total outage (every event bad, after steady traffic) takes to fire a rule:
/// the bad share of a window W after t seconds is t / W, so the burn passes `factor` once
/// t > factor × (1 − objective) × W, for both windows. `None` when it never can
/// (factor × budget ≥ 1: even a window of nothing but errors does not burn that fast).
pub fn outage_fire_time(objective: f64, rule: &WindowRule) -> Option<Duration> {
    let share = rule.factor * (1.0 - objective);
    if share >= 1.0 {
        return None;
    }
    let longest = rule.long.max(rule.short);
    Some(Duration::from_secs_f64(share * longest.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, Severity};

    fn c(total: u64, bad: u64) -> Counts {
        Counts { total, bad }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn burn_rates_worked_by_hand() {
        // (total, bad, objective, burn)
        let cases = [
            (1_000, 1, 0.999, 1.0),
            (1_000, 0, 0.999, 0.0),
            (1_000, 1_000, 0.999, 1_000.0),
            (10_000, 144, 0.999, 14.4),
            (200, 3, 0.99, 1.5),
            (1_000_000, 600, 0.9999, 6.0),
            (3, 5, 0.9, 10.0), // bad above total is clamped, never > 1/(1 − objective)
        ];
        for (total, bad, objective, want) in cases {
            let b = burn_rate(c(total, bad), objective);
            assert!(close(b.rate, want), "{total}/{bad}@{objective}: {} != {want}", b.rate);
            assert!(!b.no_data);
        }
    }

    #[test]
    fn zero_traffic_is_no_data_not_nan() {
        assert_eq!(
            burn_rate(c(0, 0), 0.999),
            Burn {
                rate: 0.0,
                no_data: true
            }
        );
        assert_eq!(
            budget_remaining(c(0, 0), 0.999),
            Budget {
                remaining: 1.0,
                no_data: true
            }
        );
    }

    #[test]
    fn budget_remaining_worked_by_hand() {
        // (total, bad, objective, remaining)
        let cases = [
            (1_000_000, 0, 0.999, 1.0),
            (1_000_000, 250, 0.999, 0.75),
            (1_000_000, 1_000, 0.999, 0.0),
            (1_000_000, 1_500, 0.999, -0.5),
            (40_000, 100, 0.99, 0.75),
        ];
        for (total, bad, objective, want) in cases {
            let b = budget_remaining(c(total, bad), objective);
            assert!(close(b.remaining, want), "{total}/{bad}: {} != {want}", b.remaining);
        }
    }

    #[test]
    fn exhaustion_worked_by_hand() {
        let day = Duration::from_secs(86_400);
        let month = 30 * day;
        // Half the budget left, burning at 1: the remaining half lasts half the period.
        assert_eq!(time_to_exhaustion(0.5, 1.0, month), Exhaustion::In(15 * day));
        // 14.4× with all of it left: 30 d / 14.4 = 50 h.
        assert_eq!(
            time_to_exhaustion(1.0, 14.4, month),
            Exhaustion::In(Duration::from_secs(50 * 3_600))
        );
        assert_eq!(
            time_to_exhaustion(0.25, 6.0, month),
            Exhaustion::In(Duration::from_secs(30 * 3_600))
        );
        assert_eq!(time_to_exhaustion(0.7, 0.0, month), Exhaustion::Never);
        assert_eq!(time_to_exhaustion(0.0, 2.0, month), Exhaustion::Exhausted);
        assert_eq!(time_to_exhaustion(-0.2, 0.0, month), Exhaustion::Exhausted);
    }

    #[test]
    fn workbook_outage_fire_times() {
        // SRE Workbook, 99.9%: 14.4× 1h/5m ≈ 52 s, 6× 6h/30m ≈ 2 min 10 s, 1× 3d/6h ≈ 4.3 min.
        let want = [51.84, 129.6, 259.2];
        for (rule, want) in Policy::workbook().rules.iter().zip(want) {
            let got = outage_fire_time(0.999, rule).unwrap().as_secs_f64();
            assert!(close(got, want), "{rule:?}: {got} != {want}");
        }
        let hopeless = WindowRule {
            factor: 20.0,
            ..Policy::workbook().rules[0]
        };
        assert_eq!(outage_fire_time(0.95, &hopeless), None);
    }

    #[test]
    fn low_traffic_below_min_events_never_fires() {
        let rule = Policy::workbook().rules[0];
        assert_eq!(rule.severity, Severity::Page);
        // Every one of 99 events bad: burn 1000×, but under the guard of 100.
        assert!(!fires(&rule, c(99, 99), c(99, 99), 0.999, 100));
        assert!(fires(&rule, c(100, 99), c(99, 99), 0.999, 100));
        // The factor is strict: exactly 14.4× does not fire.
        assert!(!fires(&rule, c(10_000, 144), c(1_000, 500), 0.999, 100));
        assert!(fires(&rule, c(10_000, 145), c(1_000, 500), 0.999, 100));
        // Both windows must burn.
        assert!(!fires(&rule, c(10_000, 145), c(1_000, 14), 0.999, 100));
        // min_events 0 still needs one event.
        assert!(!fires(&rule, c(0, 0), c(0, 0), 0.999, 0));
    }
}
