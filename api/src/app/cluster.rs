//! Several `serve` instances on one PostgreSQL database, the `serve` side: reading the other
//! instances' rows into the pipeline before each evaluation (merged evaluation), and the
//! leader's loop (`alerts::spawn`). The locks themselves are [`tracebudget_engine::cluster`].
//!
//! Every instance reads the others' rows each `eval_interval`, so its API and `/metrics` show
//! the figures of all instances; only the leader evaluates alerts and delivers.

use std::sync::Mutex;
use std::time::Instant;

use slis::Timestamp;
use tracebudget_engine::cluster::{ClusterMetrics, OutcomeLabels};
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::store::SliStore;

/// What merged evaluation needs: this instance's store (its name, the database) and metrics.
#[derive(Debug, Clone)]
pub struct Others {
    /// This instance's store, which reads the others' rows.
    pub store: SliStore,
    /// Reads counted by outcome.
    pub metrics: ClusterMetrics,
}

impl Others {
    /// Reads every other instance's rows and installs them in the pipeline as of `now`. Call it
    /// holding `AlertRuntime::reconfig` (shared), so the layout read under the pipeline lock is
    /// still the one in force when the windows are installed. Without other instances' rows
    /// (one index probe) nothing is read; on a failure the previous read stays in place.
    pub async fn refresh(&self, pipeline: &Mutex<Pipeline>, now: Timestamp) {
        let outcome = match self.read(pipeline, now).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the other instances' rows; evaluating with the last read");
                "failed"
            }
        };
        self.metrics
            .others_reads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    async fn read(
        &self,
        pipeline: &Mutex<Pipeline>,
        now: Timestamp,
    ) -> Result<&'static str, tracebudget_engine::store::StoreError> {
        let instances = self.store.other_instances().await?;
        if instances.is_empty() {
            let mut p = pipeline.lock().expect("pipeline lock poisoned");
            if p.has_others() {
                p.set_others(Vec::new());
            }
            self.metrics.others_rows.set(0);
            return Ok("none");
        }
        let started = Instant::now();
        let (blank, names, series) = pipeline.lock().expect("pipeline lock poisoned").others_layout();
        // One set of windows per instance: each read keeps the stored histograms as they are
        // (no decoding), which summing instances into one set could not.
        let mut by_instance = Vec::with_capacity(instances.len());
        let mut rows = 0;
        for instance in &instances {
            let mut windows = blank.clone();
            let read = self
                .store
                .read_instance(instance, &mut windows, &names, series.clone(), now)
                .await?;
            for problem in &read.corrupt {
                tracing::error!(%instance, %problem, "skipped another instance's bucket that does not decode");
            }
            rows += read.count_blocks + read.legacy_rows + read.latency_rows;
            by_instance.push(windows);
        }
        let installed = pipeline.lock().expect("pipeline lock poisoned").set_others(by_instance);
        debug_assert!(installed, "reloads wait for the evaluation cycle");
        self.metrics
            .others_read_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.others_rows.set(i64::try_from(rows).unwrap_or(i64::MAX));
        Ok("ok")
    }
}
