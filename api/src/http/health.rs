//! `GET /api/v1/health/traces`: trace-pipeline health — fragmentation per journey and service
//! with the boundaries that lost the context, span volume and its drop flag, export lag, clock
//! skew per service pair, and attribute cardinality. Figures since start, except volume
//! (the newest complete bucket and its baseline), export lag and cardinality (the current and the
//! previous `[trace_health] window`). Rendered from a snapshot, outside the pipeline lock.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::state::AppState;

/// The routes of the trace-pipeline health.
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
    // A snapshot: the lock is held for pointer copies, every figure is computed after it.
    let snapshot = state.pipeline.lock().expect("pipeline lock poisoned").health_snapshot();
    let h = &snapshot.health;
    let c = h.config();
    let journeys: Vec<Value> = snapshot
        .journeys
        .iter()
        .zip(h.journeys())
        .map(|(j, f)| {
            json!({
                "journey": j,
                "traces": f.traces,
                "fragmented": f.fragmented,
                "skewed": f.skewed,
                "fragmentation_ratio": ratio(f.fragmented, f.traces),
            })
        })
        .collect();
    // Names as `[privacy]` shows them.
    let shown = h.shown(now, &snapshot.redactor);
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
    let (dropped, evicted) = (h.dropped(), h.evicted());
    Json(json!({
        "settings": {
            "skew_tolerance_seconds": c.skew_tolerance.0.as_secs_f64(),
            "volume_window_seconds": c.volume_window.0.as_secs_f64(),
            "volume_baseline_seconds": c.volume_baseline.0.as_secs_f64(),
            "volume_drop_ratio": c.volume_drop_ratio,
            "window_seconds": c.window.0.as_secs_f64(),
            "cardinality": c.cardinality,
            "cardinality_limit": c.cardinality_limit,
            "max_services": c.max_services,
            "max_keys_per_service": c.max_keys_per_service,
            "max_lost_context_rows": c.max_lost_context_rows,
            "max_clock_skew_rows": c.max_clock_skew_rows,
            "idle_ttl_seconds": c.idle_ttl.0.as_secs_f64(),
        },
        "traces": h.traces,
        "fragmented": h.fragmented,
        "skewed": h.skewed,
        "fragmentation_ratio": ratio(h.fragmented, h.traces),
        "journeys": journeys,
        "services": services,
        "lost_context": lost,
        "clock_skew": skew,
        "dropped": {
            "service_limit": dropped.service_limit,
            "key_limit": dropped.key_limit,
            "lost_context_limit": dropped.lost_context_limit,
            "clock_skew_limit": dropped.clock_skew_limit,
        },
        "evicted": {
            "service": evicted.services,
            "attribute_key": evicted.attribute_keys,
            "lost_context": evicted.lost_context,
            "clock_skew": evicted.clock_skew,
        },
        "sketch_bytes": h.sketch_bytes(),
    }))
}
