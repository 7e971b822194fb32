//! `GET /api/v1/health/traces`: trace-pipeline health (issue 10) — fragmentation per journey and
//! service with the boundaries that lost the context, span volume and its drop flag, export lag,
//! clock skew per service pair, and attribute cardinality. Figures since start, except volume
//! (the newest complete bucket and its baseline), export lag and cardinality (the current and the
//! previous `[trace_health] window`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/health/traces", get(traces))
}

fn ratio(part: u64, whole: u64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(part as f64 / whole as f64)
    }
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

async fn traces(State(state): State<AppState>) -> Json<Value> {
    let now = state.now();
    let (p, _config) = state.view();
    let h = p.health();
    let c = h.config();
    let journeys: Vec<Value> = p
        .journeys()
        .0
        .iter()
        .zip(h.journeys())
        .map(|(j, f)| {
            json!({
                "journey": j.name,
                "traces": f.traces,
                "fragmented": f.fragmented,
                "skewed": f.skewed,
                "fragmentation_ratio": ratio(f.fragmented, f.traces),
            })
        })
        .collect();
    // Names as `[privacy]` shows them.
    let shown = h.shown(now, p.redactor());
    let services: Vec<Value> = shown
        .services
        .into_iter()
        .map(|s| {
            json!({
                "service": &*s.service,
                "spans": s.spans,
                "traces": s.traces,
                "fragmented_traces": s.fragmented,
                "fragmentation_ratio": ratio(s.fragmented, s.traces),
                "volume": {
                    "newest": s.volume.newest,
                    "baseline": s.volume.baseline,
                    "drop": s.volume.drop,
                },
                "export_lag": s.lag.map(|l| json!({
                    "count": l.count,
                    "p50_seconds": seconds(l.p50_nanos),
                    "p99_seconds": seconds(l.p99_nanos),
                    "max_seconds": seconds(l.max_nanos),
                })),
                "attributes": s.keys.iter().map(|k| json!({
                    "key": &*k.key,
                    "estimate": k.estimate,
                    "over_limit": k.over_limit,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let lost: Vec<Value> = shown
        .boundaries
        .into_iter()
        .map(|(from, to, n)| json!({"parent_service": from, "child_service": to, "traces": n}))
        .collect();
    let skew: Vec<Value> = shown
        .skews
        .into_iter()
        .map(|(parent, child, kind, n)| {
            json!({"parent_service": parent, "child_service": child, "kind": kind.as_str(), "spans": n})
        })
        .collect();
    let dropped = h.dropped();
    Json(json!({
        "settings": {
            "skew_tolerance_seconds": c.skew_tolerance.0.as_secs_f64(),
            "volume_window_seconds": c.volume_window.0.as_secs_f64(),
            "volume_baseline_seconds": c.volume_baseline.0.as_secs_f64(),
            "volume_drop_ratio": c.volume_drop_ratio,
            "window_seconds": c.window.0.as_secs_f64(),
            "cardinality": c.cardinality,
            "cardinality_limit": c.cardinality_limit,
        },
        "traces": h.traces,
        "fragmented": h.fragmented,
        "skewed": h.skewed,
        "fragmentation_ratio": ratio(h.fragmented, h.traces),
        "journeys": journeys,
        "services": services,
        "lost_context": lost,
        "clock_skew": skew,
        "dropped": {"service_limit": dropped.service_limit, "key_limit": dropped.key_limit},
        "sketch_bytes": h.sketch_bytes(),
    }))
}
