//! `GET /api/v1/journeys`: every journey, what selects its root span, its SLOs, how many roots it
//! counted and its root latency over the last hour.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use slis::window::Window;

use super::slos::{labels_json, latency_json};
use super::state::AppState;

/// The window of a journey's latency percentiles.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(3_600);

/// The routes of the journeys.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/journeys", get(list))
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    let now = state.now();
    let (p, config) = state.view();
    let journeys: Vec<Value> = p
        .journeys()
        .0
        .iter()
        .zip(p.merged_root_counts())
        .enumerate()
        .map(|(j, (journey, roots))| {
            let windows = p.merged(j);
            json!({
                "name": journey.name,
                "root": journey.root.to_string(),
                "expected_services": journey.expected_services.iter().map(|s| &**s).collect::<Vec<_>>(),
                "labels": labels_json(&journey.labels),
                "slos": config.alerting.slos.iter().filter(|s| s.journey == j).map(|s| &s.name).collect::<Vec<_>>(),
                "roots": roots.total,
                "error_roots": roots.bad,
                "latency": latency_json(windows.percentiles(Window::Last(LATENCY_WINDOW), now)),
            })
        })
        .collect();
    Json(json!({ "journeys": journeys }))
}
