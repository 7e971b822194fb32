//! The HTTP API: `fn app(state) -> Router`. So far `/metrics`, `/healthz`, `/readyz`,
//! `GET /api/v1/slos` (every SLO's status, read from the live windows) and the alert routes of
//! [`silences`](crate::silences).

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use engine::pipeline::Pipeline;
use engine::receiver::wall_clock;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use slis::budget::Exhaustion;
use slis::eval::evaluate;

use crate::alerts::AlertRuntime;
use crate::config::Config;
use crate::silences;

/// The config in force. A reload replaces it whole, under the pipeline lock, together with the
/// pipeline's journeys and SLOs (see [`AppState::view`]).
#[derive(Debug)]
pub struct Live(RwLock<Arc<Config>>);

impl Live {
    pub fn new(config: Arc<Config>) -> Self {
        Live(RwLock::new(config))
    }

    pub fn get(&self) -> Arc<Config> {
        self.0.read().expect("config lock poisoned").clone()
    }

    /// Only with the pipeline lock held, so readers of [`AppState::view`] see both change at once.
    pub fn set(&self, config: Arc<Config>) {
        *self.0.write().expect("config lock poisoned") = config;
    }
}

/// Everything the routes read.
#[derive(Clone, Debug)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub live: Arc<Live>,
    pub alerts: Arc<AlertRuntime>,
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
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .route("/api/v1/slos", get(slos))
        .merge(silences::routes())
        .merge(crate::dashboards::routes())
        .with_state(state)
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

/// Every SLO at this instant: events and bad events over its period, budget remaining, burn rate
/// per policy rule (both windows), time to exhaustion, and its journey's root latency
/// percentiles over the period.
async fn slos(State(state): State<AppState>) -> axum::Json<Value> {
    let now = wall_clock();
    let (p, config) = state.view();
    let policies = &config.alerting.policies;
    let secs = |d: Duration| d.as_secs_f64();
    let slos: Vec<Value> = config
        .alerting
        .slos
        .iter()
        .enumerate()
        .map(|(i, slo)| {
            let slot = p.slot(i);
            let windows = &p.windows()[slo.journey];
            let status = evaluate(slo, &policies[slo.policy], windows, slot, now);
            let latency = windows.percentiles(slo.period.window(now), now).map(|pc| {
                json!({
                    "count": pc.count,
                    "p50_seconds": secs(pc.p50),
                    "p95_seconds": secs(pc.p95),
                    "p99_seconds": secs(pc.p99),
                    "max_seconds": secs(pc.max),
                })
            });
            json!({
                "name": slo.name,
                "journey": p.journeys().0[slo.journey].name,
                "sli": slo.sli.to_string(),
                "objective": slo.objective,
                "period": {
                    "events": status.period.total,
                    "bad_events": status.period.bad,
                },
                "budget_remaining": status.budget.remaining,
                "no_data": status.budget.no_data,
                "current_burn_rate": status.current_burn.rate,
                "exhaustion_seconds": match status.exhaustion {
                    Exhaustion::Never => Value::Null,
                    Exhaustion::Exhausted => json!(0.0),
                    Exhaustion::In(d) => json!(secs(d)),
                },
                "burn_rates": status.rules.iter().map(|r| json!({
                    "severity": r.rule.severity.as_str(),
                    "factor": r.rule.factor,
                    "long_window_seconds": secs(r.rule.long),
                    "short_window_seconds": secs(r.rule.short),
                    "long_events": r.long.total,
                    "long_bad_events": r.long.bad,
                    "short_events": r.short.total,
                    "short_bad_events": r.short.bad,
                    "long_burn_rate": r.long_burn.rate,
                    "short_burn_rate": r.short_burn.rate,
                    "firing": r.firing,
                })).collect::<Vec<_>>(),
                "latency": latency,
            })
        })
        .collect();
    axum::Json(json!({ "slos": slos }))
}
