//! The notification every format's unit tests render: a firing page and a resolved ticket of one
//! SLO, grouped by `slo`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};

use crate::alert::{Alert, AlertDetail, AlertStatus, Contributor, Exemplar, Notification};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(crate) fn notification() -> Notification {
    let page = Alert {
        fingerprint: "a1b2c3d4e5f60718".into(),
        labels: map(&[
            ("alertname", "SLOBurnRate"),
            ("slo", "checkout-latency"),
            ("severity", "page"),
            ("journey", "checkout"),
            ("team", "payments"),
        ]),
        annotations: map(&[
            ("summary", "checkout-latency burns its error budget 14.9 times too fast"),
            ("description", "99.9% of checkouts finish within 800ms"),
        ]),
        status: AlertStatus::Firing,
        starts_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
        ends_at: None,
        detail: AlertDetail {
            slo: "checkout-latency".into(),
            journey: "checkout".into(),
            objective: 0.999,
            severity: "page".into(),
            factor: 14.4,
            long_window: Duration::from_secs(3_600),
            short_window: Duration::from_secs(300),
            burn_long: 14.91,
            burn_short: 15.2,
            budget_remaining: 0.42,
            time_to_exhaustion: Some(Duration::from_secs(10_440)),
            exemplars: vec![
                Exemplar {
                    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                    url: Some("https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736".into()),
                    latency: Duration::from_millis(2_500),
                    error: true,
                    at: Utc.with_ymd_and_hms(2025, 3, 1, 11, 58, 30).unwrap(),
                },
                Exemplar {
                    trace_id: "00f067aa0ba902b700f067aa0ba902b7".into(),
                    url: None,
                    latency: Duration::from_millis(1_250),
                    error: false,
                    at: Utc.with_ymd_and_hms(2025, 3, 1, 11, 59, 0).unwrap(),
                },
            ],
            contributors: vec![
                Contributor {
                    service: "payments".into(),
                    operation: "POST /charge".into(),
                    bad_events: 31,
                    share: 0.62,
                    reason: "error originated here".into(),
                },
                Contributor {
                    service: "inventory".into(),
                    operation: "reserve".into(),
                    bad_events: 19,
                    share: 0.38,
                    reason: "slowest child span".into(),
                },
            ],
        },
    };
    let ticket = Alert {
        fingerprint: "0f1e2d3c4b5a6978".into(),
        labels: map(&[
            ("alertname", "SLOBurnRate"),
            ("slo", "checkout-latency"),
            ("severity", "ticket"),
            ("journey", "checkout"),
            ("team", "payments"),
        ]),
        annotations: map(&[
            ("summary", "checkout-latency burned its error budget 1.2 times too fast"),
            ("description", "99.9% of checkouts finish within 800ms"),
        ]),
        status: AlertStatus::Resolved,
        starts_at: Utc.with_ymd_and_hms(2025, 2, 27, 8, 0, 0).unwrap(),
        ends_at: Some(Utc.with_ymd_and_hms(2025, 3, 1, 11, 30, 0).unwrap() + chrono::Duration::milliseconds(250)),
        detail: AlertDetail {
            slo: "checkout-latency".into(),
            journey: "checkout".into(),
            objective: 0.999,
            severity: "ticket".into(),
            factor: 1.0,
            long_window: Duration::from_secs(3 * 86_400),
            short_window: Duration::from_secs(6 * 3_600),
            burn_long: 0.8,
            burn_short: 0.31,
            budget_remaining: 0.42,
            time_to_exhaustion: None,
            exemplars: vec![],
            contributors: vec![],
        },
    };
    Notification {
        id: "01JN6Q3Z8K4W2V5X7Y9A0B1C2D".into(),
        receiver: "oncall".into(),
        group_key: "{}/{slo=\"checkout-latency\"}".into(),
        group_labels: map(&[("slo", "checkout-latency")]),
        alerts: vec![page, ticket],
        external_url: "http://127.0.0.1:8080".into(),
    }
}
