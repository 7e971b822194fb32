//! The SLO families of `/metrics`, computed at scrape time from the live windows with
//! [`slis::eval::evaluate`] (the same figures as `GET /api/v1/slos` and the evaluator):
//!
//! | family | labels | value |
//! |---|---|---|
//! | `tracebudget_slo_objective_ratio` | slo, journey | the objective, e.g. 0.999 |
//! | `tracebudget_slo_sli_ratio` | slo, journey, window | good / events over each distinct policy window and `period`; **absent** when the window holds no events (never NaN) |
//! | `tracebudget_slo_burn_rate` | slo, journey, window | (bad / events) / (1 − objective) over the same windows; 0 without events |
//! | `tracebudget_slo_burn_rate_threshold` | slo, journey, severity, long_window, short_window | the burn factor of each policy rule |
//! | `tracebudget_slo_error_budget_remaining_ratio` | slo, journey | 1 − bad / ((1 − objective) × events) over the period; 1 without events, negative when overspent |
//! | `tracebudget_slo_budget_exhaustion_seconds` | slo, journey | time until the budget is spent at the 1 h burn rate; 0 when spent; **absent** when it never runs out |
//! | `tracebudget_slo_alert_firing` | slo, severity | alerts of that SLO and severity firing at the last evaluation |
//! | `tracebudget_journey_root_latency_seconds` | journey, quantile, window | P50/P95/P99 of root latency over the last `5m` / `1h`; **absent** without samples |
//!
//! Window labels name each window exactly, as `tracebudget check` prints it (`56m`, `4m40s`,
//! `2d19h12m`, scaled to the SLO's period; [`slis::format_exact`]): one series per distinct
//! window, and a series keeps its name while the config keeps its policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use slis::Timestamp;
use slis::budget::{Exhaustion, burn_rate};
use slis::duration::format_exact;
use slis::eval::evaluate;
use slis::window::{Counts, Window};
use tracebudget_alerting::deliver::{AlertingMetrics, AttemptLabels, ReceiverLabels, TransitionLabels};
use tracebudget_engine::metrics::{EngineMetrics, ReasonLabels, RejectLabels};
use tracebudget_engine::pipeline::{Pipeline, Reject};
use tracebudget_engine::store::StorageMetrics;
use tracebudget_engine::store::flusher::OutcomeLabels as FlushOutcome;

use crate::app::state::Live;

/// Puts every series whose labels are known at start-up at zero, so dashboards and alert rules
/// see them (and `rate()` has a starting point) before the first refusal, failure or delivery:
/// spans refused per bound receiver and reason, clamped and dropped, flushes per outcome, delivery attempts and
/// queued notifications per receiver, alert transitions per severity.
pub fn initialise(
    engine: &EngineMetrics,
    storage: &StorageMetrics,
    alerting: &AlertingMetrics,
    sources: &[&'static str],
    receivers: &[String],
) {
    let reasons = [
        "backpressure",
        "invalid_span",
        Reject::MissingTimestamp.as_str(),
        Reject::Future.as_str(),
        Reject::TooOld.as_str(),
    ];
    for &receiver in sources {
        for reason in reasons {
            let _ = engine.spans_rejected.get_or_create(&RejectLabels { receiver, reason });
        }
    }
    let _ = engine.samples_dropped.get_or_create(&ReasonLabels {
        reason: "outside_retention",
    });
    let _ = engine.spans_clamped.get_or_create(&ReasonLabels {
        reason: "negative_duration",
    });
    for outcome in ["ok", "error", "given_up", "fenced"] {
        let _ = storage.flushes.get_or_create(&FlushOutcome { outcome });
    }
    for receiver in receivers {
        let _ = alerting.queued.get_or_create(&ReceiverLabels {
            receiver: receiver.clone(),
        });
        for outcome in ["delivered", "retry", "give_up"] {
            let _ = alerting.attempts.get_or_create(&AttemptLabels {
                receiver: receiver.clone(),
                outcome,
            });
        }
    }
    for severity in ["page", "ticket"] {
        for to in ["firing", "resolved"] {
            let _ = alerting.transitions.get_or_create(&TransitionLabels {
                severity: severity.to_owned(),
                to,
            });
        }
    }
}

/// The latency windows of `tracebudget_journey_root_latency_seconds`, with their labels.
pub const LATENCY_WINDOWS: [(&str, Duration); 2] =
    [("5m", Duration::from_secs(300)), ("1h", Duration::from_secs(3_600))];

pub use tracebudget_alerting::runtime::{FiringSnapshot, SloFiring};

/// See the module docs. Registered next to [`tracebudget_engine::collector::PipelineCollector`].
#[derive(Debug)]
pub struct SloCollector {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub live: Arc<Live>,
    pub firing: Arc<FiringSnapshot>,
    /// The instant a scrape evaluates at (the wall clock in `serve`).
    pub clock: fn() -> Timestamp,
}

/// One SLO's figures at the scrape instant, computed under the pipeline lock.
struct SloRow {
    slo: String,
    journey: String,
    objective: f64,
    /// (label, counts) for each distinct window, `period` last.
    windows: Vec<(String, Counts)>,
    /// (severity, long, short, factor) per policy rule.
    rules: Vec<(&'static str, String, String, f64)>,
    budget_remaining: f64,
    exhaustion_seconds: Option<f64>,
}

struct LatencyRow {
    journey: String,
    window: &'static str,
    quantiles: [(&'static str, Duration); 3],
}

impl SloCollector {
    fn rows(&self) -> (Vec<SloRow>, Vec<LatencyRow>) {
        let now = (self.clock)();
        // A reload swaps the config and the pipeline's indices under this lock: read both inside it.
        let p = self.pipeline.lock().expect("pipeline lock poisoned");
        let config = self.live.get();
        let journeys = &p.journeys().0;
        let slos = config
            .alerting
            .slos
            .iter()
            .enumerate()
            .map(|(i, slo)| {
                let windows = p.merged(slo.journey);
                let status = evaluate(slo, &config.alerting.policies[slo.policy], windows, p.slot(i), now);
                let mut seen: Vec<(String, Counts)> = Vec::new();
                for r in &status.rules {
                    for (d, c) in [(r.rule.long, r.long), (r.rule.short, r.short)] {
                        let label = format_exact(d).to_string();
                        if !seen.iter().any(|(l, _)| *l == label) {
                            seen.push((label, c));
                        }
                    }
                }
                seen.push(("period".to_owned(), status.period));
                SloRow {
                    slo: slo.name.clone(),
                    journey: journeys[slo.journey].name.clone(),
                    objective: slo.objective,
                    windows: seen,
                    rules: status
                        .rules
                        .iter()
                        .map(|r| {
                            (
                                r.rule.severity.as_str(),
                                format_exact(r.rule.long).to_string(),
                                format_exact(r.rule.short).to_string(),
                                r.rule.factor,
                            )
                        })
                        .collect(),
                    budget_remaining: status.budget.remaining,
                    exhaustion_seconds: match status.exhaustion {
                        Exhaustion::Never => None,
                        Exhaustion::Exhausted => Some(0.0),
                        Exhaustion::In(d) => Some(d.as_secs_f64()),
                    },
                }
            })
            .collect();
        let mut latency = Vec::new();
        for (j, journey) in journeys.iter().enumerate() {
            for (window, d) in LATENCY_WINDOWS {
                if let Some(pc) = p.merged(j).percentiles(Window::Last(d), now) {
                    latency.push(LatencyRow {
                        journey: journey.name.clone(),
                        window,
                        quantiles: [("0.5", pc.p50), ("0.95", pc.p95), ("0.99", pc.p99)],
                    });
                }
            }
        }
        (slos, latency)
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SloCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Evaluate under the lock, encode after it.
        let (slos, latency) = self.rows();
        let key = |r: &SloRow| vec![("slo", r.slo.clone()), ("journey", r.journey.clone())];
        gauge(
            &mut encoder,
            "slo_objective_ratio",
            "The SLO's objective: the share of events that must be good",
            slos.iter().map(|r| (key(r), r.objective)),
        )?;
        gauge(
            &mut encoder,
            "slo_sli_ratio",
            "Good events / events over each policy window and the period; absent when the window holds no events",
            slos.iter().flat_map(|r| {
                r.windows.iter().filter(|(_, c)| c.total > 0).map(move |(w, c)| {
                    let mut labels = key(r);
                    labels.push(("window", w.clone()));
                    (labels, (c.total - c.bad.min(c.total)) as f64 / c.total as f64)
                })
            }),
        )?;
        gauge(
            &mut encoder,
            "slo_burn_rate",
            "Error-budget burn rate over each policy window and the period: (bad / events) / (1 - objective); 0 without events",
            slos.iter().flat_map(|r| {
                r.windows.iter().map(move |(w, c)| {
                    let mut labels = key(r);
                    labels.push(("window", w.clone()));
                    (labels, burn_rate(*c, r.objective).rate)
                })
            }),
        )?;
        gauge(
            &mut encoder,
            "slo_burn_rate_threshold",
            "Burn factor of each alert policy rule: the rule fires when the burn rate exceeds it over both windows",
            slos.iter().flat_map(|r| {
                r.rules.iter().map(move |(severity, long, short, factor)| {
                    let mut labels = key(r);
                    labels.push(("severity", (*severity).to_owned()));
                    labels.push(("long_window", long.clone()));
                    labels.push(("short_window", short.clone()));
                    (labels, *factor)
                })
            }),
        )?;
        gauge(
            &mut encoder,
            "slo_error_budget_remaining_ratio",
            "Error budget left over the period: 1 untouched, 0 spent, negative overspent; 1 without events",
            slos.iter().map(|r| (key(r), r.budget_remaining)),
        )?;
        gauge(
            &mut encoder,
            "slo_budget_exhaustion_seconds",
            "Time until the error budget is spent at the last hour's burn rate (0: spent); absent when it never runs out",
            slos.iter().filter_map(|r| r.exhaustion_seconds.map(|s| (key(r), s))),
        )?;
        gauge(
            &mut encoder,
            "slo_alert_firing",
            "Alerts of each SLO and severity firing at the last evaluation cycle",
            self.firing.get().into_iter().map(|f| {
                (
                    vec![("slo", f.slo), ("severity", f.severity.to_owned())],
                    f.firing as f64,
                )
            }),
        )?;
        gauge(
            &mut encoder,
            "journey_root_latency_seconds",
            "Root span latency percentiles per journey over the last 5m and 1h (HDR, within 1%); absent without samples",
            latency.iter().flat_map(|l| {
                l.quantiles.iter().map(move |(q, d)| {
                    (
                        vec![
                            ("journey", l.journey.clone()),
                            ("quantile", (*q).to_owned()),
                            ("window", l.window.to_owned()),
                        ],
                        d.as_secs_f64(),
                    )
                })
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
