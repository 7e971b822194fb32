//! What every notifier shares: the outcome of one attempt ([`Delivery`]), why a notifier could
//! not be built ([`NotifyError`]) and the settings it needs beyond its section
//! ([`NotifierOptions`]).

use std::time::Duration;

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

/// `reports are not supported by <kind>`: the give-up reason of such a delivery.
pub fn unsupported_reason(kind: &str) -> String {
    format!("reports are not supported by {kind}")
}
