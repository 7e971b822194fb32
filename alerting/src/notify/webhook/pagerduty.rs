//! Format `pagerduty`: PagerDuty Events API v2, POSTed to the configured URL (normally
//! `https://events.pagerduty.com/v2/enqueue`, which answers 202).
//!
//! One event per alert, `dedup_key` = the alert's fingerprint, so PagerDuty keeps one incident
//! per alert however often it is re-sent: `trigger` while firing, `resolve` once resolved (a
//! resolve carries only `routing_key`, `event_action` and `dedup_key`, as the API asks). A trigger's
//! `payload` has the headline as `summary` (at most [`SUMMARY_MAX`] characters), `severity`
//! `critical` for a page and `warning` for a ticket, `component` = journey, `group` = SLO,
//! `class` = `alertname`, and the numbers in `custom_details`; `links` point to the SLO's page
//! and to the exemplar traces.

use serde_json::{Value, json};

use super::super::render::{self, object, rfc3339, slo_url};
use crate::alert::{Alert, AlertStatus, Notification};

/// PagerDuty's limit on `payload.summary`, in characters.
pub const SUMMARY_MAX: usize = 1024;

/// One event per alert, in the order of the alerts.
pub fn events(n: &Notification, routing_key: &str) -> Vec<Value> {
    n.alerts.iter().map(|a| event(n, a, routing_key)).collect()
}

/// PagerDuty's severity for tracebudget's: `critical` for a page, `warning` for a ticket,
/// `info` for anything else.
pub fn severity(severity: &str) -> &'static str {
    match severity {
        "page" => "critical",
        "ticket" => "warning",
        _ => "info",
    }
}

/// The event's `summary`: the headline, then the `summary` annotation, cut to [`SUMMARY_MAX`].
pub fn summary(a: &Alert) -> String {
    let mut s = render::headline(a);
    if let Some(text) = a.annotations.get("summary").filter(|t| !t.is_empty()) {
        s.push_str(" — ");
        s.push_str(text);
    }
    render::truncate(&s, SUMMARY_MAX)
}

fn event(n: &Notification, a: &Alert, routing_key: &str) -> Value {
    if a.status == AlertStatus::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": a.fingerprint,
        });
    }
    let d = &a.detail;
    let page = slo_url(&n.external_url, &d.slo);
    let mut links = vec![json!({ "href": page, "text": format!("SLO {} in tracebudget", d.slo) })];
    links.extend(d.exemplars.iter().filter_map(|e| {
        e.url
            .as_ref()
            .map(|u| json!({ "href": u, "text": format!("trace {} ({})", e.trace_id, render::exemplar_facts(e)) }))
    }));
    let source = crate::redact::origin(&n.external_url);
    let source = source.split_once("://").map_or(source.as_str(), |(_, host)| host);
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": a.fingerprint,
        "payload": {
            "summary": summary(a),
            "source": if source.is_empty() { "tracebudget" } else { source },
            "severity": severity(&d.severity),
            "timestamp": rfc3339(a.starts_at),
            "component": d.journey,
            "group": d.slo,
            "class": a.labels.get("alertname").map_or("SLOBurnRate", String::as_str),
            "custom_details": {
                "slo": d.slo,
                "journey": d.journey,
                "objective": d.objective,
                "severity": d.severity,
                "burn": render::burn_line(a),
                "factor": d.factor,
                "long_window_seconds": d.long_window.as_secs(),
                "short_window_seconds": d.short_window.as_secs(),
                "burn_long": d.burn_long,
                "burn_short": d.burn_short,
                "budget_remaining": d.budget_remaining,
                "time_to_exhaustion_seconds": d.time_to_exhaustion.map(|t| t.as_secs()),
                "labels": object(&a.labels),
                "description": a.annotations.get("description"),
                "exemplars": d.exemplars.iter().map(|e| {
                    format!("{} ({})", e.trace_id, render::exemplar_facts(e))
                }).collect::<Vec<_>>(),
                "contributors": d.contributors.iter().map(|c| {
                    format!("{} {}: {} of bad events ({}), {}",
                        c.service, c.operation, render::percent(c.share), c.bad_events, c.reason)
                }).collect::<Vec<_>>(),
            },
        },
        "links": links,
        "client": "tracebudget",
        "client_url": page,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::fixture;
    use super::*;

    #[test]
    fn exact_events() {
        let want = vec![
            json!({
                "routing_key": "R0UTINGKEY",
                "event_action": "trigger",
                "dedup_key": "a1b2c3d4e5f60718",
                "payload": {
                    "summary": "[PAGE FIRING] checkout-latency: burn 14.9× (1h) / 15.2× (5m) > 14.4 — \
                                checkout-latency burns its error budget 14.9 times too fast",
                    "source": "127.0.0.1:8080",
                    "severity": "critical",
                    "timestamp": "2025-03-01T12:00:00Z",
                    "component": "checkout",
                    "group": "checkout-latency",
                    "class": "SLOBurnRate",
                    "custom_details": {
                        "slo": "checkout-latency",
                        "journey": "checkout",
                        "objective": 0.999,
                        "severity": "page",
                        "burn": "burn 14.9× (1h) / 15.2× (5m) > 14.4",
                        "factor": 14.4,
                        "long_window_seconds": 3600,
                        "short_window_seconds": 300,
                        "burn_long": 14.91,
                        "burn_short": 15.2,
                        "budget_remaining": 0.42,
                        "time_to_exhaustion_seconds": 10440,
                        "labels": {
                            "alertname": "SLOBurnRate", "journey": "checkout", "severity": "page",
                            "slo": "checkout-latency", "team": "payments"
                        },
                        "description": "99.9% of checkouts finish within 800ms",
                        "exemplars": [
                            "4bf92f3577b34da6a3ce929d0e0e4736 (2.5s, error)",
                            "00f067aa0ba902b700f067aa0ba902b7 (1.25s)"
                        ],
                        "contributors": [
                            "payments POST /charge: 62.0% of bad events (31), error originated here",
                            "inventory reserve: 38.0% of bad events (19), slowest child span"
                        ]
                    }
                },
                "links": [
                    { "href": "http://127.0.0.1:8080/slos/checkout-latency", "text": "SLO checkout-latency in tracebudget" },
                    {
                        "href": "https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736",
                        "text": "trace 4bf92f3577b34da6a3ce929d0e0e4736 (2.5s, error)"
                    }
                ],
                "client": "tracebudget",
                "client_url": "http://127.0.0.1:8080/slos/checkout-latency"
            }),
            json!({
                "routing_key": "R0UTINGKEY",
                "event_action": "resolve",
                "dedup_key": "0f1e2d3c4b5a6978"
            }),
        ];
        assert_eq!(events(&fixture::notification(), "R0UTINGKEY"), want);
    }

    #[test]
    fn severities() {
        for (ours, theirs) in [("page", "critical"), ("ticket", "warning"), ("other", "info")] {
            assert_eq!(severity(ours), theirs);
        }
        let mut n = fixture::notification();
        n.alerts[1].status = AlertStatus::Firing;
        assert_eq!(events(&n, "k")[1]["payload"]["severity"], "warning");
    }

    #[test]
    fn summary_is_cut_at_1024_characters() {
        let mut a = fixture::notification().alerts.remove(0);
        for (len, want) in [(10, None), (2_000, Some(SUMMARY_MAX))] {
            a.annotations.insert("summary".into(), "é".repeat(len));
            let s = summary(&a);
            match want {
                None => assert!(s.chars().count() < SUMMARY_MAX && !s.ends_with('…')),
                Some(max) => {
                    assert_eq!(s.chars().count(), max);
                    assert!(s.starts_with("[PAGE FIRING] checkout-latency: burn 14.9×"));
                    assert!(s.ends_with("éé…"));
                }
            }
        }
    }
}
