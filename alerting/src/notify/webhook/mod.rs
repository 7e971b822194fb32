//! `webhook`: an HTTP POST of a JSON payload in one of four formats, one module each.
//!
//! Every request carries `Content-Type: application/json`, `User-Agent: tracebudget/<version>`,
//! `Idempotency-Key`, the configured custom headers and, when a bearer token is set,
//! `Authorization: Bearer <token>` (which wins over a custom `Authorization`). Redirects are not
//! followed. PagerDuty gets one request per alert, with `Idempotency-Key: <id>-<fingerprint>`.
//!
//! Report digests ([`WebhookNotifier::send_report`]) go out in `generic` ([`generic_report`]) and
//! `slack` ([`slack_report`]); Alertmanager's payload and PagerDuty's events describe alerts only.

use std::fmt;
use std::time::Duration;

use reqwest::Client;
use reqwest::header::{self, HeaderMap};

use super::delivery::unsupported_reason;
use super::delivery::{Delivery, NotifierOptions, NotifyError};
use super::http;
use crate::alert::Notification;
use crate::report::Digest;
use config::{WebhookConfig, WebhookFormat, unsupported_format};

pub mod alertmanager;
pub mod config;
pub mod generic;
pub mod generic_report;
pub mod pagerduty;
pub mod slack;
pub mod slack_report;

/// Posts notifications to one webhook.
pub struct WebhookNotifier {
    client: Client,
    url: String,
    format: WebhookFormat,
    headers: HeaderMap,
    routing_key: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("origin", &crate::redact::origin(&self.url))
            .field("format", &self.format)
            .field("headers", &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>())
            .field(
                "routing_key",
                &self.routing_key.as_ref().map(|_| crate::redact::REDACTED),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// Checks the headers and the bearer token and builds the HTTP client.
    pub fn new(config: &WebhookConfig, options: &NotifierOptions) -> Result<Self, NotifyError> {
        let mut headers = http::headers(&config.headers)?;
        if let Some(token) = &config.bearer_token {
            headers.insert(header::AUTHORIZATION, http::bearer(token)?);
        }
        let routing_key = match (config.format, &config.routing_key) {
            (WebhookFormat::Pagerduty, None) => return Err(NotifyError::MissingRoutingKey),
            (_, key) => key.clone(),
        };
        let timeout = config.timeout.0;
        Ok(WebhookNotifier {
            client: http::client(timeout, options.extra_root_pem.as_deref())?,
            url: config.url.0.clone(),
            format: config.format,
            headers,
            routing_key,
            timeout,
        })
    }

    /// Makes one delivery attempt.
    pub async fn send(&self, n: &Notification) -> Delivery {
        let body = match self.format {
            WebhookFormat::Generic => generic::payload(n),
            WebhookFormat::Alertmanager => alertmanager::payload(n),
            WebhookFormat::Slack => slack::payload(n),
            WebhookFormat::Pagerduty => return self.send_pagerduty(n).await,
        };
        http::post_json(
            &self.client,
            &self.url,
            self.headers.clone(),
            &n.id,
            &body,
            self.timeout,
        )
        .await
    }

    /// Makes one delivery attempt of a report digest: formats `generic` and `slack` only (with the
    /// same headers and `Idempotency-Key: <digest id>`); the others give up at once.
    pub async fn send_report(&self, d: &Digest) -> Delivery {
        if let Some(kind) = unsupported_format(self.format) {
            return Delivery::give_up(unsupported_reason(kind));
        }
        let body = if self.format == WebhookFormat::Slack {
            slack_report::payload(d)
        } else {
            generic_report::payload(d)
        };
        http::post_json(
            &self.client,
            &self.url,
            self.headers.clone(),
            &d.id,
            &body,
            self.timeout,
        )
        .await
    }

    async fn send_pagerduty(&self, n: &Notification) -> Delivery {
        let key = self.routing_key.as_deref().unwrap_or_default();
        let mut outcome = Delivery::Delivered;
        for (alert, event) in n.alerts.iter().zip(pagerduty::events(n, key)) {
            let id = format!("{}-{}", n.id, alert.fingerprint);
            let delivery =
                http::post_json(&self.client, &self.url, self.headers.clone(), &id, &event, self.timeout).await;
            outcome = outcome.and(delivery);
        }
        outcome
    }
}
