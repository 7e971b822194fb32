//! The alerting side of `serve`: restore the alert state, run the evaluator every
//! `eval_interval` (windows → [`Alerter::cycle`] → one transaction of state, history and outbox
//! rows) and the deliverer (outbox → notifiers), and stop cleanly.
//!
//! The evaluator holds the pipeline lock only to read the windows; everything else runs outside
//! it, so ingestion never waits for routing, the database or a slow receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use slis::Timestamp;
use slis::eval::{SloStatus, evaluate};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracebudget_alerting::alerter::{Alerter, Extras};
use tracebudget_alerting::config::Alerting;
use tracebudget_alerting::deliver::{
    AlertingMetrics, Deliverer, OutcomeLabels, ReasonLabels, ReceiverLabels, SeverityLabels, TransitionLabels,
};
use tracebudget_alerting::notify::{Contributor, Exemplar, Notifier, NotifierOptions};
use tracebudget_alerting::store::{AlertStore, Pending};
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::receiver::wall_clock;

/// The notifier of each receiver, by name.
pub type Notifiers = HashMap<String, Arc<Notifier>>;

/// Shared by the evaluator, the deliverer and the API.
#[derive(Debug)]
pub struct AlertRuntime {
    /// The alerter: the evaluator changes it, the API reads it and adds silences.
    pub alerter: tokio::sync::Mutex<Alerter>,
    pub store: AlertStore,
    pub metrics: Arc<AlertingMetrics>,
    /// Wakes the deliverer when a cycle queued notifications.
    pub wake: tokio::sync::Notify,
    /// Wakes the evaluator loop after a config reload: the other instances' windows (laid out
    /// for the old config) were dropped and are read again at once.
    pub relayout: tokio::sync::Notify,
    pub external_url: String,
    /// Alerts firing per (SLO, severity) after the last cycle, for `/metrics`.
    pub firing_by_slo: Arc<crate::app::metrics::FiringSnapshot>,
    /// The receivers' notifiers; a reload replaces them whole.
    pub notifiers: std::sync::RwLock<Arc<Notifiers>>,
    /// A whole evaluation cycle holds it shared and a reload exclusively, so a cycle never mixes
    /// the SLO indices of two configs (the alerter's model, the pipeline's windows).
    pub reconfig: tokio::sync::RwLock<()>,
}

/// Builds every receiver's notifier; fails on a receiver that cannot be built.
pub fn notifiers(model: &Alerting) -> anyhow::Result<Notifiers> {
    let options = NotifierOptions::default();
    let mut notifiers = HashMap::new();
    for r in &model.receivers {
        let n = Notifier::from_config(r, &options).with_context(|| format!("receiver {:?}", r.name.get_ref()))?;
        notifiers.insert(r.name.get_ref().clone(), Arc::new(n));
    }
    Ok(notifiers)
}

/// How long delivered notifications and alert history are kept.
pub const RETAIN_LOG: Duration = Duration::from_secs(90 * 86_400);

/// Reads the stored alert state and builds the notifiers; fails on a receiver that cannot be built.
pub async fn start(
    model: Arc<Alerting>,
    journeys: Vec<String>,
    external_url: String,
    store: AlertStore,
    metrics: Arc<AlertingMetrics>,
) -> anyhow::Result<Arc<AlertRuntime>> {
    let notifiers = notifiers(&model)?;
    let names: Vec<String> = model.slos.iter().map(|s| s.name.clone()).collect();
    let loaded = store.load(&names).await.context("cannot read the alert state")?;
    tracing::info!(
        alerts = loaded.alerts.len(),
        groups = loaded.groups.len(),
        silences = loaded.silences.len(),
        dropped_alerts = loaded.dropped_alerts,
        "restored the alert state"
    );
    let mut alerter = Alerter::new(model, journeys, external_url.clone());
    alerter.restore(loaded.alerts, loaded.groups);
    alerter.silences = loaded.silences;
    Ok(Arc::new(AlertRuntime {
        alerter: tokio::sync::Mutex::new(alerter),
        store,
        metrics,
        wake: tokio::sync::Notify::new(),
        relayout: tokio::sync::Notify::new(),
        external_url,
        notifiers: std::sync::RwLock::new(Arc::new(notifiers)),
        reconfig: tokio::sync::RwLock::new(()),
        firing_by_slo: Arc::default(),
    }))
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
            at: tracebudget_alerting::alerter::datetime(e.start),
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

/// Every SLO's status at `now`, read under the pipeline lock.
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

/// Takes the stored silences (those made or expired through any instance's API) as the ones in
/// force, keeping those this instance's API added after the read (stored too, so the next read
/// has them). Silences are never deleted, so one known here and missing from the read is new.
fn merge_silences(
    known: &mut Vec<tracebudget_alerting::mute::Silence>,
    stored: Vec<tracebudget_alerting::mute::Silence>,
) {
    let newer: Vec<_> = known
        .drain(..)
        .filter(|k| !stored.iter().any(|s| s.id == k.id))
        .collect();
    *known = stored;
    known.extend(newer);
}

/// Per SLO of the model in force, the page and ticket alerts firing now (zeros included).
fn firing_by_slo(model: &Alerting, alerter: &Alerter) -> Vec<crate::app::metrics::SloFiring> {
    let mut rows = Vec::with_capacity(model.slos.len() * 2);
    for slo in &model.slos {
        for severity in ["page", "ticket"] {
            let firing = alerter
                .alerts
                .values()
                .filter(|a| {
                    a.firing
                        && a.labels.get("slo").is_some_and(|s| *s == slo.name)
                        && a.labels.get("severity").is_some_and(|s| s == severity)
                })
                .count();
            rows.push(crate::app::metrics::SloFiring {
                slo: slo.name.clone(),
                severity,
                firing: firing as u64,
            });
        }
    }
    rows
}

impl AlertRuntime {
    /// One evaluation cycle at `now`. The alerter's lock is held for the decision only; the
    /// database work (`pending`, owned by the evaluator) happens after it is released, so the API
    /// never waits for a slow database.
    ///
    /// With `others` (several instances on PostgreSQL) the other instances' rows are read first
    /// and the silences reloaded (a standby's API may have added some), so the decision covers
    /// every instance.
    pub async fn cycle(
        &self,
        pipeline: &Mutex<Pipeline>,
        pending: &mut Pending,
        now: Timestamp,
        others: Option<&crate::app::cluster::Others>,
    ) {
        let started = Instant::now();
        let _config = self.reconfig.read().await;
        let silences = match others {
            Some(o) => {
                o.refresh(pipeline, now).await;
                match self.store.silences().await {
                    Ok(list) => Some(list.into_iter().map(|s| s.silence).collect()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reload the silences; keeping those known");
                        None
                    }
                }
            }
            None => None,
        };
        let mut st = self.alerter.lock().await;
        if let Some(stored) = silences {
            merge_silences(&mut st.silences, stored);
        }
        let model = Arc::clone(st.model_arc());
        let journeys = st.journeys().to_vec();
        let statuses = statuses(&model, &pipeline.lock().expect("pipeline lock poisoned"), now);
        let (n_exemplars, n_contributors) = (model.settings.exemplars, model.settings.contributors);
        let cycle = st.cycle(now, &statuses, &mut |slo, since| {
            let p = pipeline.lock().expect("pipeline lock poisoned");
            extras(&p, slo, since, n_exemplars, n_contributors)
        });
        for t in &cycle.transitions {
            let severity = t.alert.labels.get("severity").cloned().unwrap_or_default();
            let to = if t.firing { "firing" } else { "resolved" };
            self.metrics
                .transitions
                .get_or_create(&TransitionLabels { severity, to })
                .inc();
        }
        for (_, why) in &cycle.muted {
            self.metrics
                .muted
                .get_or_create(&ReasonLabels { reason: why.as_str() })
                .inc();
        }
        for n in &cycle.notifications {
            self.metrics
                .queued
                .get_or_create(&ReceiverLabels {
                    receiver: n.receiver.clone(),
                })
                .inc();
        }
        for sev in ["page", "ticket"] {
            let firing = st
                .alerts
                .values()
                .filter(|a| a.firing && a.labels.get("severity").is_some_and(|s| s == sev))
                .count();
            self.metrics
                .firing
                .get_or_create(&SeverityLabels { severity: sev.into() })
                .set(firing as i64);
        }
        self.firing_by_slo.set(firing_by_slo(&model, &st));
        let active = st
            .silences
            .iter()
            .filter(|s| s.state(now) == tracebudget_alerting::mute::SilenceState::Active);
        self.metrics.silences_active.set(active.count() as i64);
        pending.add(&cycle, &st, now);
        drop(st);
        let outcome = match self.store.commit(pending, now).await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, pending = pending.len(), "cannot store the alert state; kept for the next cycle");
                "store_failed"
            }
        };
        self.metrics.store_pending.set(pending.len() as i64);
        self.metrics.cycles.get_or_create(&OutcomeLabels { outcome }).inc();
        self.metrics.cycle_seconds.0.observe(started.elapsed().as_secs_f64());
        let queued_reports = self.reports(&model, &journeys, pipeline, &statuses, now).await;
        if !cycle.notifications.is_empty() || queued_reports > 0 {
            self.wake.notify_one();
        }
    }

    /// Queues the digest of every report due at `now`; returns how many.
    async fn reports(
        &self,
        model: &Alerting,
        journeys: &[String],
        pipeline: &Mutex<Pipeline>,
        statuses: &[SloStatus],
        now: Timestamp,
    ) -> usize {
        let now_dt = tracebudget_alerting::alerter::datetime(now);
        let mut queued = 0;
        for report in &model.reports {
            let last = match self.store.report_last_run(&report.name).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    if let Err(e) = self.store.report_seen(&report.name, now).await {
                        tracing::warn!(report = %report.name, error = %e, "cannot record the report");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(report = %report.name, error = %e, "cannot read when the report last ran");
                    continue;
                }
            };
            let last_dt = tracebudget_alerting::alerter::datetime(last);
            let Some(run_at) = tracebudget_alerting::report::due(&report.schedule, Some(last_dt), now_dt) else {
                continue;
            };
            // The period since the last run (a downtime's missed runs fold into this one).
            let from =
                last_dt.min(tracebudget_alerting::report::period_of(&report.schedule, run_at).map_or(last_dt, |p| p.0));
            let since = Timestamp::from_unix_millis(from.timestamp_millis()) - Duration::from_secs(31 * 86_400);
            let history = match self.store.history(since, 100_000).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(report = %report.name, error = %e, "cannot read the alert history; retried next cycle");
                    continue;
                }
            };
            let events: Vec<tracebudget_alerting::report::AlertEvent> = history
                .iter()
                .map(|h| tracebudget_alerting::report::AlertEvent {
                    fingerprint: h.fingerprint.clone(),
                    slo: h.slo.clone(),
                    severity: h.severity.clone(),
                    alertname: h.alertname.clone(),
                    firing: h.event == "firing",
                    at: tracebudget_alerting::alerter::datetime(h.at),
                })
                .collect();
            let digest = tracebudget_alerting::report::build(
                report,
                model,
                journeys,
                statuses,
                &events,
                from,
                run_at,
                &self.external_url,
                &mut |slo| {
                    let p = pipeline.lock().expect("pipeline lock poisoned");
                    let since = Timestamp::from_unix_millis(from.timestamp_millis());
                    extras(&p, slo, since, 0, model.settings.contributors).contributors
                },
            );
            let row = tracebudget_alerting::store::OutboxInsert {
                id: digest.id.clone(),
                receiver: digest.receiver.clone(),
                group_key: format!("report/{}", report.name),
                kind: "report",
                payload: serde_json::to_string(&digest).expect("plain data"),
                created_at: now,
            };
            match self
                .store
                .report_ran(
                    &report.name,
                    Timestamp::from_unix_millis(run_at.timestamp_millis()),
                    &row,
                )
                .await
            {
                Ok(()) => {
                    queued += 1;
                    self.metrics
                        .queued
                        .get_or_create(&ReceiverLabels {
                            receiver: row.receiver.clone(),
                        })
                        .inc();
                    tracing::info!(report = %report.name, run = %run_at, "report queued");
                }
                Err(e) => {
                    tracing::warn!(report = %report.name, error = %e, "cannot queue the report; retried next cycle")
                }
            }
        }
        queued
    }

    /// Replaces the alerter's alerts, groups and silences with the stored ones: what a leader
    /// does when it takes over (as `start` does), and a standby each cycle, so its API shows
    /// what the leader decided.
    pub async fn sync_from_store(&self) {
        let _config = self.reconfig.read().await;
        let model = Arc::clone(self.alerter.lock().await.model_arc());
        let names: Vec<String> = model.slos.iter().map(|s| s.name.clone()).collect();
        match self.store.load(&names).await {
            Ok(loaded) => {
                let mut st = self.alerter.lock().await;
                st.restore(loaded.alerts, loaded.groups);
                st.silences = loaded.silences;
                self.firing_by_slo.set(firing_by_slo(&model, &st));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the stored alert state; retrying next cycle"),
        }
    }
}

/// Spawns the evaluator and the deliverer. With a shared `leader` (PostgreSQL) both run only
/// while this instance holds the evaluator lock: a standby tries to take it every
/// `eval_interval / 2` (so it takes over within two eval intervals of the leader's death), reads
/// the other instances' rows and the stored alert state each `eval_interval`, and restores the
/// alert state when it becomes leader, so nothing pages again. Alone (SQLite) it always leads.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    runtime: Arc<AlertRuntime>,
    pipeline: Arc<Mutex<Pipeline>>,
    eval_interval: Duration,
    give_up_after: Duration,
    mut leader: tracebudget_engine::cluster::Leader,
    others: Option<crate::app::cluster::Others>,
    stop: CancellationToken,
    tasks: &mut JoinSet<std::io::Result<()>>,
) {
    let leading = Arc::new(std::sync::atomic::AtomicBool::new(leader.leads()));
    tasks.spawn({
        let runtime = runtime.clone();
        let stop = stop.clone();
        let leading = leading.clone();
        async move {
            let tick = if leader.shared() {
                eval_interval / 2
            } else {
                eval_interval
            };
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut pending = Pending::default();
            let mut pruned_at = Timestamp::EPOCH;
            let mut last_cycle: Option<Instant> = None;
            loop {
                let woken = tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = interval.tick() => false,
                    _ = runtime.relayout.notified() => true,
                };
                // Alone (SQLite) there is nothing to read again: the loop keeps its pace.
                if woken && others.is_none() {
                    continue;
                }
                let state = leader.poll().await;
                leading.store(state.leads(), std::sync::atomic::Ordering::SeqCst);
                match state {
                    tracebudget_engine::cluster::Leading::Became => {
                        // What the previous leader stored: alerts, groups (what each receiver
                        // was told), silences. The outbox ids it queued are idempotent.
                        pending = Pending::default();
                        runtime.sync_from_store().await;
                        last_cycle = None;
                    }
                    // Writes the old leadership could not store are the new leader's to redo.
                    tracebudget_engine::cluster::Leading::Lost => pending = Pending::default(),
                    _ => {}
                }
                // A cycle every eval_interval (ticks are half of it when competing), and at once
                // after a reload.
                if !woken && last_cycle.is_some_and(|t| t.elapsed() + tick / 2 < eval_interval) {
                    continue;
                }
                last_cycle = Some(Instant::now());
                let now = wall_clock();
                if !state.leads() {
                    if let Some(o) = &others {
                        let _config = runtime.reconfig.read().await;
                        o.refresh(&pipeline, now).await;
                    }
                    runtime.sync_from_store().await;
                    continue;
                }
                runtime.cycle(&pipeline, &mut pending, now, others.as_ref()).await;
                // Hourly: the notification log and alert history keep 90 days.
                if now >= pruned_at + Duration::from_secs(3_600) {
                    pruned_at = now;
                    match runtime.store.prune(now - RETAIN_LOG).await {
                        Ok(n) if n > 0 => tracing::info!(rows = n, "pruned old notifications and alert history"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot prune the notification log"),
                    }
                }
            }
            // A last try at what the database still owes, then hand the lead over.
            if leader.leads()
                && let Err(e) = runtime.store.commit(&mut pending, wall_clock()).await
            {
                tracing::error!(error = %e, pending = pending.len(), "stopped with alert state not stored");
            }
            leading.store(false, std::sync::atomic::Ordering::SeqCst);
            leader.resign().await;
            Ok(())
        }
    });
    tasks.spawn(async move {
        loop {
            if !leading.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            // The notifiers of the config in force (a reload may have changed them).
            let deliverer = Deliverer {
                store: runtime.store.clone(),
                notifiers: HashMap::clone(&runtime.notifiers.read().expect("notifiers lock poisoned")),
                metrics: runtime.metrics.clone(),
                give_up_after,
            };
            match deliverer.run_once(wall_clock()).await {
                // A full batch: there may be more due now.
                Ok(n) if n as i64 >= tracebudget_alerting::deliver::BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the outbox; will retry"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = runtime.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        Ok(())
    });
}

#[cfg(test)]
pub(crate) mod tests;
