//! The alert model: an [`Alert`] with its [`AlertDetail`] (the numbers, [`Exemplar`] traces and
//! [`Contributor`] operations behind it) and the [`Notification`] that groups alerts for one
//! receiver. The evaluator makes them, the store keeps them, reports and notifiers read them; this
//! module depends on nothing of those.
//!
//! The types derive serde as the stored form (alert state, history and outbox, JSON in the
//! database) and as the API's (`GET /api/v1/alerts`, `/api/v1/alerts/history`); durations there
//! are seconds under `_seconds` names ([`crate::seconds`], which also reads the `{"secs",
//! "nanos"}` objects older versions stored).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
