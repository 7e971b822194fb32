//! `/metrics` for trace health, rendered from a [`Snapshot`](super::Snapshot) taken under the
//! pipeline lock in pointer copies and read after releasing it (a scrape never renders under the
//! ingest lock); service names and attribute keys as `[privacy]` shows them
//! ([`super::TraceHealth::shown`]).

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use slis::Timestamp;

use super::{Dropped, Evicted, JourneyHealth, Rows, ServiceReport, SkewKind};
use crate::pipeline::Pipeline;

/// See the module docs; `clock` is the instant a scrape reads at (the wall clock in `serve`).
#[derive(Debug)]
pub struct HealthCollector {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub clock: fn() -> Timestamp,
}

type Labels = Vec<(&'static str, String)>;

/// What one scrape reads, computed from the snapshot outside the lock.
struct Figures {
    journeys: Vec<(String, JourneyHealth)>,
    services: Vec<ServiceReport>,
    boundaries: Vec<(String, String, u64)>,
    skews: Vec<(String, String, SkewKind, u64)>,
    dropped: Dropped,
    evicted: Evicted,
    rows: Rows,
    sketch_bytes: usize,
}

impl HealthCollector {
    fn figures(&self) -> Figures {
        let now = (self.clock)();
        let snapshot = self.pipeline.lock().expect("pipeline lock poisoned").health_snapshot();
        let h = &snapshot.health;
        let shown = h.shown(now, &snapshot.redactor);
        Figures {
            journeys: snapshot
                .journeys
                .iter()
                .cloned()
                .zip(h.journeys().iter().copied())
                .collect(),
            services: shown.services,
            boundaries: shown.boundaries,
            skews: shown.skews,
            dropped: h.dropped(),
            evicted: h.evicted(),
            rows: h.rows(),
            sketch_bytes: h.sketch_bytes(),
        }
    }
}

fn family<T: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, T)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        name,
        help,
        MetricType::Counter,
        samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
    )
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        name,
        help,
        MetricType::Gauge,
        samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
    )
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let f = self.figures();
        let e = &mut encoder;
        let journey = |name: &str| vec![("journey", name.to_owned())];
        let service = |name: &str| vec![("service", name.to_owned())];
        counter(
            e,
            "trace_health_traces",
            "Closed traces of each journey judged for trace health",
            f.journeys.iter().map(|(j, h)| (journey(j), h.traces)),
        )?;
        counter(
            e,
            "trace_health_fragmented_traces",
            "Closed traces of each journey that were fragmented (extra root, orphan span or dangling call)",
            f.journeys.iter().map(|(j, h)| (journey(j), h.fragmented)),
        )?;
        counter(
            e,
            "trace_health_skewed_traces",
            "Closed traces of each journey holding a skewed span",
            f.journeys.iter().map(|(j, h)| (journey(j), h.skewed)),
        )?;
        gauge(
            e,
            "trace_health_fragmentation_ratio",
            "Fragmented / closed traces of each journey since start; absent before the first closed trace",
            f.journeys
                .iter()
                .filter(|(_, h)| h.traces > 0)
                .map(|(j, h)| (journey(j), h.fragmented as f64 / h.traces as f64)),
        )?;
        counter(
            e,
            "trace_health_lost_context",
            "Closed traces in which a service boundary lost the trace context (parent_service unknown when no span names the caller)",
            f.boundaries.iter().map(|(from, to, n)| {
                (
                    vec![("parent_service", from.clone()), ("child_service", to.clone())],
                    *n,
                )
            }),
        )?;
        counter(
            e,
            "trace_health_clock_skew_spans",
            "Skewed spans per parent service, child service and kind (starts_before_parent, ends_after_parent, negative_duration)",
            f.skews.iter().map(|(p, c, k, n)| {
                (
                    vec![
                        ("parent_service", p.clone()),
                        ("child_service", c.clone()),
                        ("kind", k.as_str().to_owned()),
                    ],
                    *n,
                )
            }),
        )?;
        counter(
            e,
            "trace_health_service_spans",
            "Spans accepted per service (the volume the drop detector watches)",
            f.services.iter().map(|s| (service(&s.service), s.spans)),
        )?;
        counter(
            e,
            "trace_health_service_traces",
            "Closed traces each service took part in",
            f.services.iter().map(|s| (service(&s.service), s.traces)),
        )?;
        counter(
            e,
            "trace_health_service_fragmented_traces",
            "Fragmented closed traces each service took part in",
            f.services.iter().map(|s| (service(&s.service), s.fragmented)),
        )?;
        gauge(
            e,
            "trace_health_volume_spans",
            "Spans per volume_window bucket of each service: the newest complete bucket and the baseline average",
            f.services.iter().flat_map(|s| {
                [("newest", s.volume.newest as f64), ("baseline", s.volume.baseline)]
                    .map(|(b, v)| (vec![("service", s.service.to_string()), ("bucket", b.to_owned())], v))
            }),
        )?;
        gauge(
            e,
            "trace_health_volume_drop",
            "1 when a service's newest volume bucket fell below volume_drop_ratio of its baseline (suspected exporter or agent outage)",
            f.services
                .iter()
                .map(|s| (service(&s.service), f64::from(u8::from(s.volume.drop)))),
        )?;
        gauge(
            e,
            "trace_health_export_lag_seconds",
            "Receive time minus span end per service over the window (HDR, within 1%); absent without spans",
            f.services.iter().flat_map(|s| {
                s.lag.into_iter().flat_map(|l| {
                    [("0.5", l.p50_nanos), ("0.99", l.p99_nanos)].map(|(q, v)| {
                        (
                            vec![("service", s.service.to_string()), ("quantile", q.to_owned())],
                            v as f64 / 1e9,
                        )
                    })
                })
            }),
        )?;
        gauge(
            e,
            "trace_health_attribute_cardinality",
            "Estimated distinct values over the window of each attribute key above cardinality_limit",
            f.services.iter().flat_map(|s| {
                s.keys.iter().filter(|k| k.over_limit).map(|k| {
                    (
                        vec![("service", s.service.to_string()), ("key", k.key.to_string())],
                        k.estimate as f64,
                    )
                })
            }),
        )?;
        gauge(
            e,
            "trace_health_high_cardinality_keys",
            "Attribute keys of each service above cardinality_limit",
            f.services.iter().map(|s| {
                (
                    service(&s.service),
                    s.keys.iter().filter(|k| k.over_limit).count() as f64,
                )
            }),
        )?;
        let reason = |r: &str| vec![("reason", r.to_owned())];
        counter(
            e,
            "trace_health_dropped",
            "Observations folded into an __overflow__ row, per reason: service_limit (spans and values of services past max_services), key_limit (values of keys past max_keys_per_service), lost_context_limit (traces losing the context at a boundary past max_lost_context_rows), clock_skew_limit (skewed spans of rows past max_clock_skew_rows)",
            [
                (reason("service_limit"), f.dropped.service_limit),
                (reason("key_limit"), f.dropped.key_limit),
                (reason("lost_context_limit"), f.dropped.lost_context_limit),
                (reason("clock_skew_limit"), f.dropped.clock_skew_limit),
            ],
        )?;
        let map = |m: &str| vec![("map", m.to_owned())];
        counter(
            e,
            "trace_health_evicted",
            "Rows forgotten, per map (service, attribute_key, lost_context, clock_skew) and reason (idle: not updated for idle_ttl)",
            [
                ("service", f.evicted.services),
                ("attribute_key", f.evicted.attribute_keys),
                ("lost_context", f.evicted.lost_context),
                ("clock_skew", f.evicted.clock_skew),
            ]
            .map(|(m, n)| {
                let mut labels = map(m);
                labels.push(("reason", "idle".to_owned()));
                (labels, n)
            }),
        )?;
        gauge(
            e,
            "trace_health_rows",
            "Rows held per map (service, attribute_key, lost_context, clock_skew), __overflow__ rows included",
            [
                ("service", f.rows.services),
                ("attribute_key", f.rows.attribute_keys),
                ("lost_context", f.rows.lost_context),
                ("clock_skew", f.rows.clock_skew),
            ]
            .map(|(m, n)| (map(m), n as f64)),
        )?;
        gauge(
            e,
            "trace_health_sketch_bytes",
            "Heap bytes held by the attribute cardinality sketches",
            [(vec![], f.sketch_bytes as f64)],
        )?;
        Ok(())
    }
}
