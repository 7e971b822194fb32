//! `/api/v1/alerts`, `/api/v1/alerts/history`, `/api/v1/notifications` and `/api/v1/silences`:
//! what is firing (with exemplars and top contributors), what fired, what was sent, and the
//! silences, created and expired here or with `tracebudget silence add|list|expire`.
//! Writes follow [`authorize_write`]: the bearer token when one is configured, else only on a
//! loopback listen address (and, before that, the `Origin` and `Content-Type` rules of
//! [`super::auth`]). A new silence is read and bounded by [`crate::app::silences`]; every error
//! is an [`ApiError`].

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};
use slis::Timestamp;
use tracebudget_alerting::labels::LabelMatcher;
use tracebudget_alerting::mute::{MuteReason, Silence};

use super::auth::{authorize_write, require_json};
use super::error::ApiError;
use super::params::{JsonQuery, rfc3339};
use super::refusal::Refusal;
use super::state::AppState;
use crate::app::silences::{SilenceError, parse_silence};

/// The routes of alerts, their history, the notifications and the silences.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/silences", get(silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
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

async fn history(State(s): State<AppState>, JsonQuery(q): JsonQuery<HistoryQuery>) -> Result<Json<Value>, ApiError> {
    let since = match q.since.as_deref().map(slis::parse_duration).transpose() {
        Ok(d) => d.unwrap_or(Duration::from_secs(7 * 86_400)),
        Err(e) => return Err(ApiError::bad_request(format!("since: {e}"))),
    };
    let limit = q.limit.unwrap_or(500).clamp(1, 10_000);
    let rows = s
        .alerts
        .store
        .history(s.now() - since, limit)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the history: {e}")))?;
    Ok(Json(json!({
        "events": rows.iter().map(|h| json!({
            "fingerprint": h.fingerprint,
            "slo": h.slo,
            "severity": h.severity,
            "alertname": h.alertname,
            "event": h.event,
            "at": rfc3339(h.at),
            "alert": serde_json::to_value(&h.alert).expect("plain data"),
        })).collect::<Vec<_>>()
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn notifications(
    State(s): State<AppState>,
    JsonQuery(q): JsonQuery<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 10_000);
    let rows = s
        .alerts
        .store
        .log(limit)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the outbox: {e}")))?;
    Ok(Json(json!({
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
    })))
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

async fn silences(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = s.now();
    let list = s
        .alerts
        .store
        .silences()
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the silences: {e}")))?;
    Ok(Json(json!({
        "silences": list.iter().map(|x| silence_json(&x.silence, now)).collect::<Vec<_>>()
    })))
}

async fn create_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize_write(&s, &headers)?;
    require_json(&s, &headers)?;
    let now = s.now();
    let silence = parse_silence(&body, now).inspect_err(|e| {
        if let SilenceError::TooLarge(_) = e {
            s.guard.count(Refusal::SilenceLimit);
        }
    })?;
    s.alerts
        .store
        .add_silence(&silence)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot store the silence: {e}")))?;
    tracing::info!(id = %silence.id, by = %silence.created_by, "silence created");
    let body = silence_json(&silence, now);
    s.alerts.alerter.lock().await.silences.push(silence);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn expire_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize_write(&s, &headers)?;
    let Path(id) = path.map_err(|e| ApiError::bad_request(format!("invalid silence id: {}", e.body_text())))?;
    let now = s.now();
    let expired = s
        .alerts
        .store
        .expire_silence(&id, now)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot expire the silence: {e}")))?;
    if !expired {
        return Err(ApiError::not_found(format!("no active or pending silence {id:?}")));
    }
    let mut st = s.alerts.alerter.lock().await;
    for x in st.silences.iter_mut().filter(|x| x.id == id) {
        x.starts_at = x.starts_at.min(now);
        x.ends_at = now;
    }
    tracing::info!(%id, "silence expired");
    Ok(Json(json!({ "id": id, "state": "expired" })))
}
