//! `GET /api/v1/config`: the config file in force, with every secret replaced by `<redacted>`
//! (see [`crate::app::redact`]), its SHA-256 and what it defines.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::state::AppState;
use crate::app::redact::redact;

/// The routes of the config view.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/config", get(show))
}

async fn show(State(state): State<AppState>) -> Json<Value> {
    let config = state.config();
    Json(json!({
        "sha256": config.source.sha256,
        "file": config.source.file,
        "text": redact(&config.source.text),
        "journeys": config.journeys.0.len(),
        "slos": config.alerting.slos.len(),
    }))
}
