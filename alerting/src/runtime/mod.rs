//! The alert runtime: restore the alert state, run the evaluator every `eval_interval`
//! (windows → [`Alerter::cycle`] → one transaction of state, history and outbox rows), queue due
//! reports, and deliver (outbox → notifiers), led by whichever instance holds the evaluator lock.
//!
//! What it reads and who leads are traits the binary implements: [`SloSource`] (the windows,
//! exemplars and contributors) and [`Leadership`] (the evaluator lock). What it writes goes
//! through [`StateStore`]: the database's [`AlertStore`] in `serve`, [`memory::MemoryStore`] in
//! `replay`.
//!
//! - `evaluate.rs` — [`AlertRuntime::cycle`]: one evaluation, its metrics and its commit.
//! - `reports.rs` — the digests due at a cycle's instant, into the outbox.
//! - `deliver_loop.rs` — [`AlertRuntime::spawn`]: the evaluator loop (leader poll, cycles, prune)
//!   and the delivery loop.
//! - `memory.rs` — [`memory::MemoryStore`], the state kept in memory.

mod deliver_loop;
mod evaluate;
pub mod memory;
mod reports;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slis::Timestamp;
use slis::eval::SloStatus;

use crate::alerter::{Alerter, Extras};
use crate::config::Alerting;
use crate::deliver::AlertingMetrics;
use crate::mute::Silence;
use crate::notify::{Notifier, NotifierOptions, NotifyError};
use crate::store::{AlertStore, HistoryRow, Loaded, OutboxInsert, Pending, StoreError};

/// The notifier of each receiver, by name.
pub type Notifiers = HashMap<String, Arc<Notifier>>;

/// How long delivered notifications and alert history are kept.
pub const RETAIN_LOG: Duration = Duration::from_secs(90 * 86_400);

/// Where the evaluator reads the SLOs: their statuses, and the traces behind an alert.
pub trait SloSource {
    /// Every SLO of `model` at `now`, in `model.slos` order.
    fn statuses(&self, model: &Alerting, now: Timestamp) -> Vec<SloStatus>;

    /// What is remembered of SLO `slo`'s bad traces since `since`: up to `exemplars` worst
    /// traces and up to `contributors` blamed services/operations, each with its share of all
    /// blamed bad events. Names are redacted here, the one place span text enters an alert.
    fn extras(&self, slo: usize, since: Timestamp, exemplars: usize, contributors: usize) -> Extras;

    /// Whether other instances' windows are merged in (several instances on one database): then
    /// each cycle reads them again, and the silences, before deciding.
    fn merges_others(&self) -> bool {
        false
    }

    /// Reads the other instances' windows as of `now`. Called under [`AlertRuntime::reconfig`]
    /// (shared), so the windows' layout stays the one in force.
    fn refresh_others(&self, now: Timestamp) -> impl Future<Output = ()> + Send {
        let _ = now;
        async {}
    }
}

/// What a poll of the evaluator lock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leading {
    /// This instance took the lead at this poll.
    Became,
    /// It led and still does.
    Still,
    /// It led and no longer does.
    Lost,
    /// Another instance leads.
    Standby,
}

impl Leading {
    /// Whether this instance leads after the poll.
    pub fn leads(self) -> bool {
        matches!(self, Leading::Became | Leading::Still)
    }
}

/// Who evaluates and delivers: the holder of the evaluator lock.
pub trait Leadership {
    /// Whether several instances compete for the lock (alone, one always leads).
    fn shared(&self) -> bool;
    /// Whether this instance leads, as of the last poll.
    fn leads(&self) -> bool;
    /// Tries to take (or keep) the lock.
    fn poll(&mut self) -> impl Future<Output = Leading> + Send;
    /// Hands the lock over.
    fn resign(&mut self) -> impl Future<Output = ()> + Send;
}

/// What the runtime reads and writes of the alert state: the evaluator's side of
/// [`AlertStore`].
pub trait StateStore {
    /// The stored alerts, groups and silences, for the SLOs `slo_names`.
    fn load(&self, slo_names: &[String]) -> impl Future<Output = Result<Loaded, StoreError>> + Send;
    /// Writes everything pending in one transaction; on failure `pending` is kept whole.
    fn commit(&self, pending: &mut Pending, now: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored silence, newest first.
    fn silences(&self) -> impl Future<Output = Result<Vec<Silence>, StoreError>> + Send;
    /// The alert history since `since`, newest first, at most `limit` rows.
    fn history(&self, since: Timestamp, limit: i64)
    -> impl Future<Output = Result<Vec<HistoryRow>, StoreError>> + Send;
    /// When report `name` last ran.
    fn report_last_run(&self, name: &str) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;
    /// Remembers the first time a report is seen; a report seen before keeps its last run.
    fn report_seen(&self, name: &str, at: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a report run and queues its notification, both or neither.
    fn report_ran(
        &self,
        name: &str,
        at: Timestamp,
        row: &OutboxInsert,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes finished notifications and alert history older than `before`; returns how many.
    fn prune(&self, before: Timestamp) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl StateStore for AlertStore {
    fn load(&self, slo_names: &[String]) -> impl Future<Output = Result<Loaded, StoreError>> + Send {
        AlertStore::load(self, slo_names)
    }

    fn commit(&self, pending: &mut Pending, now: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send {
        AlertStore::commit(self, pending, now)
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        Ok(AlertStore::silences(self)
            .await?
            .into_iter()
            .map(|s| s.silence)
            .collect())
    }

    fn history(
        &self,
        since: Timestamp,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<HistoryRow>, StoreError>> + Send {
        AlertStore::history(self, since, limit)
    }

    fn report_last_run(&self, name: &str) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send {
        AlertStore::report_last_run(self, name)
    }

    fn report_seen(&self, name: &str, at: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send {
        AlertStore::report_seen(self, name, at)
    }

    fn report_ran(
        &self,
        name: &str,
        at: Timestamp,
        row: &OutboxInsert,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        AlertStore::report_ran(self, name, at, row)
    }

    fn prune(&self, before: Timestamp) -> impl Future<Output = Result<u64, StoreError>> + Send {
        AlertStore::prune(self, before)
    }
}

/// A receiver whose notifier cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("receiver {receiver:?}")]
pub struct ReceiverError {
    /// The receiver's name.
    pub receiver: String,
    /// Why its notifier cannot be built.
    #[source]
    pub source: NotifyError,
}

/// Builds every receiver's notifier; fails on a receiver that cannot be built.
pub fn notifiers(model: &Alerting) -> Result<Notifiers, ReceiverError> {
    let options = NotifierOptions::default();
    let mut notifiers = HashMap::new();
    for r in &model.receivers {
        let n = Notifier::from_config(r, &options).map_err(|source| ReceiverError {
            receiver: r.name.get_ref().clone(),
            source,
        })?;
        notifiers.insert(r.name.get_ref().clone(), Arc::new(n));
    }
    Ok(notifiers)
}

/// Why the runtime cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A receiver's notifier cannot be built.
    #[error(transparent)]
    Receiver(#[from] ReceiverError),
    /// The stored alert state cannot be read.
    #[error("cannot read the alert state")]
    Load(#[source] StoreError),
}

/// Alerts firing per (SLO, severity), as the evaluator left them at its last cycle.
#[derive(Debug, Default)]
pub struct FiringSnapshot(Mutex<Vec<SloFiring>>);

/// The alerts of one SLO and severity firing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SloFiring {
    /// The SLO's name.
    pub slo: String,
    /// `page` or `ticket`.
    pub severity: &'static str,
    /// How many fire.
    pub firing: u64,
}

impl FiringSnapshot {
    /// Replaces the snapshot.
    pub fn set(&self, rows: Vec<SloFiring>) {
        *self.0.lock().expect("firing snapshot lock poisoned") = rows;
    }

    /// The snapshot's rows.
    pub fn get(&self) -> Vec<SloFiring> {
        self.0.lock().expect("firing snapshot lock poisoned").clone()
    }
}

/// Shared by the evaluator, the deliverer and the API.
#[derive(Debug)]
pub struct AlertRuntime<S = AlertStore> {
    /// The alerter: the evaluator changes it, the API reads it and adds silences.
    pub alerter: tokio::sync::Mutex<Alerter>,
    /// Where the alert state, history and outbox are kept.
    pub store: S,
    /// The alerting metrics the cycles and the deliverer count in.
    pub metrics: Arc<AlertingMetrics>,
    /// Wakes the deliverer when a cycle queued notifications.
    pub wake: tokio::sync::Notify,
    /// Wakes the evaluator loop after a config reload: the other instances' windows (laid out
    /// for the old config) were dropped and are read again at once.
    pub relayout: tokio::sync::Notify,
    /// The base of the links in notifications and reports.
    pub external_url: String,
    /// Alerts firing per (SLO, severity) after the last cycle, for `/metrics`.
    pub firing_by_slo: Arc<FiringSnapshot>,
    /// The receivers' notifiers; a reload replaces them whole.
    pub notifiers: std::sync::RwLock<Arc<Notifiers>>,
    /// A whole evaluation cycle holds it shared and a reload exclusively, so a cycle never mixes
    /// the SLO indices of two configs (the alerter's model, the source's windows).
    pub reconfig: tokio::sync::RwLock<()>,
}

impl<S: StateStore> AlertRuntime<S> {
    /// A runtime around `alerter` as it is (nothing read from `store`).
    pub fn new(
        alerter: Alerter,
        store: S,
        metrics: Arc<AlertingMetrics>,
        external_url: String,
        notifiers: Notifiers,
    ) -> Self {
        AlertRuntime {
            alerter: tokio::sync::Mutex::new(alerter),
            store,
            metrics,
            wake: tokio::sync::Notify::new(),
            relayout: tokio::sync::Notify::new(),
            external_url,
            firing_by_slo: Arc::default(),
            notifiers: std::sync::RwLock::new(Arc::new(notifiers)),
            reconfig: tokio::sync::RwLock::new(()),
        }
    }

    /// Reads the stored alert state and builds the notifiers; fails on a receiver that cannot be
    /// built or a state that cannot be read.
    pub async fn start(
        model: Arc<Alerting>,
        journeys: Vec<String>,
        external_url: String,
        store: S,
        metrics: Arc<AlertingMetrics>,
    ) -> Result<Self, StartError> {
        let notifiers = notifiers(&model)?;
        let names: Vec<String> = model.slos.iter().map(|s| s.name.clone()).collect();
        let loaded = store.load(&names).await.map_err(StartError::Load)?;
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
        Ok(AlertRuntime::new(alerter, store, metrics, external_url, notifiers))
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

/// Per SLO of the model in force, the page and ticket alerts firing now (zeros included).
fn firing_by_slo(model: &Alerting, alerter: &Alerter) -> Vec<SloFiring> {
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
            rows.push(SloFiring {
                slo: slo.name.clone(),
                severity,
                firing: firing as u64,
            });
        }
    }
    rows
}
