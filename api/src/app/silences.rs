//! A new silence, as `POST /api/v1/silences` takes it: read, validated and bounded
//! ([`MAX_MATCHERS`] matchers of at most [`MAX_MATCHER_BYTES`] each, `created_by` and `comment` of
//! at most [`MAX_CREATED_BY_BYTES`] and [`MAX_COMMENT_BYTES`]). The route is in
//! `http/alerts.rs`; the `silence` fuzz target calls [`parse_silence`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use slis::Timestamp;
use tracebudget_alerting::labels::LabelMatcher;
use tracebudget_alerting::mute::Silence;

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Label matchers, all of which must hold, e.g. `["slo = checkout-latency"]`.
    pub matchers: Vec<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<DateTime<Utc>>,
    /// RFC 3339; or give `duration`.
    pub ends_at: Option<DateTime<Utc>>,
    /// e.g. `"2h"`, from `starts_at`.
    pub duration: Option<String>,
    /// Who creates the silence.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// At most this many matchers in one silence.
pub const MAX_MATCHERS: usize = 64;
/// At most this many bytes in one matcher (`slo =~ …`).
pub const MAX_MATCHER_BYTES: usize = 1024;
/// At most this many bytes in `created_by`.
pub const MAX_CREATED_BY_BYTES: usize = 256;
/// At most this many bytes in `comment`.
pub const MAX_COMMENT_BYTES: usize = 4096;

/// Why a new silence is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// Not a silence: unreadable, or a value that cannot be.
    #[error("{0}")]
    Invalid(String),
    /// Over one of the size limits (counted as `silence_limit`).
    #[error("{0}")]
    TooLarge(String),
}

impl From<String> for SilenceError {
    fn from(message: String) -> Self {
        SilenceError::Invalid(message)
    }
}

impl From<&str> for SilenceError {
    fn from(message: &str) -> Self {
        SilenceError::Invalid(message.to_owned())
    }
}

/// The body of `POST /api/v1/silences` read and validated (what the `silence` fuzz target calls).
pub fn parse_silence(body: &[u8], now: Timestamp) -> Result<Silence, SilenceError> {
    let new: NewSilence = serde_json::from_slice(body).map_err(|e| format!("invalid silence: {e}"))?;
    build_silence(new, now)
}

/// The size limits of a new silence, each named in its error.
fn check_limits(n: &NewSilence) -> Result<(), SilenceError> {
    let too_large = |m: String| Err(SilenceError::TooLarge(m));
    if n.matchers.len() > MAX_MATCHERS {
        return too_large(format!("matchers: {} given, at most {MAX_MATCHERS}", n.matchers.len()));
    }
    if let Some((i, m)) = n.matchers.iter().enumerate().find(|(_, m)| m.len() > MAX_MATCHER_BYTES) {
        return too_large(format!(
            "matchers[{i}] is {} bytes, at most {MAX_MATCHER_BYTES}",
            m.len()
        ));
    }
    if n.created_by.len() > MAX_CREATED_BY_BYTES {
        return too_large(format!(
            "created_by is {} bytes, at most {MAX_CREATED_BY_BYTES}",
            n.created_by.len()
        ));
    }
    if n.comment.len() > MAX_COMMENT_BYTES {
        return too_large(format!(
            "comment is {} bytes, at most {MAX_COMMENT_BYTES}",
            n.comment.len()
        ));
    }
    Ok(())
}

/// Validates a new silence into a [`Silence`] with a fresh id.
pub fn build_silence(n: NewSilence, now: Timestamp) -> Result<Silence, SilenceError> {
    check_limits(&n)?;
    if n.matchers.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    let matchers = n
        .matchers
        .iter()
        .map(|m| LabelMatcher::parse(m).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if n.created_by.trim().is_empty() {
        return Err("created_by must name who creates the silence".into());
    }
    if n.comment.trim().is_empty() {
        return Err("comment must say why".into());
    }
    let from_dt = |d: DateTime<Utc>| Timestamp::from_unix_nanos(d.timestamp_nanos_opt().unwrap_or(i64::MAX));
    let starts_at = n.starts_at.map_or(now, from_dt);
    let ends_at = match (n.ends_at, n.duration.as_deref()) {
        (Some(e), None) => from_dt(e),
        (None, Some(d)) => {
            starts_at + slis::parse_duration(d).map_err(|e| SilenceError::Invalid(format!("duration: {e}")))?
        }
        (Some(_), Some(_)) => return Err("give ends_at or duration, not both".into()),
        (None, None) => return Err("give ends_at or duration".into()),
    };
    if ends_at <= starts_at {
        return Err("ends_at must be after starts_at".into());
    }
    if ends_at <= now {
        return Err("ends_at is in the past: the silence would never apply".into());
    }
    Ok(Silence {
        id: format!("{:032x}", rand::random::<u128>()),
        matchers,
        starts_at,
        ends_at,
        created_by: n.created_by,
        comment: n.comment,
        created_at: now,
    })
}
