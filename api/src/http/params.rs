//! The values of the API as it reads and writes them: query parameters that answer an
//! [`ApiError`] when they are wrong (the [`JsonQuery`] extractor, instants in RFC 3339 or unix
//! seconds, durations as `5m`, `1h30m` or seconds), and instants written by [`rfc3339`].

use std::time::Duration;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::DateTime;
use serde::de::DeserializeOwned;
use slis::Timestamp;

use super::error::ApiError;

/// Like [`Query`], but a bad query string answers 400 `{"error": "invalid query: ..."}`.
#[derive(Debug)]
pub struct JsonQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for JsonQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| JsonQuery(q))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// A 400 naming the parameter and its value.
pub fn bad_param(name: &str, value: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{name}: invalid value {value:?}: {why}"))
}

/// An instant: RFC 3339 (`2026-03-01T12:00:00Z`, any offset) or unix seconds (`1772366400`,
/// fractions allowed).
pub fn instant(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs <= 0.0 || secs > 1e10 {
            return Err(bad_param(name, value, "unix seconds out of range"));
        }
        return Ok(Timestamp::from_unix_nanos((secs * 1e9).round() as i64));
    }
    match DateTime::parse_from_rfc3339(v) {
        Ok(t) => t
            .timestamp_nanos_opt()
            .map(Timestamp::from_unix_nanos)
            .ok_or_else(|| bad_param(name, value, "out of range")),
        Err(_) => Err(bad_param(
            name,
            value,
            "expected RFC 3339 (e.g. 2026-03-01T12:00:00Z) or unix seconds",
        )),
    }
}

/// A duration: `5m`, `1h30m` (units ns, us, ms, s, m, h, d, w) or whole seconds (`300`).
pub fn duration(name: &str, value: &str) -> Result<Duration, ApiError> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    slis::parse_duration(v)
        .map_err(|_| bad_param(name, value, "expected a duration such as 5m or 1h30m, or whole seconds"))
}

/// RFC 3339 in UTC with milliseconds, as every timestamp of the API is written.
pub fn rfc3339(t: Timestamp) -> String {
    tracebudget_alerting::alerter::datetime(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_durations() {
        let t = Timestamp::from_unix_secs(1_772_366_400);
        for text in [
            "1772366400",
            "2026-03-01T12:00:00Z",
            "2026-03-01T13:00:00+01:00",
            " 1772366400.0 ",
        ] {
            assert_eq!(instant("from", text).ok(), Some(t), "{text}");
        }
        assert_eq!(
            instant("to", "1772366400.5").ok(),
            Some(Timestamp::from_unix_millis(1_772_366_400_500))
        );
        for bad in ["", "yesterday", "2026-03-01", "-5", "NaN", "1e300"] {
            assert!(instant("from", bad).is_err(), "{bad}");
        }
        let cases = [("5m", 300), ("1h30m", 5_400), ("300", 300), ("0", 0), ("1d", 86_400)];
        for (text, secs) in cases {
            assert_eq!(duration("step", text).ok(), Some(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "5 minutes", "-1", "1.5h"] {
            assert!(duration("step", bad).is_err(), "{bad}");
        }
    }
}
