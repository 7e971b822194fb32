//! [`AppState`]: everything the routes read, as `serve` wires it.

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::registry::Registry;
use slis::Timestamp;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::store::Db;

use super::refusal::GuardMetrics;
use crate::app::alerts::AlertRuntime;
use crate::app::config::Config;
use crate::app::reload::{ReloadMetrics, Target};
use crate::app::state::Live;

/// Everything the routes read.
#[derive(Clone, Debug)]
pub struct AppState {
    /// What `/metrics` encodes.
    pub registry: Arc<Registry>,
    /// The engine: windows, assembler and trace health, behind the one ingest lock.
    pub pipeline: Arc<Mutex<Pipeline>>,
    /// The config in force.
    pub live: Arc<Live>,
    /// The alerter, its store and notifiers.
    pub alerts: Arc<AlertRuntime>,
    /// Where a reload records the config it applies.
    pub db: Db,
    /// Reload outcomes, counted.
    pub reloads: Arc<ReloadMetrics>,
    /// Requests refused by `auth`, by reason.
    pub guard: Arc<GuardMetrics>,
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

    /// "Now", by [`AppState::clock`].
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// What a config reload reads and swaps.
    pub fn reload_target(&self) -> Target<'_> {
        Target {
            pipeline: &self.pipeline,
            live: &self.live,
            alerts: &self.alerts,
            db: &self.db,
            metrics: &self.reloads,
        }
    }
}
