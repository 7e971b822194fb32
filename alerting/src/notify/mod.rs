//! Notifiers: deliver one [`Notification`] (a group of alerts for one receiver) and say whether a
//! failure is worth retrying ([`Delivery`]). The outbox decides when to retry; a notifier makes
//! exactly one attempt per call.
//!
//! One module per receiver kind:
//! - [`webhook`]: an HTTP POST in one of four payload formats: [`webhook::generic`] (tracebudget's
//!   own JSON), [`webhook::alertmanager`] (Alertmanager's webhook payload, version 4),
//!   [`webhook::slack`] (an incoming-webhook message) and [`webhook::pagerduty`] (Events API v2).
//! - [`email`]: SMTP through lettre, STARTTLS, implicit TLS or plain.
//! - [`alertmanager`]: pushes the alerts to an existing Alertmanager (`POST /api/v2/alerts`).
//!
//! Report digests ([`crate::report::Digest`]) go through [`Notifier::send_report`]: webhooks in
//! format `generic` ([`webhook::generic_report`]) or `slack` ([`webhook::slack_report`]), and
//! email ([`email_report`]), with the same idempotency key conventions.
//!
//! Every payload is a pure function of the notification, tested as data; `send` is the only I/O.
//! The alert types themselves ([`Alert`], [`Notification`], ...) live in [`crate::alert`] and are
//! re-exported here. What a receiver gets is always rendered by its format.
//!
//! This file only assembles: the [`Notifier`] enum and re-exports. What the notifiers share lives
//! in leaf modules they import directly ([`delivery`], `http`, `render`), never from here, so no
//! import goes in a circle. Each notifier's `[[receivers]]` section is its `config` submodule
//! ([`webhook::config`], [`email::config`], [`alertmanager::config`]), which `crate::config`
//! assembles; those import nothing above them.
//!
//! **Invariant:** a [`Delivery`] reason, a [`NotifyError`] and the `Debug` output of a notifier
//! never contain a secret: no bearer token, password, routing key, header value, nor the path or
//! query of a webhook URL (Slack keeps its secret there).

pub use crate::alert::{Alert, AlertDetail, AlertStatus, Contributor, Exemplar, Notification};
use crate::config::ReceiverConfig;
use crate::report::Digest;
use delivery::unsupported_reason;

pub mod alertmanager;
pub mod delivery;
pub mod email;
pub mod email_report;
pub(crate) mod http;
mod render;
pub mod webhook;

#[cfg(test)]
mod fixture;

pub use alertmanager::AlertmanagerNotifier;
pub use delivery::{Delivery, NotifierOptions, NotifyError};
pub use email::EmailNotifier;
pub use render::slo_url;
pub use webhook::WebhookNotifier;

/// A notifier of any kind, built from one `[[receivers]]` entry.
#[derive(Debug)]
pub enum Notifier {
    /// `webhook`.
    Webhook(WebhookNotifier),
    /// `email`.
    Email(EmailNotifier),
    /// `alertmanager`.
    Alertmanager(AlertmanagerNotifier),
}

impl Notifier {
    /// Builds the notifier of a receiver; the config is expected to be validated already.
    pub fn from_config(receiver: &ReceiverConfig, options: &NotifierOptions) -> Result<Self, NotifyError> {
        if let Some(w) = &receiver.webhook {
            Ok(Notifier::Webhook(WebhookNotifier::new(w, options)?))
        } else if let Some(e) = &receiver.email {
            Ok(Notifier::Email(EmailNotifier::new(e, options)?))
        } else if let Some(a) = &receiver.alertmanager {
            Ok(Notifier::Alertmanager(AlertmanagerNotifier::new(a, options)?))
        } else {
            Err(NotifyError::NoKind(receiver.name.get_ref().clone()))
        }
    }

    /// Makes one delivery attempt.
    pub async fn send(&self, notification: &Notification) -> Delivery {
        match self {
            Notifier::Webhook(n) => n.send(notification).await,
            Notifier::Email(n) => n.send(notification).await,
            Notifier::Alertmanager(n) => n.send(notification).await,
        }
    }

    /// Makes one delivery attempt of a report digest. Webhooks in format `generic` or `slack` and
    /// email take it; the other formats and the `alertmanager` kind give up at once with
    /// `reports are not supported by <kind>` (config validation refuses such a `[[reports]]`
    /// entry, so this only happens to a caller that skipped it).
    pub async fn send_report(&self, digest: &Digest) -> Delivery {
        match self {
            Notifier::Webhook(n) => n.send_report(digest).await,
            Notifier::Email(n) => n.send_report(digest).await,
            Notifier::Alertmanager(_) => Delivery::give_up(unsupported_reason("alertmanager")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::render::rfc3339;
    use super::*;

    #[test]
    fn rfc3339_like_go() {
        let t = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 5).unwrap();
        for (nanos, want) in [
            (0, "2025-03-01T12:00:05Z"),
            (500_000_000, "2025-03-01T12:00:05.5Z"),
            (123_456_789, "2025-03-01T12:00:05.123456789Z"),
            (1_000, "2025-03-01T12:00:05.000001Z"),
        ] {
            assert_eq!(rfc3339(t + chrono::Duration::nanoseconds(nanos)), want);
        }
    }

    #[test]
    fn slo_url_escapes_the_name() {
        assert_eq!(
            slo_url("http://h:8080/", "checkout-latency"),
            "http://h:8080/slos/checkout-latency"
        );
        assert_eq!(slo_url("http://h", "a b/c?"), "http://h/slos/a%20b%2Fc%3F");
    }

    #[test]
    fn combined_delivery() {
        let retry = |s: u64| Delivery::Retry {
            reason: "http 503".into(),
            after: Some(Duration::from_secs(s)),
        };
        let cases = [
            (Delivery::Delivered, Delivery::Delivered, Delivery::Delivered),
            (
                Delivery::Delivered,
                Delivery::give_up("http 400"),
                Delivery::give_up("http 400"),
            ),
            (Delivery::give_up("http 400"), retry(3), retry(3)),
            (retry(3), retry(9), retry(9)),
            (retry(9), Delivery::Delivered, retry(9)),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.clone().and(b.clone()), want, "{a:?} and {b:?}");
        }
    }

    #[test]
    fn status_is_firing_when_any_alert_fires() {
        let mut n = fixture::notification();
        assert_eq!(n.status(), AlertStatus::Firing);
        for a in &mut n.alerts {
            a.status = AlertStatus::Resolved;
        }
        assert_eq!(n.status(), AlertStatus::Resolved);
    }

    /// Issue 6: an outbox payload as stored before durations became seconds (serde's
    /// `{"secs", "nanos"}` objects under `long_window`, `latency` …), serialized from
    /// `fixture::notification()` by that version.
    const OUTBOX_PAYLOAD_BEFORE_ISSUE_6: &str = r#"{"id":"01JN6Q3Z8K4W2V5X7Y9A0B1C2D","receiver":"oncall","group_key":"{}/{slo=\"checkout-latency\"}","group_labels":{"slo":"checkout-latency"},"alerts":[{"fingerprint":"a1b2c3d4e5f60718","labels":{"alertname":"SLOBurnRate","journey":"checkout","severity":"page","slo":"checkout-latency","team":"payments"},"annotations":{"description":"99.9% of checkouts finish within 800ms","summary":"checkout-latency burns its error budget 14.9 times too fast"},"status":"firing","starts_at":"2025-03-01T12:00:00Z","ends_at":null,"detail":{"slo":"checkout-latency","journey":"checkout","objective":0.999,"severity":"page","factor":14.4,"long_window":{"secs":3600,"nanos":0},"short_window":{"secs":300,"nanos":0},"burn_long":14.91,"burn_short":15.2,"budget_remaining":0.42,"time_to_exhaustion":{"secs":10440,"nanos":0},"exemplars":[{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","url":"https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736","latency":{"secs":2,"nanos":500000000},"error":true,"at":"2025-03-01T11:58:30Z"},{"trace_id":"00f067aa0ba902b700f067aa0ba902b7","url":null,"latency":{"secs":1,"nanos":250000000},"error":false,"at":"2025-03-01T11:59:00Z"}],"contributors":[{"service":"payments","operation":"POST /charge","bad_events":31,"share":0.62,"reason":"error originated here"},{"service":"inventory","operation":"reserve","bad_events":19,"share":0.38,"reason":"slowest child span"}]}},{"fingerprint":"0f1e2d3c4b5a6978","labels":{"alertname":"SLOBurnRate","journey":"checkout","severity":"ticket","slo":"checkout-latency","team":"payments"},"annotations":{"description":"99.9% of checkouts finish within 800ms","summary":"checkout-latency burned its error budget 1.2 times too fast"},"status":"resolved","starts_at":"2025-02-27T08:00:00Z","ends_at":"2025-03-01T11:30:00.250Z","detail":{"slo":"checkout-latency","journey":"checkout","objective":0.999,"severity":"ticket","factor":1.0,"long_window":{"secs":259200,"nanos":0},"short_window":{"secs":21600,"nanos":0},"burn_long":0.8,"burn_short":0.31,"budget_remaining":0.42,"time_to_exhaustion":null,"exemplars":[],"contributors":[]}}],"external_url":"http://127.0.0.1:8080"}"#;

    #[test]
    fn reads_a_notification_stored_with_secs_and_nanos() {
        let old: Notification = serde_json::from_str(OUTBOX_PAYLOAD_BEFORE_ISSUE_6).unwrap();
        assert_eq!(old, fixture::notification());
    }

    #[test]
    fn durations_are_seconds_in_the_stored_and_api_form() {
        let n = fixture::notification();
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(
            v["alerts"][0]["detail"],
            serde_json::json!({
                "slo": "checkout-latency",
                "journey": "checkout",
                "objective": 0.999,
                "severity": "page",
                "factor": 14.4,
                "long_window_seconds": 3600.0,
                "short_window_seconds": 300.0,
                "burn_long": 14.91,
                "burn_short": 15.2,
                "budget_remaining": 0.42,
                "time_to_exhaustion_seconds": 10440.0,
                "exemplars": [
                    {
                        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                        "url": "https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736",
                        "latency_seconds": 2.5,
                        "error": true,
                        "at": "2025-03-01T11:58:30Z"
                    },
                    {
                        "trace_id": "00f067aa0ba902b700f067aa0ba902b7",
                        "url": null,
                        "latency_seconds": 1.25,
                        "error": false,
                        "at": "2025-03-01T11:59:00Z"
                    }
                ],
                "contributors": [
                    {"service": "payments", "operation": "POST /charge", "bad_events": 31, "share": 0.62, "reason": "error originated here"},
                    {"service": "inventory", "operation": "reserve", "bad_events": 19, "share": 0.38, "reason": "slowest child span"}
                ]
            })
        );
        assert_eq!(
            v["alerts"][1]["detail"]["time_to_exhaustion_seconds"],
            serde_json::Value::Null
        );
        assert_eq!(v["alerts"][1]["detail"]["long_window_seconds"], 259_200.0);
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }
}
