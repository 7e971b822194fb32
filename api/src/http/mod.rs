//! The HTTP API: [`app`] over an [`AppState`](state::AppState), every route under `/api/v1`
//! answering JSON, every error an [`ApiError`](error::ApiError) (`{"error": "..."}`); plus
//! `/metrics`, `/healthz` and `/readyz`. One module per resource: [`slos`] (status, one SLO,
//! series), [`journeys`], [`health`] (trace-pipeline health), [`config`](self::config) (the
//! redacted file), [`openapi`] (the document describing every route), [`alerts`] (alerts,
//! history, notifications, silences), [`reload`](self::reload) (`POST /api/v1/config/reload`),
//! [`dashboards`] (the web pages); [`auth`] (who may read and write, refusals counted by
//! [`refusal`]) and [`params`] (query values in, timestamps out). It reads `app`, never the
//! command line.
//!
//! **Invariant:** every route is described in `api/openapi.json`, and every JSON body a route
//! answers validates against its schema there (the tests check both).

pub mod alerts;
pub mod auth;
pub mod config;
pub mod dashboards;
pub mod error;
pub mod health;
pub mod journeys;
pub mod openapi;
pub mod params;
pub mod refusal;
pub mod reload;
pub mod slos;
pub mod state;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use self::error::ApiError;
use self::state::AppState;

/// The whole HTTP app: every route, behind [`auth::guard`].
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

async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut body = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
