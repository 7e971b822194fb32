//! `alertmanager`: pushes alerts to an existing Alertmanager, as Prometheus does, with
//! `POST {url}/api/v2/alerts` and a JSON array of postable alerts
//! (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`).
//!
//! Alertmanager resolves an alert by itself once its `endsAt` passes. So a resolved alert is sent
//! with `endsAt` = the time it resolved, and a firing one with `endsAt` = now + 4 × the resend
//! interval ([`NotifierOptions::resend_interval`]): **the caller must re-send every firing alert
//! at least once per resend interval**, or Alertmanager resolves it on its own after the horizon.
//! Four intervals, as Prometheus uses, let three consecutive pushes fail before that happens.
//! Alertmanager does its own grouping, so the notification's group is not sent.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Client;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::delivery::{Delivery, NotifierOptions, NotifyError};
use super::http;
use super::render::{object, rfc3339, slo_url};
use crate::alert::{AlertStatus, Notification};
use config::AlertmanagerConfig;

pub mod config;

/// How many resend intervals a firing alert stays firing in Alertmanager without being re-sent.
pub const RESEND_HORIZON_FACTOR: u32 = 4;

/// Pushes alerts to one Alertmanager.
pub struct AlertmanagerNotifier {
    client: Client,
    endpoint: String,
    horizon: Duration,
    timeout: Duration,
}

impl fmt::Debug for AlertmanagerNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerNotifier")
            .field("origin", &crate::redact::origin(&self.endpoint))
            .field("horizon", &self.horizon)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AlertmanagerNotifier {
    /// Builds the HTTP client; the horizon is [`RESEND_HORIZON_FACTOR`] × `resend_interval`.
    pub fn new(config: &AlertmanagerConfig, options: &NotifierOptions) -> Result<Self, NotifyError> {
        let timeout = options.alertmanager_timeout;
        Ok(AlertmanagerNotifier {
            client: http::client(timeout, options.extra_root_pem.as_deref())?,
            endpoint: format!("{}/api/v2/alerts", config.url.0.trim_end_matches('/')),
            horizon: options.resend_interval * RESEND_HORIZON_FACTOR,
            timeout,
        })
    }

    /// Makes one push of every alert of the notification. Alertmanager answers 200.
    pub async fn send(&self, n: &Notification) -> Delivery {
        let body = postable_alerts(n, Utc::now(), self.horizon);
        http::post_json(
            &self.client,
            &self.endpoint,
            HeaderMap::new(),
            &n.id,
            &body,
            self.timeout,
        )
        .await
    }
}

/// The body of `POST /api/v2/alerts`: resolved alerts end when they resolved (now if unknown),
/// firing ones at `now + horizon`.
pub fn postable_alerts(n: &Notification, now: DateTime<Utc>, horizon: Duration) -> Value {
    let horizon = chrono::Duration::from_std(horizon).unwrap_or(chrono::Duration::MAX);
    let alerts = n.alerts.iter().map(|a| {
        let ends_at = match a.status {
            AlertStatus::Resolved => a.ends_at.unwrap_or(now),
            AlertStatus::Firing => now.checked_add_signed(horizon).unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        json!({
            "labels": object(&a.labels),
            "annotations": object(&a.annotations),
            "startsAt": rfc3339(a.starts_at),
            "endsAt": rfc3339(ends_at),
            "generatorURL": slo_url(&n.external_url, &a.detail.slo),
        })
    });
    Value::Array(alerts.collect())
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn exact_body() {
        let now = Utc.with_ymd_and_hms(2025, 3, 1, 12, 5, 0).unwrap();
        let want = json!([
            {
                "labels": {
                    "alertname": "SLOBurnRate", "journey": "checkout", "severity": "page",
                    "slo": "checkout-latency", "team": "payments"
                },
                "annotations": {
                    "description": "99.9% of checkouts finish within 800ms",
                    "summary": "checkout-latency burns its error budget 14.9 times too fast"
                },
                "startsAt": "2025-03-01T12:00:00Z",
                "endsAt": "2025-03-01T12:09:00Z",
                "generatorURL": "http://127.0.0.1:8080/slos/checkout-latency"
            },
            {
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
                "generatorURL": "http://127.0.0.1:8080/slos/checkout-latency"
            }
        ]);
        let horizon = Duration::from_secs(60) * RESEND_HORIZON_FACTOR;
        assert_eq!(postable_alerts(&fixture::notification(), now, horizon), want);
    }

    #[test]
    fn resolved_without_end_ends_now() {
        let now = Utc.with_ymd_and_hms(2025, 3, 1, 12, 5, 0).unwrap();
        let mut n = fixture::notification();
        n.alerts[1].ends_at = None;
        assert_eq!(
            postable_alerts(&n, now, Duration::ZERO)[1]["endsAt"],
            "2025-03-01T12:05:00Z"
        );
    }
}
