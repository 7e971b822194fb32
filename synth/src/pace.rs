//! The token schedule: request after request, each due when the spans sent before it have been
//! paid for at the target rate. Pure maths over offsets from the start; the caller sleeps.

use std::time::Duration;

/// Paces requests to a rate in spans per second.
///
/// The request sent after `n` spans is due at `origin + n / rate`. A sender that falls behind
/// (a slow receiver, a pause) catches up with a burst of at most `max_lag` worth of spans; older
/// debt is forgiven by moving the origin, so a stall never turns into a flood.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Spans per second; `None` sends as fast as possible.
    rate: Option<f64>,
    max_lag: Duration,
    /// Where the schedule began (moves forward when debt is forgiven).
    origin: Duration,
    spans: u64,
}

impl Pacer {
    /// `rate` in spans per second; zero or less means unlimited.
    pub fn new(rate: f64, max_lag: Duration) -> Pacer {
        Pacer {
            rate: (rate > 0.0 && rate.is_finite()).then_some(rate),
            max_lag,
            origin: Duration::ZERO,
            spans: 0,
        }
    }

    /// When the next request may go, as an offset from the start, given the current offset
    /// `now`. At or before `now` means at once.
    pub fn next_due(&mut self, now: Duration) -> Duration {
        let Some(rate) = self.rate else {
            return now;
        };
        let due = self.origin + Duration::from_nanos((self.spans as f64 * 1e9 / rate).round() as u64);
        let earliest = now.saturating_sub(self.max_lag);
        if due < earliest {
            self.origin += earliest - due;
            return earliest;
        }
        due
    }

    /// Records a request of `spans` spans as sent.
    pub fn sent(&mut self, spans: u64) {
        self.spans += spans;
    }
}

/// Spans per second over `elapsed`, 0 for no time.
pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_are_due_when_their_spans_are_paid_for() {
        // 1000 spans/s in requests of 100: one every 100 ms, whenever the sender asks.
        let mut p = Pacer::new(1000.0, Duration::from_secs(1));
        let mut dues = Vec::new();
        for asked_at in [0, 0, 50, 200, 250, 500] {
            let due = p.next_due(ms(asked_at));
            dues.push(due);
            p.sent(100);
        }
        assert_eq!(dues, [ms(0), ms(100), ms(200), ms(300), ms(400), ms(500)]);
    }

    #[test]
    fn uneven_requests_pay_for_their_own_size() {
        let mut p = Pacer::new(512.0, Duration::from_secs(1));
        assert_eq!(p.next_due(ms(0)), ms(0));
        p.sent(512);
        assert_eq!(p.next_due(ms(0)), ms(1000));
        p.sent(256);
        assert_eq!(p.next_due(ms(0)), ms(1500));
    }

    #[test]
    fn a_stall_catches_up_by_at_most_max_lag() {
        let mut p = Pacer::new(100.0, Duration::from_secs(1));
        p.next_due(ms(0));
        p.sent(10); // next due at 100 ms
        // The sender was stuck until 5 s: only the last second is made up.
        assert_eq!(p.next_due(ms(5000)), ms(4000));
        p.sent(10);
        let mut burst = 0;
        while p.next_due(ms(5000)) <= ms(5000) {
            p.sent(10);
            burst += 1;
        }
        assert_eq!(burst, 10, "one second of debt at 10 requests/s");
        assert_eq!(p.next_due(ms(5000)), ms(5100));
    }

    #[test]
    fn the_total_follows_the_rate() {
        // Over 60 s at 10,000 spans/s in requests of 512, asking as soon as allowed.
        let mut p = Pacer::new(10_000.0, Duration::from_secs(1));
        let end = Duration::from_secs(60);
        let (mut sent, mut now) = (0, Duration::ZERO);
        loop {
            now = p.next_due(now).max(now);
            if now >= end {
                break;
            }
            p.sent(512);
            sent += 512;
        }
        assert!((600_000..600_000 + 512).contains(&sent), "{sent}");
    }

    #[test]
    fn no_rate_means_no_wait() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut p = Pacer::new(rate, Duration::from_secs(1));
            p.sent(1_000_000);
            assert_eq!(p.next_due(ms(7)), ms(7));
        }
    }

    #[test]
    fn achieved_rates() {
        assert_eq!(per_sec(5000, Duration::from_secs(2)), 2500.0);
        assert_eq!(per_sec(5000, Duration::ZERO), 0.0);
    }
}
