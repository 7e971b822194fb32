//! `GET /api/v1/slos`, `GET /api/v1/slos/{name}` and `GET /api/v1/slos/{name}/series`: every
//! SLO's state now, one SLO's, and one SLO's history as a series of points.
//!
//! # Status
//!
//! `critical` when a page-severity burn-rate rule fires or the budget is spent (remaining ≤ 0,
//! with events in the period); else `warning` when a ticket-severity rule fires; else `no_data`
//! when the period holds no events; else `ok`. Rules are the SLO policy's, with windows scaled
//! to the SLO's period, judged as the evaluator judges them ([`slis::eval::evaluate`]).
//!
//! # Series
//!
//! Points sit at `t = from + k × step` for `k = 1 … ⌊(to − from) / step⌋`, so the steps tile
//! `(from, to]`. Every window of a point ends just before `t` (it is read at `t − 1 ns`): its
//! events, bad events, SLI and percentiles cover `Window::Last(step)`, its budget the SLO's period
//! ending there, its burn rates each policy window ending there. Windows count whole buckets (see
//! [`slis::window`]): a point holds the count buckets whose start lies in `[t − step, t)`, so no
//! bucket is counted by two points and a sum over the points is the exact total of the range.
//! Count buckets are minutes for the newest 6–7 hours and hours before; histogram buckets
//! minutes for the newest 1–2 hours, hours up to 7–8 days, days before. A step finer than the
//! buckets it reaches puts each bucket's events on the point whose step holds its start (the
//! others read 0 and null percentiles): ask for a step of at least 1h further back than 6 h.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use slis::budget::{Exhaustion, budget_remaining, burn_rate};
use slis::eval::{SloStatus, evaluate};
use slis::policy::Severity;
use slis::slo::{Period, Slo};
use slis::window::{Counts, Percentiles, Window};
use slis::{Timestamp, format_duration, format_exact};
use tracebudget_engine::pipeline::Pipeline;

use super::error::ApiError;
use super::params::{JsonQuery, bad_param, duration, instant, rfc3339};
use super::state::AppState;
use crate::app::config::Config;

/// The routes of the SLOs, one SLO and its series.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/slos", get(list))
        .route("/api/v1/slos/{name}", get(one))
        .route("/api/v1/slos/{name}/series", get(series))
}

/// The most points a series answers.
pub const MAX_POINTS: u64 = 1_440;
/// The finest step: the count buckets are minutes.
pub const MIN_STEP: Duration = Duration::from_secs(60);
/// The range of a series without `from` or `range`.
pub const DEFAULT_RANGE: Duration = Duration::from_secs(3_600);

/// See the module docs.
pub fn status_of(s: &SloStatus) -> &'static str {
    let firing = |severity| s.rules.iter().any(|r| r.firing && r.rule.severity == severity);
    if firing(Severity::Page) || (!s.budget.no_data && s.budget.remaining <= 0.0) {
        "critical"
    } else if firing(Severity::Ticket) {
        "warning"
    } else if s.budget.no_data {
        "no_data"
    } else {
        "ok"
    }
}

/// The period as the config writes it: `28d`, `calendar_month`.
pub fn period_label(p: &Period) -> String {
    match p {
        Period::Rolling(d) => format_exact(*d).to_string(),
        Period::CalendarMonth => "calendar_month".to_owned(),
    }
}

/// Good over all events; `None` without events.
fn ratio(c: Counts) -> Option<f64> {
    (c.total > 0).then(|| (c.total - c.bad.min(c.total)) as f64 / c.total as f64)
}

/// Labels as a JSON object.
pub fn labels_json(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// P50/P95/P99 and max of root latency in seconds, `null` without samples.
pub fn latency_json(pc: Option<Percentiles>) -> Value {
    pc.map_or(Value::Null, |pc| {
        json!({
            "count": pc.count,
            "p50_seconds": secs(pc.p50),
            "p95_seconds": secs(pc.p95),
            "p99_seconds": secs(pc.p99),
            "max_seconds": secs(pc.max),
        })
    })
}

fn find(config: &Config, name: &str) -> Result<usize, ApiError> {
    config
        .alerting
        .slos
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found(format!("unknown SLO {name:?}")))
}

fn slo_name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::bad_request(format!("invalid SLO name: {}", e.body_text())))
}

/// SLO `i` at `now`: its definition, period counts, budget, status, burn per rule and latency.
fn slo_json(p: &Pipeline, config: &Config, i: usize, now: Timestamp) -> Value {
    let slo = &config.alerting.slos[i];
    let policy = &config.alerting.policies[slo.policy];
    let windows = p.merged(slo.journey);
    let status = evaluate(slo, policy, windows, p.slot(i), now);
    let period_window = slo.period.window(now);
    let latency = windows.percentiles(period_window, now);
    json!({
        "name": slo.name,
        "description": config.alerting.descriptions.get(i).cloned().flatten(),
        "journey": p.journeys().0[slo.journey].name,
        "sli": slo.sli.to_string(),
        "objective": slo.objective,
        "policy": policy.name,
        "labels": labels_json(&slo.labels),
        "period": {
            "label": period_label(&slo.period),
            "seconds": secs(slo.period.length_at(now)),
            "events": status.period.total,
            "bad_events": status.period.bad,
        },
        "status": status_of(&status),
        "sli_ratio": ratio(status.period),
        "budget_remaining": status.budget.remaining,
        "budget_consumed": 1.0 - status.budget.remaining,
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
            "long_window": format_exact(r.rule.long).to_string(),
            "short_window": format_exact(r.rule.short).to_string(),
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
        "latency": latency_json(latency),
    })
}

/// Every SLO at this instant, in config order.
async fn list(State(state): State<AppState>) -> Json<Value> {
    let now = state.now();
    let (p, config) = state.view();
    let slos: Vec<Value> = (0..config.alerting.slos.len())
        .map(|i| slo_json(&p, &config, i, now))
        .collect();
    Json(json!({ "slos": slos }))
}

async fn one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let name = slo_name(path)?;
    let (p, config) = state.view();
    let i = find(&config, &name)?;
    Ok(Json(slo_json(&p, &config, i, now)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    from: Option<String>,
    to: Option<String>,
    range: Option<String>,
    step: Option<String>,
}

/// The instants of a series: points at `from + k × step`, `k = 1 … points`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Where the first step starts.
    pub from: Timestamp,
    /// Where the last step ends.
    pub to: Timestamp,
    /// The distance between points.
    pub step: Duration,
    /// How many points.
    pub points: u64,
}

fn plan(q: &SeriesQuery, now: Timestamp) -> Result<Plan, ApiError> {
    let to = q.to.as_deref().map(|v| instant("to", v)).transpose()?.unwrap_or(now);
    let from = match (q.from.as_deref(), q.range.as_deref()) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give from or range, not both")),
        (Some(v), None) => {
            let from = instant("from", v)?;
            if from >= to {
                return Err(bad_param(
                    "from",
                    v,
                    format_args!("must be before to ({})", rfc3339(to)),
                ));
            }
            from
        }
        (None, Some(v)) => {
            let range = duration("range", v)?;
            if range.is_zero() {
                return Err(bad_param("range", v, "must be longer than 0"));
            }
            to - range
        }
        (None, None) => to - DEFAULT_RANGE,
    };
    let span = to - from;
    let step = match q.step.as_deref() {
        Some(v) => {
            let step = duration("step", v)?;
            if step < MIN_STEP {
                return Err(bad_param("step", v, "the smallest step is 1m"));
            }
            step
        }
        // A sixtieth of the range, up to whole minutes, at least a minute.
        None => Duration::from_secs((span.as_secs().div_ceil(60)).div_ceil(60).max(1) * 60),
    };
    let points = (span.as_nanos() / step.as_nanos()) as u64;
    let shown = q.step.clone().unwrap_or_else(|| format_duration(step).to_string());
    if points == 0 {
        return Err(bad_param(
            "step",
            &shown,
            format_args!("longer than the range ({})", format_duration(span)),
        ));
    }
    if points > MAX_POINTS {
        return Err(bad_param(
            "step",
            &shown,
            format_args!("{points} points over {}, at most {MAX_POINTS}", format_duration(span)),
        ));
    }
    Ok(Plan { from, to, step, points })
}

/// The distinct windows of an SLO's policy rules (scaled to its period), shortest first.
pub fn policy_windows(slo: &Slo, config: &Config) -> Vec<Duration> {
    let mut ws: Vec<Duration> = config.alerting.policies[slo.policy]
        .rules_for(&slo.period)
        .flat_map(|r| [r.long, r.short])
        .collect();
    ws.sort();
    ws.dedup();
    ws
}

async fn series(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    JsonQuery(q): JsonQuery<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let name = slo_name(path)?;
    let plan = plan(&q, now)?;
    let (p, config) = state.view();
    let i = find(&config, &name)?;
    let slo = &config.alerting.slos[i];
    let windows = p.merged(slo.journey);
    let slot = p.slot(i);
    let policy_windows = policy_windows(slo, &config);
    let labels: Vec<String> = policy_windows.iter().map(|w| format_exact(*w).to_string()).collect();
    let points: Vec<Value> = (1..=plan.points)
        .map(|k| {
            let t = plan.from + plan.step * u32::try_from(k).expect("at most MAX_POINTS");
            // Every window ends just before t: buckets starting at t belong to the next point.
            let at = t - Duration::from_nanos(1);
            let step = windows.counts(slot, Window::Last(plan.step), at);
            let pc = windows.percentiles(Window::Last(plan.step), at);
            let period = windows.counts(slot, slo.period.window(at), at);
            let burn: Map<String, Value> = policy_windows
                .iter()
                .zip(&labels)
                .map(|(w, label)| {
                    let c = windows.counts(slot, Window::Last(*w), at);
                    (label.clone(), json!(burn_rate(c, slo.objective).rate))
                })
                .collect();
            json!({
                "t": rfc3339(t),
                "events": step.total,
                "bad_events": step.bad,
                "sli": ratio(step),
                "p50_seconds": pc.map(|pc| secs(pc.p50)),
                "p95_seconds": pc.map(|pc| secs(pc.p95)),
                "p99_seconds": pc.map(|pc| secs(pc.p99)),
                "budget_remaining": budget_remaining(period, slo.objective).remaining,
                "burn_rates": burn,
            })
        })
        .collect();
    Ok(Json(json!({
        "slo": slo.name,
        "objective": slo.objective,
        "from": rfc3339(plan.from),
        "to": rfc3339(plan.to),
        "step_seconds": secs(plan.step),
        "windows": labels,
        "points": points,
    })))
}
