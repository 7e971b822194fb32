//! Format `generic` for report digests: tracebudget's own JSON, version `"1"`, `"kind": "report"`.
//!
//! Alert notifications of the same format carry no `kind`; a consumer tells the two apart by it.
//! Field names follow the alert payload (camelCase, `externalURL`, RFC 3339 timestamps in UTC).
//!
//! | field | meaning |
//! |---|---|
//! | `version` | `"1"`; a field is only ever added within a version |
//! | `kind` | `"report"` |
//! | `id` | idempotency key of this digest (`report-<name>-<YYYYMMDDTHHMMSSZ>`), also in header `Idempotency-Key` |
//! | `report`, `receiver` | the `[[reports]]` name and the receiver's |
//! | `from`, `to` | the period the alerts are listed for: the previous scheduled run and this one |
//! | `slos[].slo`, `journey`, `sli` | the SLO, its journey, `latency`, `error` or `completeness` |
//! | `slos[].objective`, `period` | e.g. `0.999`, `"28d"` |
//! | `slos[].url` | the SLO's page in tracebudget |
//! | `slos[].events`, `bad` | over the SLO's period |
//! | `slos[].ratio` | the SLI, `(events − bad) / events`; `null` without events |
//! | `slos[].budgetRemaining` | 1 untouched, 0 spent, negative overspent |
//! | `slos[].currentBurn` | burn rate over the last hour |
//! | `slos[].timeToExhaustionSeconds` | at the current burn; `null` if never |
//! | `slos[].noData` | the last hour held no events: `currentBurn` says nothing |
//! | `slos[].alerts` | alerts that fired in the period: `severity`, `alertname`, `startsAt`, `endsAt` (`null` while firing) |
//! | `slos[].topContributors` | `service`, `operation`, `badEvents`, `share` (0..1), `reason` |
//!
//! A number the JSON cannot hold (NaN, infinite) is `null`. A full example:
//!
//! ```json
#![doc = include_str!("generic_report.json")]
//! ```

use serde_json::{Value, json};

use super::super::render::{rfc3339, slo_url};
use crate::report::{Digest, SloDigest};

/// The `generic` payload of a digest.
pub fn payload(d: &Digest) -> Value {
    json!({
        "version": "1",
        "kind": "report",
        "id": d.id,
        "report": d.report,
        "receiver": d.receiver,
        "from": rfc3339(d.from),
        "to": rfc3339(d.to),
        "externalURL": d.external_url,
        "slos": d.slos.iter().map(|s| slo(d, s)).collect::<Vec<_>>(),
    })
}

/// `null` for NaN and infinities (serde_json would write `null` too; this says so).
fn number(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

fn slo(d: &Digest, s: &SloDigest) -> Value {
    json!({
        "slo": s.slo,
        "journey": s.journey,
        "sli": s.sli,
        "objective": s.objective,
        "period": s.period,
        "url": slo_url(&d.external_url, &s.slo),
        "events": s.events,
        "bad": s.bad,
        "ratio": s.sli_ratio(),
        "budgetRemaining": number(s.budget_remaining),
        "currentBurn": number(s.current_burn),
        "timeToExhaustionSeconds": s.time_to_exhaustion.map(|t| t.as_secs()),
        "noData": s.no_data,
        "alerts": s.alerts.iter().map(|a| json!({
            "severity": a.severity,
            "alertname": a.alertname,
            "startsAt": rfc3339(a.starts_at),
            "endsAt": a.ends_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "topContributors": s.top_contributors.iter().map(super::generic::contributor).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn the_documented_example() {
        let want: Value = serde_json::from_str(include_str!("generic_report.json")).unwrap();
        assert_eq!(payload(&fixture::digest()), want);
    }

    #[test]
    fn never_nan() {
        let mut d = fixture::digest();
        d.slos[0].budget_remaining = f64::NAN;
        d.slos[0].current_burn = f64::INFINITY;
        let p = payload(&d);
        assert_eq!(p["slos"][0]["budgetRemaining"], Value::Null);
        assert_eq!(p["slos"][0]["currentBurn"], Value::Null);
        assert_eq!(p["slos"][2]["ratio"], Value::Null);
    }
}
