//! What the HTTP notifiers share: the client, one JSON POST, and the classification of its
//! outcome into a [`Delivery`].

use std::error::Error as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode};

use serde::Deserialize;

use super::delivery::{Delivery, NotifyError};

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpUrl(pub String);

impl TryFrom<String> for HttpUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(HttpUrl(s)),
            // The value is not repeated (a webhook URL holds its key); the error points at it.
            _ => Err("invalid URL: expected http://HOST/… or https://HOST/…".to_owned()),
        }
    }
}

/// `tracebudget/<version>`, the `User-Agent` of every request.
pub(crate) const USER_AGENT: &str = concat!("tracebudget/", env!("CARGO_PKG_VERSION"));

/// A client that gives up after `timeout`, never follows redirects (a redirect would carry the
/// bearer token elsewhere; a 3xx is a configuration error), and trusts `extra_root_pem` besides
/// the system's roots.
pub(crate) fn client(timeout: Duration, extra_root_pem: Option<&[u8]>) -> Result<Client, NotifyError> {
    let mut builder = Client::builder()
        .timeout(timeout)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_root_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| NotifyError::Tls("bad PEM".into()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|_| NotifyError::HttpClient)
}

/// Custom headers from config, checked once; values are marked sensitive.
pub(crate) fn headers<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<HeaderMap, NotifyError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let n = HeaderName::try_from(name.as_str()).map_err(|_| NotifyError::HeaderName(name.clone()))?;
        let mut v = HeaderValue::try_from(value.as_str()).map_err(|_| NotifyError::HeaderValue(name.clone()))?;
        v.set_sensitive(true);
        map.insert(n, v);
    }
    Ok(map)
}

/// `Authorization: Bearer <token>`, marked sensitive.
pub(crate) fn bearer(token: &str) -> Result<HeaderValue, NotifyError> {
    let mut v = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| NotifyError::BearerToken)?;
    v.set_sensitive(true);
    Ok(v)
}

/// POSTs `body` as JSON with `headers` (custom ones first, then `Idempotency-Key`), and
/// classifies the outcome.
pub(crate) async fn post_json(
    client: &Client,
    url: &str,
    mut headers: HeaderMap,
    idempotency_key: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Delivery {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match HeaderValue::try_from(idempotency_key) {
        Ok(v) => {
            headers.insert(HeaderName::from_static("idempotency-key"), v);
        }
        Err(_) => return Delivery::give_up("notification id is not a valid header value"),
    }
    let body = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(_) => return Delivery::give_up("cannot encode the payload"),
    };
    match client.post(url).headers(headers).body(body).send().await {
        Ok(response) => classify_status(
            response.status(),
            response.headers().get(header::RETRY_AFTER),
            Utc::now(),
        ),
        Err(e) => classify_error(&e, timeout),
    }
}

/// 2xx delivered; 408, 429 and 5xx retried (honouring `Retry-After`); anything else given up.
pub(crate) fn classify_status(status: StatusCode, retry_after: Option<&HeaderValue>, now: DateTime<Utc>) -> Delivery {
    let reason = format!("http {}", status.as_u16());
    if status.is_success() {
        Delivery::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        let after = retry_after
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        Delivery::Retry { reason, after }
    } else {
        Delivery::GiveUp { reason }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means now).
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// Timeouts and connection failures are retried; the reason names the I/O error kind, never the
/// URL (`reqwest::Error`'s `Display` would show it).
pub(crate) fn classify_error(e: &reqwest::Error, timeout: Duration) -> Delivery {
    if e.is_timeout() {
        return Delivery::retry(format!("timed out after {}", slis::format_duration(timeout)));
    }
    let mut source = e.source();
    let mut io_kind = None;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        source = s.source();
    }
    let what = if e.is_connect() {
        "connect error"
    } else {
        "request error"
    };
    match io_kind {
        Some(kind) => Delivery::retry(format!("{what}: {kind}")),
        None => Delivery::retry(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn statuses() {
        let now = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        let retry_after = |v: &'static str| Some(HeaderValue::from_static(v));
        let cases: &[(u16, Option<HeaderValue>, Delivery)] = &[
            (200, None, Delivery::Delivered),
            (202, None, Delivery::Delivered),
            (204, None, Delivery::Delivered),
            (301, None, Delivery::give_up("http 301")),
            (400, retry_after("7"), Delivery::give_up("http 400")),
            (401, None, Delivery::give_up("http 401")),
            (404, None, Delivery::give_up("http 404")),
            (408, None, Delivery::retry("http 408")),
            (
                429,
                retry_after("7"),
                Delivery::Retry {
                    reason: "http 429".into(),
                    after: Some(Duration::from_secs(7)),
                },
            ),
            (
                503,
                retry_after("Sat, 01 Mar 2025 12:01:30 GMT"),
                Delivery::Retry {
                    reason: "http 503".into(),
                    after: Some(Duration::from_secs(90)),
                },
            ),
            (
                503,
                retry_after("Sat, 01 Mar 2025 11:00:00 GMT"),
                Delivery::Retry {
                    reason: "http 503".into(),
                    after: Some(Duration::ZERO),
                },
            ),
            (500, retry_after("soon"), Delivery::retry("http 500")),
        ];
        for (status, header, want) in cases {
            let got = classify_status(StatusCode::from_u16(*status).unwrap(), header.as_ref(), now);
            assert_eq!(&got, want, "status {status}");
        }
    }

    #[test]
    fn header_errors_name_the_header_not_the_value() {
        let name = "X-Api-Key".to_owned();
        let value = "SECRET\nvalue".to_owned();
        let e = headers([(&name, &value)]).unwrap_err();
        assert_eq!(e.to_string(), "invalid value for header \"X-Api-Key\"");
        assert!(!format!("{e:?}").contains("SECRET"));
        assert!(matches!(bearer("SECRET\n"), Err(NotifyError::BearerToken)));
    }
}
