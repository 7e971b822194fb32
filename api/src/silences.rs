//! `/api/v1/alerts`, `/api/v1/alerts/history`, `/api/v1/notifications` and `/api/v1/silences`:
//! what is firing (with exemplars and top contributors), what fired, what was sent, and the
//! silences, created and expired here or with `tracebudget silence add|list|expire`.
//! Writes follow [`authorize_write`]: the bearer token when one is configured, else only on a
//! loopback listen address (and, before that, the `Origin` and `Content-Type` rules of
//! [`crate::http::auth`]). A silence is bounded: [`MAX_MATCHERS`] matchers of at most
//! [`MAX_MATCHER_BYTES`] each, `created_by` and `comment` of at most [`MAX_CREATED_BY_BYTES`] and
//! [`MAX_COMMENT_BYTES`].

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use slis::Timestamp;
use slis::config::Secret;
use tracebudget_alerting::labels::LabelMatcher;
use tracebudget_alerting::mute::{MuteReason, Silence};

use crate::http::auth::{Refusal, authorize_write, require_json};
use crate::http::params::JsonQuery;
use crate::http::{AppState, rfc3339};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/silences", get(silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
}

/// A JSON error body: `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Checks the bearer token of a write; `None` when allowed.
pub fn check_token(headers: &HeaderMap, token: Option<&Secret>) -> Option<Response> {
    let want = token?;
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // `matches` compares every byte whatever the first difference, so timing tells nothing.
    let ok = got.is_some_and(|g| want.matches(g.as_bytes()));
    (!ok).then(|| {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <api_token>",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("a valid header"));
        r
    })
}

/// Every alert the evaluator holds, each with `muted`: `null`, `{"by": "silence", "silences":
/// [ids]}` or `{"by": "inhibition", "source": <fingerprint>}`, as the dispatcher's `Muter`
/// decides it now (only a firing alert can be muted).
async fn alerts(State(s): State<AppState>) -> Json<Value> {
    let now = s.now();
    let st = s.alerts.alerter.lock().await;
    let reasons = st.mute_reasons(now);
    let alerts: Vec<Value> = st
        .alerts
        .values()
        .map(|a| {
            let mut v = serde_json::to_value(a.to_alert()).expect("plain data");
            v["muted"] = reasons.get(&a.fingerprint).map_or(Value::Null, muted_json);
            v
        })
        .collect();
    Json(json!({ "alerts": alerts }))
}

fn muted_json(r: &MuteReason) -> Value {
    match r {
        MuteReason::Silenced { silences } => json!({ "by": "silence", "silences": silences }),
        MuteReason::Inhibited { source } => json!({ "by": "inhibition", "source": source }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// How far back, e.g. `24h` (default 7d).
    since: Option<String>,
    limit: Option<i64>,
}

async fn history(State(s): State<AppState>, JsonQuery(q): JsonQuery<HistoryQuery>) -> Response {
    let since = match q.since.as_deref().map(slis::parse_duration).transpose() {
        Ok(d) => d.unwrap_or(Duration::from_secs(7 * 86_400)),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("since: {e}")),
    };
    let limit = q.limit.unwrap_or(500).clamp(1, 10_000);
    match s.alerts.store.history(s.now() - since, limit).await {
        Ok(rows) => Json(json!({
            "events": rows.iter().map(|h| json!({
                "fingerprint": h.fingerprint,
                "slo": h.slo,
                "severity": h.severity,
                "alertname": h.alertname,
                "event": h.event,
                "at": rfc3339(h.at),
                "alert": serde_json::to_value(&h.alert).expect("plain data"),
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the history: {e}")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn notifications(State(s): State<AppState>, JsonQuery(q): JsonQuery<LimitQuery>) -> Response {
    let limit = q.limit.unwrap_or(200).clamp(1, 10_000);
    match s.alerts.store.log(limit).await {
        Ok(rows) => Json(json!({
            "notifications": rows.iter().map(|r| json!({
                "id": r.id,
                "receiver": r.receiver,
                "group_key": r.group_key,
                "kind": r.kind,
                "state": r.state,
                "attempts": r.attempts,
                "created_at": rfc3339(r.created_at),
                "done_at": r.done_at.map(rfc3339),
                "last_error": r.last_error,
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the outbox: {e}")),
    }
}

fn silence_json(s: &Silence, now: Timestamp) -> Value {
    json!({
        "id": s.id,
        "matchers": s.matchers.iter().map(LabelMatcher::as_str).collect::<Vec<_>>(),
        "starts_at": rfc3339(s.starts_at),
        "ends_at": rfc3339(s.ends_at),
        "created_by": s.created_by,
        "comment": s.comment,
        "created_at": rfc3339(s.created_at),
        "state": s.state(now).as_str(),
    })
}

async fn silences(State(s): State<AppState>) -> Response {
    let now = s.now();
    match s.alerts.store.silences().await {
        Ok(list) => Json(json!({
            "silences": list.iter().map(|x| silence_json(&x.silence, now)).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the silences: {e}"),
        ),
    }
}

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
    pub created_by: String,
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

async fn create_silence(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(denied) = authorize_write(&s, &headers).or_else(|| require_json(&s, &headers)) {
        return denied;
    }
    let now = s.now();
    let silence = match parse_silence(&body, now) {
        Ok(x) => x,
        Err(e) => {
            if let SilenceError::TooLarge(_) = e {
                s.guard.count(Refusal::SilenceLimit);
            }
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if let Err(e) = s.alerts.store.add_silence(&silence).await {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot store the silence: {e}"),
        );
    }
    tracing::info!(id = %silence.id, by = %silence.created_by, "silence created");
    let body = silence_json(&silence, now);
    s.alerts.alerter.lock().await.silences.push(silence);
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn expire_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    if let Some(denied) = authorize_write(&s, &headers) {
        return denied;
    }
    let id = match path {
        Ok(Path(id)) => id,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid silence id: {}", e.body_text()),
            );
        }
    };
    let now = s.now();
    match s.alerts.store.expire_silence(&id, now).await {
        Ok(true) => {
            let mut st = s.alerts.alerter.lock().await;
            for x in st.silences.iter_mut().filter(|x| x.id == id) {
                x.starts_at = x.starts_at.min(now);
                x.ends_at = now;
            }
            tracing::info!(%id, "silence expired");
            Json(json!({ "id": id, "state": "expired" })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no active or pending silence {id:?}")),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot expire the silence: {e}"),
        ),
    }
}
