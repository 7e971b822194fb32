//! Notifiers: deliver one [`Notification`] (a group of alerts for one receiver) and say whether a
//! failure is worth retrying ([`Delivery`]). The outbox decides when to retry; a notifier makes
//! exactly one attempt per call.
//!
//! One file per receiver kind:
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
//! The notification types derive serde as the stored form (alert state, history and outbox, JSON
//! in the database) and as the API's (`GET /api/v1/alerts`, `/api/v1/alerts/history`); durations
//! there are seconds under `_seconds` names ([`crate::seconds`], which also reads the
//! `{"secs", "nanos"}` objects older versions stored). What a receiver gets is always rendered
//! by its format.
//!
//! **Invariant:** a [`Delivery`] reason, a [`NotifyError`] and the `Debug` output of a notifier
//! never contain a secret: no bearer token, password, routing key, header value, nor the path or
//! query of a webhook URL (Slack keeps its secret there).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::ReceiverConfig;
use crate::report::{self, Digest};

pub mod alertmanager;
pub mod email;
pub mod email_report;
pub(crate) mod http;
mod render;
pub mod webhook;

#[cfg(test)]
mod fixture;

pub use alertmanager::AlertmanagerNotifier;
pub use email::EmailNotifier;
pub use webhook::WebhookNotifier;

/// Whether an alert is still burning its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The burn-rate rule holds.
    Firing,
    /// The rule stopped holding; [`Alert::ends_at`] says when.
    Resolved,
}

impl AlertStatus {
    /// `"firing"` or `"resolved"`, as on the wire of every format.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert: an SLO burning its budget fast enough for one rule of its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// 16 lowercase hex characters: a stable id of the label set. PagerDuty's `dedup_key`.
    pub fingerprint: String,
    /// Always `alertname`, `slo` and `severity` (`page` or `ticket`), plus journey and user labels.
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`, free text.
    pub annotations: BTreeMap<String, String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// When the alert started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while firing.
    pub ends_at: Option<DateTime<Utc>>,
    /// The numbers behind the alert and what only traces can tell.
    pub detail: AlertDetail,
}

/// The numbers behind an alert, as the evaluator saw them when it last fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    /// SLO name.
    pub slo: String,
    /// Journey the SLO measures.
    pub journey: String,
    /// Objective, e.g. `0.999`.
    pub objective: f64,
    /// `"page"` or `"ticket"`.
    pub severity: String,
    /// Burn-rate threshold of the rule that fired, e.g. `14.4`.
    pub factor: f64,
    /// The rule's long window, e.g. 1 h. JSON: `long_window_seconds`.
    #[serde(rename = "long_window_seconds", alias = "long_window", with = "crate::seconds")]
    pub long_window: Duration,
    /// The rule's short window, e.g. 5 min. JSON: `short_window_seconds`.
    #[serde(rename = "short_window_seconds", alias = "short_window", with = "crate::seconds")]
    pub short_window: Duration,
    /// Burn rate over the long window.
    pub burn_long: f64,
    /// Burn rate over the short window.
    pub burn_short: f64,
    /// Share of the period's error budget left: 1.0 untouched, 0 spent, negative overspent.
    pub budget_remaining: f64,
    /// When the budget runs out at the current long-window burn rate; `None` when it does not.
    /// JSON: `time_to_exhaustion_seconds`.
    #[serde(
        rename = "time_to_exhaustion_seconds",
        alias = "time_to_exhaustion",
        with = "crate::seconds::option"
    )]
    pub time_to_exhaustion: Option<Duration>,
    /// The worst bad traces, worst first.
    pub exemplars: Vec<Exemplar>,
    /// The services and operations behind the bad events, largest share first.
    pub contributors: Vec<Contributor>,
}

/// A bad trace worth opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    /// Hex trace id.
    pub trace_id: String,
    /// Link to the trace in the tracing UI, from `[alerting] trace_url`.
    pub url: Option<String>,
    /// Root span duration. JSON: `latency_seconds`.
    #[serde(rename = "latency_seconds", alias = "latency", with = "crate::seconds")]
    pub latency: Duration,
    /// Whether the trace counted as an error.
    pub error: bool,
    /// When the root span started.
    pub at: DateTime<Utc>,
}

/// A service and operation behind a share of the bad events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// `service.name`.
    pub service: String,
    /// Span name.
    pub operation: String,
    /// Bad events attributed to this operation.
    pub bad_events: u64,
    /// `bad_events` over all bad events, 0..=1.
    pub share: f64,
    /// Why it is blamed: `"error originated here"` or `"slowest child span"`.
    pub reason: String,
}

/// A group of alerts for one receiver: what one call of `send` delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key, unique per notification: header `Idempotency-Key`, email `Message-ID`.
    pub id: String,
    /// Receiver name.
    pub receiver: String,
    /// The group's key, e.g. `{}/{slo="checkout-latency"}`.
    pub group_key: String,
    /// The labels the route groups by, with this group's values.
    pub group_labels: BTreeMap<String, String>,
    /// The group's alerts, firing and resolved.
    pub alerts: Vec<Alert>,
    /// Base URL of tracebudget's UI, e.g. `http://127.0.0.1:8080`.
    pub external_url: String,
}

impl Notification {
    /// Firing when any alert fires, else resolved (Alertmanager's rule).
    pub fn status(&self) -> AlertStatus {
        if self.alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }

    /// The alert that titles the notification: the first firing one, else the first.
    pub(crate) fn lead(&self) -> Option<&Alert> {
        self.alerts
            .iter()
            .find(|a| a.status == AlertStatus::Firing)
            .or_else(|| self.alerts.first())
    }
}

/// The page of an SLO in tracebudget's UI: `{external_url}/slos/{slo}`, the SLO percent-encoded.
/// Every format links there (Alertmanager's `generatorURL`).
pub fn slo_url(external_url: &str, slo: &str) -> String {
    let mut url = external_url.trim_end_matches('/').to_owned();
    url.push_str("/slos/");
    for b in slo.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver accepted the notification.
    Delivered,
    /// Worth trying again: a 408, 429 or 5xx answer, a refused connection, a timeout, a transient
    /// SMTP reply.
    Retry {
        /// Short and stable, e.g. `"http 503"`; never a secret.
        reason: String,
        /// The receiver's `Retry-After`, when it sent one.
        after: Option<Duration>,
    },
    /// Retrying cannot help: another 4xx answer, a permanent SMTP reply.
    GiveUp {
        /// Short and stable, e.g. `"http 404"`; never a secret.
        reason: String,
    },
}

impl Delivery {
    /// A retry without `Retry-After`.
    pub(crate) fn retry(reason: impl Into<String>) -> Self {
        Delivery::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A give-up.
    pub(crate) fn give_up(reason: impl Into<String>) -> Self {
        Delivery::GiveUp { reason: reason.into() }
    }

    /// Combines the outcomes of several requests of one notification (PagerDuty sends one event
    /// per alert): retry if any should be retried (every request is idempotent), else give up if
    /// any gave up, else delivered. Among retries, the longest `Retry-After` wins.
    pub(crate) fn and(self, other: Delivery) -> Delivery {
        use Delivery::*;
        match (self, other) {
            (Retry { reason, after: a }, Retry { after: b, .. }) => Retry {
                reason,
                after: a.max(b),
            },
            (r @ Retry { .. }, _) | (_, r @ Retry { .. }) => r,
            (g @ GiveUp { .. }, _) | (_, g @ GiveUp { .. }) => g,
            (Delivered, Delivered) => Delivered,
        }
    }
}

/// Why a notifier could not be built from its config. Raised once, at start-up or reload.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `[[receivers]]` without any of `webhook`, `email`, `alertmanager`.
    #[error("receiver {0:?} sets none of webhook, email, alertmanager")]
    NoKind(String),
    /// A custom header's name.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// A custom header's value (never shown).
    #[error("invalid value for header {0:?}")]
    HeaderValue(String),
    /// The bearer token cannot be sent in a header (never shown).
    #[error("the bearer token is not a valid header value")]
    BearerToken,
    /// Format `pagerduty` without `routing_key`.
    #[error("the pagerduty format needs a routing_key")]
    MissingRoutingKey,
    /// An email address in `from` or `to`.
    #[error("invalid email address {0:?}")]
    Address(String),
    /// Email without recipients.
    #[error("email has no recipient")]
    NoRecipient,
    /// `smarthost` is not `host:port`.
    #[error("invalid smarthost {0:?}: expected host:port")]
    Smarthost(String),
    /// Only one of `username` and `password`.
    #[error("email username and password must be set together")]
    Credentials,
    /// The extra root certificate or the TLS settings.
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("cannot build the http client")]
    HttpClient,
}

/// Settings a notifier needs beyond its `[[receivers]]` section.
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// PEM root certificates to trust besides the system's, for HTTPS and SMTP TLS (e.g. a private
    /// CA, or a test's self-signed certificate).
    pub extra_root_pem: Option<Vec<u8>>,
    /// Give up on one SMTP attempt after this long. Default 30 s.
    pub email_timeout: Duration,
    /// Give up on one push to Alertmanager after this long. Default 10 s.
    pub alertmanager_timeout: Duration,
    /// How often the caller re-sends firing alerts to Alertmanager; see [`AlertmanagerNotifier`].
    /// Default 1 min.
    pub resend_interval: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            extra_root_pem: None,
            email_timeout: Duration::from_secs(30),
            alertmanager_timeout: Duration::from_secs(10),
            resend_interval: Duration::from_secs(60),
        }
    }
}

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
            Notifier::Alertmanager(_) => Delivery::give_up(report::unsupported_reason("alertmanager")),
        }
    }
}

/// A timestamp as Go's `time.RFC3339Nano` writes it (what Alertmanager emits): UTC with `Z`,
/// fractional seconds only when non-zero and without trailing zeros.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
