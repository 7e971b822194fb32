//! Format `alertmanager`: exactly the payload Alertmanager's webhook receiver POSTs (version
//! `"4"`, `notify/webhook/webhook.go` `Message` embedding `template/template.go` `Data`), so any
//! tool written for Alertmanager webhooks reads tracebudget's notifications unchanged.
//!
//! Semantics kept from Alertmanager:
//! - `status` is `firing` when any alert fires, else `resolved`;
//! - `commonLabels` / `commonAnnotations` are the pairs every alert has with the same value;
//! - `receiver` is the receiver name escaped like Go's `regexp.QuoteMeta`;
//! - `endsAt` of an alert that has not ended is Go's zero time, `0001-01-01T00:00:00Z`;
//! - timestamps are written like Go's `time.RFC3339Nano`;
//! - `truncatedAlerts` is always 0 (tracebudget never truncates).
//!
//! `generatorURL` is the SLO's page in tracebudget.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::render::{object, rfc3339, slo_url};
use crate::alert::{Alert, AlertStatus, Notification};

/// How Go writes a zero `time.Time`: Alertmanager's "not ended".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The Alertmanager webhook (version 4) payload of a notification.
pub fn payload(n: &Notification) -> Value {
    json!({
        "receiver": quote_meta(&n.receiver),
        "status": n.status().as_str(),
        "alerts": n.alerts.iter().map(|a| alert(n, a)).collect::<Vec<_>>(),
        "groupLabels": object(&n.group_labels),
        "commonLabels": object(&common(n.alerts.iter().map(|a| &a.labels))),
        "commonAnnotations": object(&common(n.alerts.iter().map(|a| &a.annotations))),
        "externalURL": n.external_url,
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
    })
}

fn alert(n: &Notification, a: &Alert) -> Value {
    let ends_at = match (a.status, a.ends_at) {
        (AlertStatus::Resolved, Some(t)) => rfc3339(t),
        _ => ZERO_TIME.to_owned(),
    };
    json!({
        "status": a.status.as_str(),
        "labels": object(&a.labels),
        "annotations": object(&a.annotations),
        "startsAt": rfc3339(a.starts_at),
        "endsAt": ends_at,
        "generatorURL": slo_url(&n.external_url, &a.detail.slo),
        "fingerprint": a.fingerprint,
    })
}

/// The pairs present with the same value in every map; empty when there is no map
/// (Alertmanager's `commonLabels` and `commonAnnotations`).
pub fn common<'a>(mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut common = first.clone();
    for m in maps {
        common.retain(|k, v| m.get(k) == Some(v));
    }
    common
}

/// Go's `regexp.QuoteMeta`: a backslash before each of `\.+*?()|[]{}^$`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::super::fixture;
    use super::*;

    #[test]
    fn exact_payload() {
        let want = json!({
            "receiver": "oncall",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "SLOBurnRate", "journey": "checkout", "severity": "page",
                        "slo": "checkout-latency", "team": "payments"
                    },
                    "annotations": {
                        "description": "99.9% of checkouts finish within 800ms",
                        "summary": "checkout-latency burns its error budget 14.9 times too fast"
                    },
                    "startsAt": "2025-03-01T12:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://127.0.0.1:8080/slos/checkout-latency",
                    "fingerprint": "a1b2c3d4e5f60718"
                },
                {
                    "status": "resolved",
                    "labels": {
                        "alertname": "SLOBurnRate", "journey": "checkout", "severity": "ticket",
                        "slo": "checkout-latency", "team": "payments"
                    },
                    "annotations": {
                        "description": "99.9% of checkouts finish within 800ms",
                        "summary": "checkout-latency burned its error budget 1.2 times too fast"
                    },
                    "startsAt": "2025-02-27T08:00:00Z",
                    "endsAt": "2025-03-01T11:30:00.25Z",
                    "generatorURL": "http://127.0.0.1:8080/slos/checkout-latency",
                    "fingerprint": "0f1e2d3c4b5a6978"
                }
            ],
            "groupLabels": { "slo": "checkout-latency" },
            "commonLabels": {
                "alertname": "SLOBurnRate", "journey": "checkout", "slo": "checkout-latency", "team": "payments"
            },
            "commonAnnotations": { "description": "99.9% of checkouts finish within 800ms" },
            "externalURL": "http://127.0.0.1:8080",
            "version": "4",
            "groupKey": "{}/{slo=\"checkout-latency\"}",
            "truncatedAlerts": 0
        });
        assert_eq!(payload(&fixture::notification()), want);
    }

    #[test]
    fn common_pairs() {
        type Labels = BTreeMap<String, String>;
        let m =
            |pairs: &[(&str, &str)]| -> Labels { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let cases: &[(&[Labels], Labels)] = &[
            (&[], m(&[])),
            (&[m(&[("a", "1"), ("b", "2")])], m(&[("a", "1"), ("b", "2")])),
            // same key, different value: dropped; key missing from one map: dropped
            (
                &[m(&[("a", "1"), ("b", "2"), ("c", "3")]), m(&[("a", "1"), ("b", "x")])],
                m(&[("a", "1")]),
            ),
            (&[m(&[("a", "1")]), m(&[("a", "1")]), m(&[("b", "1")])], m(&[])),
            (&[m(&[("a", "")]), m(&[("a", "")])], m(&[("a", "")])),
        ];
        for (maps, want) in cases {
            assert_eq!(&common(maps.iter()), want, "{maps:?}");
        }
    }

    #[test]
    fn receiver_is_quoted_like_go() {
        assert_eq!(quote_meta("team-a"), "team-a");
        assert_eq!(quote_meta("a.b+c(d)"), r"a\.b\+c\(d\)");
    }

    #[test]
    fn a_resolved_alert_without_end_keeps_zero_time() {
        let mut n = fixture::notification();
        n.alerts[1].ends_at = None;
        assert_eq!(payload(&n)["alerts"][1]["endsAt"], ZERO_TIME);
        assert_eq!(payload(&n)["alerts"][1]["status"], "resolved");
    }
}
