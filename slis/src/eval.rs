//! Evaluating one SLO at an instant: burn per policy rule, budget over the period, exhaustion.

use std::time::Duration;

use crate::budget::{Budget, Burn, Exhaustion, budget_remaining, burn_rate, fires, time_to_exhaustion};
use crate::policy::{Policy, WindowRule};
use crate::slo::Slo;
use crate::time::Timestamp;
use crate::window::{Counts, Merged, Window};

/// The window whose burn rate projects the time to exhaustion.
pub const EXHAUSTION_BURN_WINDOW: Duration = Duration::from_secs(3_600);

#[derive(Clone, Debug, PartialEq)]
pub struct RuleStatus {
    /// The rule with windows scaled to the SLO's period.
    pub rule: WindowRule,
    pub long: Counts,
    pub short: Counts,
    pub long_burn: Burn,
    pub short_burn: Burn,
    pub firing: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SloStatus {
    pub rules: Vec<RuleStatus>,
    pub period: Counts,
    pub budget: Budget,
    /// Burn over [`EXHAUSTION_BURN_WINDOW`].
    pub current_burn: Burn,
    pub exhaustion: Exhaustion,
}

/// Evaluates `slo` (whose counts sit at index `slot` of its journey's windows) at `now`, over one
/// instance's windows (`&JourneyWindows`) or several instances' ([`Merged`]).
pub fn evaluate<'a>(
    slo: &Slo,
    policy: &Policy,
    windows: impl Into<Merged<'a>>,
    slot: usize,
    now: Timestamp,
) -> SloStatus {
    let windows = windows.into();
    let counts = |w: Duration| windows.counts(slot, Window::Last(w), now);
    let rules = policy
        .rules_for(&slo.period)
        .map(|rule| {
            let (long, short) = (counts(rule.long), counts(rule.short));
            RuleStatus {
                rule,
                long,
                short,
                long_burn: burn_rate(long, slo.objective),
                short_burn: burn_rate(short, slo.objective),
                firing: fires(&rule, long, short, slo.objective, policy.min_events),
            }
        })
        .collect();
    let period = windows.counts(slot, slo.period.window(now), now);
    let budget = budget_remaining(period, slo.objective);
    let current_burn = burn_rate(counts(EXHAUSTION_BURN_WINDOW), slo.objective);
    let exhaustion = time_to_exhaustion(budget.remaining, current_burn.rate, slo.period.length_at(now));
    SloStatus {
        rules,
        period,
        budget,
        current_burn,
        exhaustion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Severity;
    use crate::slo::{Period, SliKind};
    use crate::window::{JourneyWindows, RootSample, Sli};

    const DAY: Duration = Duration::from_secs(86_400);

    fn slo(objective: f64) -> Slo {
        Slo {
            name: "checkout-availability".into(),
            journey: 0,
            sli: SliKind::Error,
            objective,
            period: Period::Rolling(30 * DAY),
            policy: 0,
            labels: vec![],
        }
    }

    fn sample(at: Timestamp, error: bool) -> RootSample {
        RootSample {
            at,
            latency_nanos: 120_000_000,
            error,
            weight: 1,
        }
    }

    /// Steady traffic of one request per `every` for `history`, then a total outage: returns the
    /// seconds into the outage at which each Workbook rule first fires (evaluating every second).
    fn outage_fire_seconds(objective: f64, every: Duration, history: Duration, give_up: u64) -> Vec<Option<u64>> {
        let policy = Policy::workbook();
        let slo = slo(objective);
        let mut w = JourneyWindows::new(vec![Sli::Error], slo.period.max_span() + DAY);
        let outage = Timestamp::from_unix_secs(1_780_000_020); // a whole minute
        let mut t = outage - history;
        while t < outage {
            assert_eq!(w.record_root(&sample(t, false)), crate::window::Recorded::Counted);
            t = t + every;
            if t.unix_secs() % 60 == 0 {
                w.advance(t);
            }
        }
        let mut fired = vec![None; policy.rules.len()];
        for s in 0..=give_up {
            let now = outage + Duration::from_secs(s);
            if s % every.as_secs().max(1) == 0 {
                assert_eq!(w.record_root(&sample(now, true)), crate::window::Recorded::Counted);
            }
            if s % 60 == 0 {
                w.advance(now);
            }
            let status = evaluate(&slo, &policy, &w, 0, now);
            for (i, r) in status.rules.iter().enumerate() {
                if r.firing && fired[i].is_none() {
                    fired[i] = Some(s);
                }
            }
        }
        fired
    }

    #[test]
    fn workbook_outage_fires_each_rule_when_the_maths_says() {
        // 99.9%, one request a second for four days, then every request fails. The Workbook: the
        // 14.4× 1h/5m page crosses at 51.84 s, 6× 6h/30m at 129.6 s, 1× 3d/6h at 259.2 s. Windows
        // align up to bucket starts (a minute for the recent 6 h, an hour beyond), so the long
        // windows hold up to one bucket less of good traffic and cross a little earlier.
        let fired = outage_fire_seconds(0.999, Duration::from_secs(1), 4 * DAY, 300);
        let [page_fast, page_slow, ticket] = fired[..] else {
            panic!("three rules")
        };
        let (page_fast, page_slow, ticket) = (page_fast.unwrap(), page_slow.unwrap(), ticket.unwrap());
        // 1h window at t s: (t + 1) bad of 3540 + t + 1 (59 whole good minutes) → t = 51.
        assert_eq!(page_fast, 51);
        // 6h: (t + 1) / (21540 + t + 1) > 0.006 → t = 129.
        assert_eq!(page_slow, 129);
        // 3d: the edge is in the hour tier, so 71 whole good hours (plus the fine minutes of the
        // current hour): (t + 1) / (255600 + 1200 + t + 1) > 0.001 → t ≈ 256.
        assert!((250..=260).contains(&ticket), "ticket fired at {ticket} s");
        assert_eq!(Policy::workbook().rules[2].severity, Severity::Ticket);
    }

    #[test]
    fn low_traffic_never_pages() {
        // One request every 10 minutes, then all of them fail: burn is 1000×, but the page windows
        // (1h: 6 events, 6h: 36) stay under min_events = 100 for the three hours watched. The 3d
        // window holds 432 events, so the ticket fires on the first error, as it should.
        let fired = outage_fire_seconds(0.999, Duration::from_secs(600), 4 * DAY, 3 * 3_600);
        assert_eq!(fired, vec![None, None, Some(0)]);
    }

    #[test]
    fn status_of_a_quiet_slo_is_no_data_not_nan() {
        let w = JourneyWindows::new(vec![Sli::Error], 31 * DAY);
        let s = evaluate(
            &slo(0.999),
            &Policy::workbook(),
            &w,
            0,
            Timestamp::from_unix_secs(1_780_000_000),
        );
        assert!(
            s.rules
                .iter()
                .all(|r| !r.firing && r.long_burn.no_data && r.long_burn.rate == 0.0)
        );
        assert!(s.budget.no_data);
        assert_eq!(s.budget.remaining, 1.0);
        assert_eq!(s.exhaustion, Exhaustion::Never);
    }

    #[test]
    fn budget_and_exhaustion_from_recorded_traffic() {
        // 100,000 requests over the last 10 days with 25 errors: a quarter of a 99.9% budget gone.
        let slo = slo(0.999);
        let mut w = JourneyWindows::new(vec![Sli::Error], 31 * DAY);
        let now = Timestamp::from_unix_secs(1_780_000_000);
        let start = now - 10 * DAY;
        for i in 0..100_000u64 {
            let at = start + Duration::from_millis(i * 8_640); // 10 days / 100,000
            let error = i % 4_000 == 0; // 25 errors, none in the last hour
            assert_eq!(w.record_root(&sample(at, error)), crate::window::Recorded::Counted);
        }
        w.advance(now);
        let s = evaluate(&slo, &Policy::workbook(), &w, 0, now);
        assert_eq!(
            s.period,
            Counts {
                total: 100_000,
                bad: 25
            }
        );
        assert!((s.budget.remaining - 0.75).abs() < 1e-12, "{}", s.budget.remaining);
        assert_eq!(s.current_burn.rate, 0.0);
        assert_eq!(s.exhaustion, Exhaustion::Never);
    }
}
