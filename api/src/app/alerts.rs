//! What the alert runtime ([`tracebudget_alerting::runtime`]) reads of this binary: the
//! pipeline's windows, exemplars and contributors as an [`SloSource`] ([`PipelineSource`] under
//! the pipeline lock, [`HeldPipeline`] for a pipeline owned outright), and the cluster's evaluator
//! lock as [`Leadership`] ([`EvaluatorLock`]); `start` and `spawn` wire them for `serve`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use slis::Timestamp;
use slis::eval::{SloStatus, evaluate};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracebudget_alerting::alerter::{Extras, datetime};
use tracebudget_alerting::config::Alerting;
use tracebudget_alerting::deliver::AlertingMetrics;
use tracebudget_alerting::notify::{Contributor, Exemplar};
pub use tracebudget_alerting::runtime::AlertRuntime;
use tracebudget_alerting::runtime::{Leadership, Leading, SloSource};
use tracebudget_alerting::store::AlertStore;
use tracebudget_engine::cluster::Leader;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::receiver::wall_clock;

/// Reads the stored alert state and builds the notifiers; fails on a receiver that cannot be built.
pub async fn start(
    model: Arc<Alerting>,
    journeys: Vec<String>,
    external_url: String,
    store: AlertStore,
    metrics: Arc<AlertingMetrics>,
) -> anyhow::Result<Arc<AlertRuntime>> {
    let runtime = AlertRuntime::start(model, journeys, external_url, store, metrics).await?;
    Ok(Arc::new(runtime))
}

/// Spawns the evaluator and the deliverer on the wall clock (see [`AlertRuntime::spawn`]), the
/// pipeline and `others` (several instances on PostgreSQL) as their source.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    runtime: Arc<AlertRuntime>,
    pipeline: Arc<Mutex<Pipeline>>,
    eval_interval: Duration,
    give_up_after: Duration,
    leader: Leader,
    others: Option<crate::app::cluster::Others>,
    stop: CancellationToken,
    tasks: &mut JoinSet<std::io::Result<()>>,
) {
    let source = PipelineSource { pipeline, others };
    runtime.spawn(
        source,
        EvaluatorLock(leader),
        wall_clock,
        eval_interval,
        give_up_after,
        stop,
        tasks,
    );
}

/// What the engine remembers of SLO `slo`'s bad traces since `since`: the worst traces and the
/// services/operations blamed, each with its share of all blamed bad events.
///
/// The one place span-derived text enters an alert: service and operation names go through the
/// pipeline's `[privacy]` rules here, so the alert state, the outbox and history rows, every
/// notification and report, and the alerts API only ever hold them redacted.
pub fn extras(p: &Pipeline, slo: usize, since: Timestamp, exemplars: usize, contributors: usize) -> Extras {
    let exemplars = p
        .exemplars(slo, since, exemplars)
        .into_iter()
        .map(|e| Exemplar {
            trace_id: e.trace_id.to_string(),
            url: None,
            latency: e.duration,
            error: e.error,
            at: datetime(e.start),
        })
        .collect();
    let all = p.contributors(slo, since, usize::MAX);
    let redactor = p.redactor();
    let total: u64 = all.iter().map(|b| b.bad_events).sum();
    let contributors = all
        .into_iter()
        .take(contributors)
        .map(|b| Contributor {
            share: if total == 0 {
                0.0
            } else {
                b.bad_events as f64 / total as f64
            },
            service: redactor.shown(&b.service),
            operation: redactor.shown(&b.operation),
            bad_events: b.bad_events,
            reason: b.reason.as_str().to_owned(),
        })
        .collect();
    Extras {
        exemplars,
        contributors,
    }
}

/// Every SLO's status at `now`.
pub fn statuses(model: &Alerting, pipeline: &Pipeline, now: Timestamp) -> Vec<SloStatus> {
    model
        .slos
        .iter()
        .enumerate()
        .map(|(i, slo)| {
            evaluate(
                slo,
                &model.policies[slo.policy],
                pipeline.merged(slo.journey),
                pipeline.slot(i),
                now,
            )
        })
        .collect()
}

/// The shared pipeline, read under its lock, and with several instances the others' windows.
#[derive(Debug)]
pub struct PipelineSource {
    /// This instance's pipeline.
    pub pipeline: Arc<Mutex<Pipeline>>,
    /// The other instances' rows (PostgreSQL), read into the pipeline before each cycle.
    pub others: Option<crate::app::cluster::Others>,
}

impl PipelineSource {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pipeline> {
        self.pipeline.lock().expect("pipeline lock poisoned")
    }
}

impl SloSource for PipelineSource {
    fn statuses(&self, model: &Alerting, now: Timestamp) -> Vec<SloStatus> {
        statuses(model, &self.lock(), now)
    }

    fn extras(&self, slo: usize, since: Timestamp, exemplars: usize, contributors: usize) -> Extras {
        extras(&self.lock(), slo, since, exemplars, contributors)
    }

    fn merges_others(&self) -> bool {
        self.others.is_some()
    }

    async fn refresh_others(&self, now: Timestamp) {
        if let Some(o) = &self.others {
            o.refresh(&self.pipeline, now).await;
        }
    }
}

/// A pipeline owned outright (`replay`): read without a lock.
#[derive(Debug, Clone, Copy)]
pub struct HeldPipeline<'a>(pub &'a Pipeline);

impl SloSource for HeldPipeline<'_> {
    fn statuses(&self, model: &Alerting, now: Timestamp) -> Vec<SloStatus> {
        statuses(model, self.0, now)
    }

    fn extras(&self, slo: usize, since: Timestamp, exemplars: usize, contributors: usize) -> Extras {
        extras(self.0, slo, since, exemplars, contributors)
    }
}

/// The cluster's evaluator lock (always held on SQLite).
#[derive(Debug)]
pub struct EvaluatorLock(pub Leader);

impl Leadership for EvaluatorLock {
    fn shared(&self) -> bool {
        self.0.shared()
    }

    fn leads(&self) -> bool {
        self.0.leads()
    }

    async fn poll(&mut self) -> Leading {
        match self.0.poll().await {
            tracebudget_engine::cluster::Leading::Became => Leading::Became,
            tracebudget_engine::cluster::Leading::Still => Leading::Still,
            tracebudget_engine::cluster::Leading::Lost => Leading::Lost,
            tracebudget_engine::cluster::Leading::Standby => Leading::Standby,
        }
    }

    async fn resign(&mut self) {
        self.0.resign().await;
    }
}

#[cfg(test)]
pub(crate) mod tests;
