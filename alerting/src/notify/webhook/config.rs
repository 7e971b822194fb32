//! `[[receivers]] webhook`: the section of a [`super::WebhookNotifier`], beside it; `crate::config`
//! assembles the sections into a `ReceiverConfig`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use slis::config::HumanDuration;

use crate::notify::http::HttpUrl;
use crate::redact::REDACTED;

/// `Debug` shows no secret: the URL's origin only (Slack keeps its secret in the path), header
/// names only, and whether a token or key is set.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the notification is POSTed to.
    pub url: HttpUrl,
    /// Payload: `generic` (tracebudget's JSON), `alertmanager` (webhook v4), `slack`, `pagerduty`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer …`; never logged.
    pub bearer_token: Option<String>,
    /// PagerDuty Events API v2 routing key (format `pagerduty`).
    pub routing_key: Option<String>,
    /// Give up on one attempt after this long (the outbox retries).
    #[serde(default = "ten_seconds")]
    pub timeout: HumanDuration,
}

fn ten_seconds() -> HumanDuration {
    Duration::from_secs(10).into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Generic,
    Alertmanager,
    Slack,
    Pagerduty,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &crate::redact::origin(&self.url.0))
            .field("format", &self.format)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| REDACTED))
            .field("routing_key", &self.routing_key.as_ref().map(|_| REDACTED))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The webhook formats that cannot take reports, named as [`unsupported_by`] names them.
pub fn unsupported_format(format: WebhookFormat) -> Option<&'static str> {
    match format {
        WebhookFormat::Generic | WebhookFormat::Slack => None,
        WebhookFormat::Alertmanager => Some("webhook format alertmanager"),
        WebhookFormat::Pagerduty => Some("webhook format pagerduty"),
    }
}
