//! Scripted outages: `--incident START:DURATION:ERROR_RATE`, e.g. `30s:2m:1.0` makes every root an
//! error for two minutes starting 30 s into the run.

use std::time::Duration;

use slis::parse_duration;

/// An error rate that replaces every journey's own from `start` (inclusive) for `duration`,
/// both measured from the start of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Incident {
    pub start: Duration,
    pub duration: Duration,
    pub error_rate: f64,
}

impl Incident {
    pub fn parse(text: &str) -> Result<Incident, String> {
        let invalid = |reason: String| format!("invalid incident {text:?}: {reason}");
        let parts: Vec<&str> = text.split(':').collect();
        let [start, duration, rate] = parts[..] else {
            return Err(invalid(
                "expected START:DURATION:ERROR_RATE, e.g. 30s:2m:1.0".to_owned(),
            ));
        };
        let start = parse_duration(start).map_err(|e| invalid(e.to_string()))?;
        let duration = parse_duration(duration).map_err(|e| invalid(e.to_string()))?;
        let error_rate = parse_rate(rate).map_err(invalid)?;
        Ok(Incident {
            start,
            duration,
            error_rate,
        })
    }

    pub fn active_at(&self, t: Duration) -> bool {
        self.start <= t && t < self.start.saturating_add(self.duration)
    }
}

/// A share in [0, 1], e.g. `0.01`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("expected a rate between 0 and 1, got {text:?}")),
    }
}

/// The error rate the incidents impose at `t`; the highest when several overlap.
pub fn error_rate_at(incidents: &[Incident], t: Duration) -> Option<f64> {
    incidents
        .iter()
        .filter(|i| i.active_at(t))
        .map(|i| i.error_rate)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_start_duration_and_rate() {
        let ok = [
            ("30s:2m:1.0", (secs(30), secs(120), 1.0)),
            ("0s:1h30m:0.25", (secs(0), secs(5400), 0.25)),
            ("90s:500ms:0", (secs(90), Duration::from_millis(500), 0.0)),
        ];
        for (text, (start, duration, error_rate)) in ok {
            assert_eq!(
                Incident::parse(text),
                Ok(Incident {
                    start,
                    duration,
                    error_rate
                }),
                "{text}"
            );
        }
        let bad = [
            (
                "30s:2m",
                "invalid incident \"30s:2m\": expected START:DURATION:ERROR_RATE, e.g. 30s:2m:1.0",
            ),
            (
                "30s:2m:1:4",
                "invalid incident \"30s:2m:1:4\": expected START:DURATION:ERROR_RATE, e.g. 30s:2m:1.0",
            ),
            (
                "30:2m:1",
                "invalid incident \"30:2m:1\": invalid duration \"30\": missing unit (ns, us, ms, s, m, h, d, w)",
            ),
            (
                "30s:2m:1.5",
                "invalid incident \"30s:2m:1.5\": expected a rate between 0 and 1, got \"1.5\"",
            ),
            (
                "30s:2m:lots",
                "invalid incident \"30s:2m:lots\": expected a rate between 0 and 1, got \"lots\"",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(Incident::parse(text).unwrap_err(), want);
        }
    }

    #[test]
    fn the_schedule_over_a_run() {
        let outage = Incident::parse("30s:2m:1.0").unwrap();
        let brownout = Incident::parse("1m:5m:0.1").unwrap();
        let both = [outage, brownout];
        let cases: &[(&[Incident], u64, Option<f64>)] = &[
            (&[], 10, None),
            (&[outage], 29, None),
            (&[outage], 30, Some(1.0)), // the start is inclusive
            (&[outage], 149, Some(1.0)),
            (&[outage], 150, None), // the end is exclusive
            (&both, 45, Some(1.0)),
            (&both, 100, Some(1.0)), // overlapping: the higher rate
            (&both, 200, Some(0.1)),
            (&both, 360, None),
        ];
        for (incidents, t, want) in cases {
            assert_eq!(error_rate_at(incidents, secs(*t)), *want, "at {t}s");
        }
    }
}
