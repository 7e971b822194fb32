//! The HTTP API: `fn app(state) -> Router`, every route under `/api/v1` answering JSON, errors as
//! `{"error": "..."}`; plus `/metrics`, `/healthz` and `/readyz`. One module per resource:
//! [`slos`] (status, one SLO, series), [`journeys`], [`health`] (trace-pipeline health),
//! [`config`](self::config) (the redacted
//! file), [`openapi`] (the document describing every route), [`alerts`] (alerts, history,
//! notifications, silences), [`reload`](self::reload) (`POST /api/v1/config/reload`),
//! [`dashboards`] (the web pages), and [`auth`] (who may read and write).
//!
//! **Invariant:** every route is described in `api/openapi.json`, and every JSON body a route
//! answers validates against its schema there (the tests check both).

pub mod alerts;
pub mod auth;
pub mod config;
pub mod dashboards;
pub mod health;
pub mod journeys;
pub mod openapi;
pub mod params;
pub mod reload;
pub mod slos;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use prometheus_client::registry::Registry;
use serde_json::json;
use slis::Timestamp;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::store::Db;

use crate::alerts::AlertRuntime;
use crate::config::Config;
use crate::reload::ReloadMetrics;
use crate::state::Live;

/// Everything the routes read.
#[derive(Clone, Debug)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub live: Arc<Live>,
    pub alerts: Arc<AlertRuntime>,
    /// Where a reload records the config it applies.
    pub db: Db,
    pub reloads: Arc<ReloadMetrics>,
    /// Requests refused by [`auth`], by reason.
    pub guard: Arc<auth::GuardMetrics>,
    /// "Now" for every route: [`tracebudget_engine::receiver::wall_clock`] when serving, a fixed instant in
    /// tests.
    pub clock: fn() -> Timestamp,
}

impl AppState {
    /// The pipeline, locked, with the config whose journey and SLO indices it uses. Index the
    /// windows only through this pair: a reload swaps both under the same lock.
    pub fn view(&self) -> (MutexGuard<'_, Pipeline>, Arc<Config>) {
        let pipeline = self.pipeline.lock().expect("pipeline lock poisoned");
        let config = self.live.get();
        (pipeline, config)
    }

    /// The config in force (for what does not index the windows).
    pub fn config(&self) -> Arc<Config> {
        self.live.get()
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// What a config reload reads and swaps.
    pub fn reload_target(&self) -> crate::reload::Target<'_> {
        crate::reload::Target {
            pipeline: &self.pipeline,
            live: &self.live,
            alerts: &self.alerts,
            db: &self.db,
            metrics: &self.reloads,
        }
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(slos::routes())
        .merge(journeys::routes())
        .merge(health::routes())
        .merge(config::routes())
        .merge(alerts::routes())
        .merge(reload::routes())
        .merge(dashboards::routes())
        // Unknown API paths answer JSON too (specific routes win over this catch-all).
        .route("/api/v1/{*rest}", any(no_route))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}

/// A JSON error body: `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::with_capacity(16 * 1024);
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}")).into_response(),
    }
}

/// RFC 3339 in UTC with milliseconds, as every timestamp of the API is written.
pub fn rfc3339(t: Timestamp) -> String {
    tracebudget_alerting::alerter::datetime(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
