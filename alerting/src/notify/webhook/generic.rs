//! Format `generic`: tracebudget's own JSON, version `"1"`.
//!
//! The envelope follows Alertmanager's webhook (camelCase, `status`, `groupKey`, `groupLabels`,
//! `externalURL`, `alerts` with `labels`, `annotations`, `startsAt`, `endsAt`) so existing
//! consumers adapt easily, and each alert adds what Alertmanager cannot carry:
//!
//! | field | meaning |
//! |---|---|
//! | `version` | `"1"`; a field is only ever added within a version |
//! | `id` | idempotency key of this notification, also in header `Idempotency-Key` |
//! | `status` | `firing` when any alert fires, else `resolved` |
//! | `alerts[].endsAt` | RFC 3339, or `null` while firing |
//! | `alerts[].url` | the SLO's page in tracebudget |
//! | `alerts[].detail.objective` | e.g. `0.999` |
//! | `alerts[].detail.factor` | burn-rate threshold of the rule |
//! | `alerts[].detail.longWindowSeconds`, `shortWindowSeconds` | the rule's windows |
//! | `alerts[].detail.burnLong`, `burnShort` | burn rate over each window |
//! | `alerts[].detail.budgetRemaining` | 1 untouched, 0 spent, negative overspent |
//! | `alerts[].detail.timeToExhaustionSeconds` | at the long-window burn rate; `null` if never |
//! | `alerts[].detail.exemplars` | worst bad traces: `traceId`, `url` (or `null`), `latencySeconds`, `error`, `at` |
//! | `alerts[].detail.contributors` | `service`, `operation`, `badEvents`, `share` (0..1), `reason` |
//!
//! Timestamps are RFC 3339 in UTC. A full example, a firing page and a resolved ticket of one SLO:
//!
//! ```json
#![doc = include_str!("generic.json")]
//! ```

use serde_json::{Value, json};

use super::super::render::{object, rfc3339, slo_url};
use crate::alert::{Alert, Contributor, Notification};

/// The `generic` payload of a notification.
pub fn payload(n: &Notification) -> Value {
    json!({
        "version": "1",
        "id": n.id,
        "receiver": n.receiver,
        "status": n.status().as_str(),
        "groupKey": n.group_key,
        "groupLabels": object(&n.group_labels),
        "externalURL": n.external_url,
        "alerts": n.alerts.iter().map(|a| alert(n, a)).collect::<Vec<_>>(),
    })
}

fn alert(n: &Notification, a: &Alert) -> Value {
    let d = &a.detail;
    json!({
        "status": a.status.as_str(),
        "fingerprint": a.fingerprint,
        "labels": object(&a.labels),
        "annotations": object(&a.annotations),
        "startsAt": rfc3339(a.starts_at),
        "endsAt": a.ends_at.map(rfc3339),
        "url": slo_url(&n.external_url, &d.slo),
        "detail": {
            "slo": d.slo,
            "journey": d.journey,
            "objective": d.objective,
            "severity": d.severity,
            "factor": d.factor,
            "longWindowSeconds": d.long_window.as_secs(),
            "shortWindowSeconds": d.short_window.as_secs(),
            "burnLong": d.burn_long,
            "burnShort": d.burn_short,
            "budgetRemaining": d.budget_remaining,
            "timeToExhaustionSeconds": d.time_to_exhaustion.map(|t| t.as_secs()),
            "exemplars": d.exemplars.iter().map(|e| json!({
                "traceId": e.trace_id,
                "url": e.url,
                "latencySeconds": e.latency.as_secs_f64(),
                "error": e.error,
                "at": rfc3339(e.at),
            })).collect::<Vec<_>>(),
            "contributors": d.contributors.iter().map(contributor).collect::<Vec<_>>(),
        },
    })
}

/// A contributor, as alert notifications and report digests both write it.
pub(super) fn contributor(c: &Contributor) -> Value {
    json!({
        "service": c.service,
        "operation": c.operation,
        "badEvents": c.bad_events,
        "share": c.share,
        "reason": c.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::fixture;
    use super::*;

    #[test]
    fn the_documented_example() {
        let want: Value = serde_json::from_str(include_str!("generic.json")).unwrap();
        assert_eq!(payload(&fixture::notification()), want);
    }

    #[test]
    fn resolved_when_no_alert_fires() {
        let mut n = fixture::notification();
        n.alerts.remove(0);
        assert_eq!(payload(&n)["status"], "resolved");
    }
}
