//! `[trace_health]`: how the tracing pipeline itself is watched (see docs/trace-health.md).

use std::time::Duration;

use serde::Deserialize;
use slis::config::HumanDuration;

/// `[trace_health]`. Every key has a default; the section may be left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceHealthConfig {
    /// A child span starting before its parent, or ending after it, by more than this is skewed.
    pub skew_tolerance: HumanDuration,
    /// Span volume per service is counted in buckets of this length (by receive time).
    pub volume_window: HumanDuration,
    /// The baseline: the average of the buckets over this span before the newest complete one.
    pub volume_baseline: HumanDuration,
    /// A drop is flagged when the newest complete bucket holds fewer spans than this fraction of
    /// the baseline, in (0, 1).
    pub volume_drop_ratio: f64,
    /// No drop is flagged while the baseline averages fewer spans than this per bucket.
    pub volume_min_spans: u64,
    /// Export-lag percentiles and attribute cardinality cover the current and the previous
    /// window of this length (between one and two windows of data).
    pub window: HumanDuration,
    /// Hash every attribute value for the cardinality sketches. The costliest measure on the
    /// hot path (see docs/performance.md); `false` turns attribute cardinality off.
    pub cardinality: bool,
    /// A key with more distinct values than this within the window is flagged.
    pub cardinality_limit: u64,
    /// Services watched at most; spans and values of further services are folded into the
    /// `__overflow__` service and counted as dropped (`reason="service_limit"`).
    pub max_services: usize,
    /// Attribute keys watched per service at most; values of further keys are folded into the
    /// service's `__overflow__` key and counted as dropped (`reason="key_limit"`).
    pub max_keys_per_service: usize,
    /// Lost-context boundaries (caller, callee) kept at most; traces losing the context at
    /// further boundaries are counted in the `__overflow__ → __overflow__` row and as dropped
    /// (`reason="lost_context_limit"`).
    pub max_lost_context_rows: usize,
    /// Clock-skew rows (parent service, child service, kind) kept at most; further skewed spans
    /// are counted in the `__overflow__ → __overflow__` row of their kind and as dropped
    /// (`reason="clock_skew_limit"`).
    pub max_clock_skew_rows: usize,
    /// A service, attribute key, boundary or skew row not updated for this long is forgotten
    /// (counted in `tracebudget_trace_health_evicted_total`), making room under the caps. At
    /// least `volume_baseline` + 2 × `volume_window` and 2 × `window`, so a service stays
    /// while any of its figures (a volume drop above all) still says something.
    pub idle_ttl: HumanDuration,
}

impl Default for TraceHealthConfig {
    fn default() -> Self {
        TraceHealthConfig {
            skew_tolerance: Duration::from_millis(1).into(),
            volume_window: Duration::from_secs(60).into(),
            volume_baseline: Duration::from_secs(15 * 60).into(),
            volume_drop_ratio: 0.5,
            volume_min_spans: 10,
            window: Duration::from_secs(10 * 60).into(),
            cardinality: true,
            cardinality_limit: 1_000,
            max_services: 500,
            max_keys_per_service: 64,
            max_lost_context_rows: 1_000,
            max_clock_skew_rows: 1_000,
            idle_ttl: Duration::from_secs(3_600).into(),
        }
    }
}

impl TraceHealthConfig {
    /// Every problem: (the offending key, a message naming it and its value).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let mut positive = |key: &'static str, d: &HumanDuration| {
            if d.0.is_zero() {
                errors.push((key, format!("trace_health.{key} must be longer than 0")));
            }
        };
        positive("volume_window", &self.volume_window);
        positive("volume_baseline", &self.volume_baseline);
        positive("window", &self.window);
        if !self.volume_window.0.is_zero() && self.volume_baseline.0 < self.volume_window.0 {
            errors.push((
                "volume_baseline",
                format!(
                    "trace_health.volume_baseline \"{}\" must be at least volume_window \"{}\"",
                    slis::format_duration(self.volume_baseline.0),
                    slis::format_duration(self.volume_window.0)
                ),
            ));
        }
        if !(self.volume_drop_ratio > 0.0 && self.volume_drop_ratio < 1.0) {
            errors.push((
                "volume_drop_ratio",
                format!(
                    "trace_health.volume_drop_ratio must be strictly between 0 and 1, found {}",
                    self.volume_drop_ratio
                ),
            ));
        }
        for (key, v) in [
            ("cardinality_limit", self.cardinality_limit as usize),
            ("max_services", self.max_services),
            ("max_keys_per_service", self.max_keys_per_service),
            ("max_lost_context_rows", self.max_lost_context_rows),
            ("max_clock_skew_rows", self.max_clock_skew_rows),
        ] {
            if v == 0 {
                errors.push((key, format!("trace_health.{key} must be at least 1")));
            }
        }
        let least = self.least_idle_ttl();
        if self.idle_ttl.0 < least {
            errors.push((
                "idle_ttl",
                format!(
                    "trace_health.idle_ttl \"{}\" must be at least \"{}\" (volume_baseline + 2 × volume_window, and 2 × window)",
                    slis::format_duration(self.idle_ttl.0),
                    slis::format_duration(least)
                ),
            ));
        }
        errors
    }

    /// The shortest `idle_ttl` that forgets no service while its figures last: its volume
    /// baseline (and so a drop flag) or its export lag and cardinality windows.
    pub fn least_idle_ttl(&self) -> Duration {
        let volume = self
            .volume_baseline
            .0
            .saturating_add(self.volume_window.0.saturating_mul(2));
        volume.max(self.window.0.saturating_mul(2))
    }

    /// How many volume buckets the baseline averages.
    pub fn baseline_buckets(&self) -> u64 {
        (self.volume_baseline.0.as_nanos() / self.volume_window.0.as_nanos().max(1)).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key_and_value() {
        let cases: Vec<(TraceHealthConfig, Vec<&str>)> = vec![
            (TraceHealthConfig::default(), vec![]),
            (
                TraceHealthConfig {
                    volume_drop_ratio: 1.0,
                    ..Default::default()
                },
                vec!["trace_health.volume_drop_ratio must be strictly between 0 and 1, found 1"],
            ),
            (
                TraceHealthConfig {
                    volume_baseline: Duration::from_secs(30).into(),
                    max_keys_per_service: 0,
                    ..Default::default()
                },
                vec![
                    "trace_health.volume_baseline \"30s\" must be at least volume_window \"1m\"",
                    "trace_health.max_keys_per_service must be at least 1",
                ],
            ),
            (
                TraceHealthConfig {
                    window: Duration::ZERO.into(),
                    ..Default::default()
                },
                vec!["trace_health.window must be longer than 0"],
            ),
            (
                TraceHealthConfig {
                    max_lost_context_rows: 0,
                    max_clock_skew_rows: 0,
                    ..Default::default()
                },
                vec![
                    "trace_health.max_lost_context_rows must be at least 1",
                    "trace_health.max_clock_skew_rows must be at least 1",
                ],
            ),
            (
                // 15m + 2 × 1m = 17m; 2 × 10m = 20m.
                TraceHealthConfig {
                    idle_ttl: Duration::from_secs(19 * 60).into(),
                    ..Default::default()
                },
                vec![
                    "trace_health.idle_ttl \"19m\" must be at least \"20m\" (volume_baseline + 2 × volume_window, and 2 × window)",
                ],
            ),
            (
                TraceHealthConfig {
                    idle_ttl: Duration::from_secs(20 * 60).into(),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (config, want) in cases {
            let got: Vec<String> = config.validate().into_iter().map(|(_, m)| m).collect();
            assert_eq!(got, want);
        }
    }
}
