//! The SLO families on a known pipeline state: the registry encoded to text, every sample line
//! parsed and compared with the figures worked out by hand below.

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;
use slis::model::{AttrValue, Span, SpanId, SpanKind, StatusCode, TraceId};
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::Source;

use super::*;
use crate::app::config::Config;

/// A whole minute; the scrape happens 30 minutes later.
const T0: i64 = 1_780_000_020;

fn now() -> Timestamp {
    Timestamp::from_unix_secs(T0 + 30 * 60)
}

const CONFIG: &str = r#"
[storage]
url = "sqlite::memory:"

[[journeys]]
name = "checkout"
service = "frontend"
http_route = "/api/checkout"
error_when = ["http.response.status_code >= 500"]

[[journeys]]
name = "search"
service = "frontend"
http_route = "/api/search"

[[slos]]
name = "checkout-availability"
journey = "checkout"
sli = "error"
objective = 0.875
period = "7d"
policy = "demo"

[[slos]]
name = "checkout-latency"
journey = "checkout"
sli = "latency"
threshold = "200ms"
objective = 0.5
period = "7d"
policy = "demo"

[[slos]]
name = "search-availability"
journey = "search"
sli = "error"
objective = 0.5
period = "7d"
policy = "demo"

[[policies]]
name = "demo"
reference_period = "7d"
min_events = 1
windows = [
  { long = "1h", short = "5m", factor = 14.4, severity = "page" },
  { long = "6h", short = "1h", factor = 1.0, severity = "ticket" },
]
"#;

/// A checkout root span `secs` after T0 lasting `micros`, answering `status`.
fn root(n: u32, secs: i64, micros: u64, status: i64) -> Span {
    let end = Timestamp::from_unix_secs(T0 + secs);
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    Span {
        trace_id: TraceId(id),
        span_id: SpanId([1; 8]),
        parent_span_id: None,
        service: "frontend".into(),
        name: "POST /api/checkout".into(),
        kind: SpanKind::Server,
        start: end - Duration::from_micros(micros),
        end,
        status: StatusCode::Unset,
        attributes: vec![
            ("http.route".into(), AttrValue::Str("/api/checkout".into())),
            ("http.response.status_code".into(), AttrValue::Int(status)),
        ],
        weight: 1,
    }
}

/// 20 minutes before the scrape: 48 checkouts, 8 of them 5xx, 4 (others) taking 300 ms.
/// 2 minutes before: 16 checkouts, 4 of them 5xx, all fast. Search: nothing.
fn collector() -> (Registry, Arc<FiringSnapshot>) {
    let config: Config = crate::app::config::parse("metrics-test.toml", CONFIG).expect("valid config");
    let mut pipeline = Pipeline::new(
        config.journeys.clone(),
        &config.alerting.slos,
        &config.ingest,
        Arc::new(EngineMetrics::default()),
    );
    let mut n = 0;
    let mut batch = |secs: i64, total: u32, errors: u32, slow: u32| {
        (0..total)
            .map(|i| {
                n += 1;
                let status = if i < errors { 500 } else { 200 };
                let micros = if i >= errors && i < errors + slow { 300_000 } else { 200 };
                root(n, secs, micros, status)
            })
            .collect::<Vec<_>>()
    };
    let old = batch(10 * 60, 48, 8, 4);
    let recent = batch(28 * 60, 16, 4, 0);
    for (spans, at) in [(old, 10 * 60), (recent, 28 * 60)] {
        let got = pipeline
            .ingest(Source::OtlpHttp, spans, Timestamp::from_unix_secs(T0 + at))
            .expect("no backpressure");
        assert_eq!(got.rejected, 0);
    }
    pipeline.tick(now());
    let firing = Arc::new(FiringSnapshot::default());
    firing.set(vec![
        SloFiring {
            slo: "checkout-availability".into(),
            severity: "page",
            firing: 1,
        },
        SloFiring {
            slo: "checkout-availability".into(),
            severity: "ticket",
            firing: 0,
        },
    ]);
    let mut registry = Registry::with_prefix("tracebudget");
    registry.register_collector(Box::new(SloCollector {
        pipeline: Arc::new(Mutex::new(pipeline)),
        live: Arc::new(Live::new(Arc::new(config))),
        firing: firing.clone(),
        clock: now,
    }));
    (registry, firing)
}

/// `name{labels}` → value, for every sample line of the scrape.
fn scrape(registry: &Registry) -> BTreeMap<String, f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(value.is_finite(), "{line}");
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

fn family<'a>(samples: &'a BTreeMap<String, f64>, name: &str) -> Vec<(&'a str, f64)> {
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

#[test]
fn slo_families_hold_the_exact_figures_of_a_known_state() {
    let (registry, _) = collector();
    let s = scrape(&registry);
    let ca = r#"slo="checkout-availability",journey="checkout""#;
    let cl = r#"slo="checkout-latency",journey="checkout""#;
    let sa = r#"slo="search-availability",journey="search""#;
    let with = |name: &str, key: &str, extra: &str| format!("tracebudget_{name}{{{key}{extra}}}");

    assert_eq!(
        family(&s, "tracebudget_slo_objective_ratio"),
        [
            (with("slo_objective_ratio", ca, "").as_str(), 0.875),
            (with("slo_objective_ratio", cl, "").as_str(), 0.5),
            (with("slo_objective_ratio", sa, "").as_str(), 0.5),
        ]
    );

    // Availability: 5m holds the recent 16 (4 bad); 1h, 6h and the period all 64 (12 bad).
    // Latency: 5m 16 (0 slow); the rest 64 (4 slow). Search has no events: no SLI sample.
    let mut sli: Vec<(String, f64)> = vec![];
    let mut burn: Vec<(String, f64)> = vec![];
    for (key, objective, short, long) in [
        (ca, 0.875, (16.0, 4.0), (64.0, 12.0)),
        (cl, 0.5, (16.0, 0.0), (64.0, 4.0)),
    ] {
        for (window, (total, bad)) in [("1h", long), ("5m", short), ("6h", long), ("period", long)] {
            let w = format!(r#",window="{window}""#);
            sli.push((with("slo_sli_ratio", key, &w), (total - bad) / total));
            burn.push((with("slo_burn_rate", key, &w), bad / total / (1.0 - objective)));
        }
    }
    for window in ["1h", "5m", "6h", "period"] {
        burn.push((with("slo_burn_rate", sa, &format!(r#",window="{window}""#)), 0.0));
    }
    sli.sort_by(|a, b| a.0.cmp(&b.0));
    burn.sort_by(|a, b| a.0.cmp(&b.0));
    let owned = |v: Vec<(&str, f64)>| v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Vec<_>>();
    assert_eq!(owned(family(&s, "tracebudget_slo_sli_ratio")), sli);
    assert_eq!(owned(family(&s, "tracebudget_slo_burn_rate")), burn);
    // The figures above, written out: dyadic objectives keep every one exact.
    assert_eq!(s[&with("slo_sli_ratio", ca, r#",window="5m""#)], 0.75);
    assert_eq!(s[&with("slo_burn_rate", ca, r#",window="5m""#)], 2.0);
    assert_eq!(s[&with("slo_burn_rate", ca, r#",window="1h""#)], 1.5);
    assert_eq!(s[&with("slo_sli_ratio", cl, r#",window="period""#)], 0.9375);
    assert_eq!(s[&with("slo_burn_rate", cl, r#",window="1h""#)], 0.125);

    // 12 bad where 0.125 × 64 = 8 were allowed: half the budget overspent, exhausted now.
    // Latency: 4 of 32 allowed → 0.875 left, burning at 0.125 over the last hour:
    // 0.875 × 7 d / 0.125 = 49 days. Search: untouched, and never exhausted (no sample).
    assert_eq!(
        family(&s, "tracebudget_slo_error_budget_remaining_ratio"),
        [
            (with("slo_error_budget_remaining_ratio", ca, "").as_str(), -0.5),
            (with("slo_error_budget_remaining_ratio", cl, "").as_str(), 0.875),
            (with("slo_error_budget_remaining_ratio", sa, "").as_str(), 1.0),
        ]
    );
    assert_eq!(
        family(&s, "tracebudget_slo_budget_exhaustion_seconds"),
        [
            (with("slo_budget_exhaustion_seconds", ca, "").as_str(), 0.0),
            (with("slo_budget_exhaustion_seconds", cl, "").as_str(), 49.0 * 86_400.0),
        ]
    );

    let thresholds = family(&s, "tracebudget_slo_burn_rate_threshold");
    assert_eq!(thresholds.len(), 6);
    assert_eq!(
        s[&with(
            "slo_burn_rate_threshold",
            ca,
            r#",severity="page",long_window="1h",short_window="5m""#
        )],
        14.4
    );
    assert_eq!(
        s[&with(
            "slo_burn_rate_threshold",
            sa,
            r#",severity="ticket",long_window="6h",short_window="1h""#
        )],
        1.0
    );

    assert_eq!(
        family(&s, "tracebudget_slo_alert_firing"),
        [
            (
                r#"tracebudget_slo_alert_firing{slo="checkout-availability",severity="page"}"#,
                1.0
            ),
            (
                r#"tracebudget_slo_alert_firing{slo="checkout-availability",severity="ticket"}"#,
                0.0
            ),
        ]
    );

    // Latency: 5m holds 16 roots of 200 µs (exact in HDR below 256 µs); 1h adds 44 more of
    // 200 µs and 4 of 300 ms, whose HDR bucket (2 significant figures: 2048 µs wide at that
    // magnitude) reports its highest value, 301,055 µs: P95 is the 61st of 64, a slow one.
    // Search has no samples: no series at all.
    let q = |quantile: &str, window: &str| {
        format!(
            r#"tracebudget_journey_root_latency_seconds{{journey="checkout",quantile="{quantile}",window="{window}"}}"#
        )
    };
    let mut latency = vec![
        (q("0.5", "5m"), 0.000_2),
        (q("0.95", "5m"), 0.000_2),
        (q("0.99", "5m"), 0.000_2),
        (q("0.5", "1h"), 0.000_2),
        (q("0.95", "1h"), 0.301_055),
        (q("0.99", "1h"), 0.301_055),
    ];
    latency.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(owned(family(&s, "tracebudget_journey_root_latency_seconds")), latency);
}

#[test]
fn firing_snapshot_replaces_the_series_whole() {
    let (registry, firing) = collector();
    firing.set(vec![]);
    assert_eq!(family(&scrape(&registry), "tracebudget_slo_alert_firing"), []);
}

/// A whole hour plus 10 minutes: the bad checkouts of the two-window test.
const OLD: i64 = 1_780_000_020 + 2_580;
/// 3 days and 20 minutes after `OLD`: inside a 3d30m window, outside a 3d one.
fn three_days_later() -> Timestamp {
    Timestamp::from_unix_secs(OLD - 600 + 3 * 86_400 + 30 * 60)
}

/// Issue 18: a 3d30m window was labelled "3d" like the 3d window beside it, so one
/// `window="3d"` series at 0 stood for both while the 3d30m rule burned 4×.
#[test]
fn every_window_has_its_own_exactly_named_series() {
    let config = r#"
[storage]
url = "sqlite::memory:"

[[journeys]]
name = "checkout"
service = "frontend"
http_route = "/api/checkout"
error_when = ["http.response.status_code >= 500"]

[[slos]]
name = "checkout-availability"
journey = "checkout"
sli = "error"
objective = 0.875
period = "7d"
policy = "two-tickets"

[[policies]]
name = "two-tickets"
reference_period = "7d"
min_events = 1
windows = [
  { long = "3d", short = "6h", factor = 1.0, severity = "ticket" },
  { long = "3d30m", short = "6h", factor = 2.0, severity = "ticket" },
]
"#;
    let config: Config = crate::app::config::parse("metrics-test.toml", config).expect("valid config");
    let mut pipeline = Pipeline::new(
        config.journeys.clone(),
        &config.alerting.slos,
        &config.ingest,
        Arc::new(EngineMetrics::default()),
    );
    // 8 checkouts, 4 of them 5xx, 3 days and 20 minutes before the scrape.
    let spans: Vec<Span> = (0..8)
        .map(|i| root(i, OLD - T0, 200, if i < 4 { 500 } else { 200 }))
        .collect();
    let got = pipeline
        .ingest(Source::OtlpHttp, spans, Timestamp::from_unix_secs(OLD))
        .expect("no backpressure");
    assert_eq!(got.rejected, 0);
    pipeline.tick(three_days_later());
    let mut registry = Registry::with_prefix("tracebudget");
    registry.register_collector(Box::new(SloCollector {
        pipeline: Arc::new(Mutex::new(pipeline)),
        live: Arc::new(Live::new(Arc::new(config))),
        firing: Arc::new(FiringSnapshot::default()),
        clock: three_days_later,
    }));
    let s = scrape(&registry);
    let key = r#"slo="checkout-availability",journey="checkout""#;
    let series = |name: &str, extra: &str| format!("tracebudget_{name}{{{key}{extra}}}");
    let owned = |v: Vec<(&str, f64)>| v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Vec<_>>();
    // (4 bad / 8) / (1 − 0.875) = 4 over 3d30m and the period; 3d and 6h hold no event.
    assert_eq!(
        owned(family(&s, "tracebudget_slo_burn_rate")),
        [
            (series("slo_burn_rate", r#",window="3d""#), 0.0),
            (series("slo_burn_rate", r#",window="3d30m""#), 4.0),
            (series("slo_burn_rate", r#",window="6h""#), 0.0),
            (series("slo_burn_rate", r#",window="period""#), 4.0),
        ]
    );
    assert_eq!(
        owned(family(&s, "tracebudget_slo_sli_ratio")),
        [
            (series("slo_sli_ratio", r#",window="3d30m""#), 0.5),
            (series("slo_sli_ratio", r#",window="period""#), 0.5),
        ]
    );
    assert_eq!(
        owned(family(&s, "tracebudget_slo_burn_rate_threshold")),
        [
            (
                series(
                    "slo_burn_rate_threshold",
                    r#",severity="ticket",long_window="3d",short_window="6h""#
                ),
                1.0
            ),
            (
                series(
                    "slo_burn_rate_threshold",
                    r#",severity="ticket",long_window="3d30m",short_window="6h""#
                ),
                2.0
            ),
        ]
    );
}
