//! The write path: every `flush_interval` the changed buckets are drained from the pipeline (a
//! short hold of its lock) and written in one transaction, off the ingest hot path.
//!
//! When the database is unreachable the engine keeps ingesting: the drained rows wait in
//! [`Pending`] (at most one row per bucket the windows hold, so the wait costs bounded memory
//! however long it lasts), the flush is retried with exponential backoff and jitter, and the
//! first success writes everything. Until then `/metrics` shows what is not stored yet per SLO
//! (`tracebudget_storage_unflushed_events`) and every failure by stage.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use slis::Timestamp;
use tokio_util::sync::CancellationToken;

use super::sli::{Pending, SliStore, StoreError, Written};
use crate::pipeline::Pipeline;
use crate::receiver::wall_clock;

/// Retry delays after a failed flush: doubling from the first to the last, ±20% jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a shutdown keeps retrying the last flush before giving up (and saying so).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// The storage metrics (`tracebudget_storage_…`).
#[derive(Debug)]
pub struct StorageMetrics {
    pub flushes: Family<OutcomeLabels, Counter>,
    pub failures: Family<StageLabels, Counter>,
    pub flush_seconds: Histogram,
    pub rows_written: Family<TableLabels, Counter>,
    pub rows_deleted: Family<ReasonLabels, Counter>,
    pub pending_rows: Gauge,
    pub last_flush: Gauge,
    pub restored_rows: Family<OutcomeLabels, Counter>,
    /// Bytes of open-trace snapshots written (JetStream partitions).
    pub snapshot_bytes: Counter,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            flushes: Family::default(),
            failures: Family::default(),
            flush_seconds: Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            rows_written: Family::default(),
            rows_deleted: Family::default(),
            pending_rows: Gauge::default(),
            last_flush: Gauge::default(),
            restored_rows: Family::default(),
            snapshot_bytes: Counter::default(),
        }
    }
}

impl StorageMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("storage");
        r.register("flushes", "Flushes of SLI buckets, per outcome", self.flushes.clone());
        r.register(
            "flush_failures",
            "Failed flushes, per stage that failed (each is retried with backoff)",
            self.failures.clone(),
        );
        r.register(
            "flush_duration_seconds",
            "Time to write one flush (one transaction)",
            self.flush_seconds.clone(),
        );
        r.register(
            "rows_written",
            "Bucket rows written, per table",
            self.rows_written.clone(),
        );
        r.register(
            "rows_deleted",
            "Bucket rows deleted: replaced by a coarser bucket (coarsened), past the retention, or 0002 count rows rewritten as blocks (moved_to_blocks)",
            self.rows_deleted.clone(),
        );
        r.register(
            "pending_rows",
            "Bucket rows drained but not yet stored (waiting for the database)",
            self.pending_rows.clone(),
        );
        r.register(
            "last_flush_timestamp_seconds",
            "When the last successful flush committed (Unix time)",
            self.last_flush.clone(),
        );
        r.register(
            "snapshot_bytes",
            "Bytes of open-trace snapshots written with JetStream checkpoints",
            self.snapshot_bytes.clone(),
        );
        r.register(
            "restored_rows",
            "Rows read at start-up, per outcome (restored, unknown_journey, too_old, corrupt)",
            self.restored_rows.clone(),
        );
    }
}

/// Per JetStream partition, the newest stream sequence a committed flush stored.
pub type Committed = std::collections::BTreeMap<u32, u64>;

/// Asks the flusher to flush now; the answer says whether it committed.
pub type FlushRequest = tokio::sync::oneshot::Sender<bool>;

/// A way to make the flusher flush now and wait for it (a partition handed over, a test).
#[derive(Debug, Clone)]
pub struct FlushHandle(tokio::sync::mpsc::Sender<FlushRequest>);

impl FlushHandle {
    /// Flushes now; `false` when the flush failed or the flusher has stopped.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.0.send(tx).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// Drains the pipeline and writes to the store; see the module docs.
#[derive(Debug)]
pub struct Flusher {
    store: SliStore,
    pipeline: Arc<Mutex<Pipeline>>,
    metrics: Arc<StorageMetrics>,
    pending: Pending,
    /// The retention horizon last applied to the database.
    expired_to: Option<Timestamp>,
    committed: tokio::sync::watch::Sender<Committed>,
    requests: tokio::sync::mpsc::Receiver<FlushRequest>,
    handle: FlushHandle,
    fenced: CancellationToken,
}

impl Flusher {
    pub fn new(store: SliStore, pipeline: Arc<Mutex<Pipeline>>, metrics: Arc<StorageMetrics>) -> Self {
        let (tx, requests) = tokio::sync::mpsc::channel(16);
        Flusher {
            store,
            pipeline,
            metrics,
            pending: Pending::default(),
            expired_to: None,
            committed: tokio::sync::watch::Sender::new(Committed::new()),
            requests,
            handle: FlushHandle(tx),
            fenced: CancellationToken::new(),
        }
    }

    /// The JetStream positions of the last committed flush; a consumer acks up to them.
    pub fn committed(&self) -> tokio::sync::watch::Receiver<Committed> {
        self.committed.subscribe()
    }

    /// Cancelled when [`Flusher::run`] stops because another instance has claimed one of the
    /// JetStream partitions whose counts are waiting (its lock session was lost and the partition
    /// taken over). Those counts can never be stored — the new owner counts the same messages
    /// again from the stored position — and they cannot be told apart from the other
    /// partitions' in the windows, so the instance must stop and start again from what is
    /// stored: `serve` exits with an error (nothing acked is lost, nothing is counted twice).
    pub fn fenced(&self) -> CancellationToken {
        self.fenced.clone()
    }

    /// Flushes on request, besides every interval.
    pub fn handle(&self) -> FlushHandle {
        self.handle.clone()
    }

    /// Drains the pipeline and writes everything waiting in one transaction. On failure the rows
    /// stay waiting for the next call.
    pub async fn flush(&mut self) -> Result<Written, StoreError> {
        // Names and slot layouts as of the drain (a config reload may change them).
        let (drained, horizon, names, series) = {
            let mut p = self.pipeline.lock().expect("pipeline lock poisoned");
            let names: Vec<String> = p.journeys().0.iter().map(|j| j.name.clone()).collect();
            let series: Vec<Vec<String>> = (0..names.len()).map(|j| p.series(j).to_vec()).collect();
            (p.drain_changes(), p.retained_from(), names, series)
        };
        self.pending.merge(drained.journeys, &names, &series);
        if drained.stream.is_some() {
            // Positions only grow, and the newest open traces replace the older ones.
            self.pending.stream = drained.stream;
        }
        let m = &self.metrics;
        m.pending_rows.set(self.pending.len() as i64);
        let expire = horizon.filter(|h| self.expired_to.is_none_or(|done| *h > done));
        let started = Instant::now();
        match self.store.write(&self.pending, expire).await {
            Ok(w) => {
                m.flush_seconds.observe(started.elapsed().as_secs_f64());
                m.flushes.get_or_create(&OutcomeLabels { outcome: "ok" }).inc();
                m.rows_written
                    .get_or_create(&TableLabels {
                        table: "sli_count_blocks",
                    })
                    .inc_by(w.count_rows);
                m.rows_written
                    .get_or_create(&TableLabels { table: "sli_latency" })
                    .inc_by(w.latency_rows);
                m.rows_written
                    .get_or_create(&TableLabels {
                        table: "jetstream_checkpoints",
                    })
                    .inc_by(w.checkpoints);
                m.rows_written
                    .get_or_create(&TableLabels {
                        table: "jetstream_open_traces",
                    })
                    .inc_by(w.checkpoints);
                m.snapshot_bytes.inc_by(w.snapshot_bytes);
                m.rows_deleted
                    .get_or_create(&ReasonLabels { reason: "coarsened" })
                    .inc_by(w.replaced);
                m.rows_deleted
                    .get_or_create(&ReasonLabels { reason: "retention" })
                    .inc_by(w.expired);
                m.rows_deleted
                    .get_or_create(&ReasonLabels {
                        reason: "moved_to_blocks",
                    })
                    .inc_by(w.moved);
                m.last_flush.set(wall_clock().unix_secs());
                if let Some(stream) = &self.pending.stream {
                    let positions: Committed = stream.partitions.iter().map(|(p, seq, _)| (*p, *seq)).collect();
                    self.committed.send_modify(|c| c.extend(positions));
                }
                self.pending.clear();
                m.pending_rows.set(0);
                if expire.is_some() {
                    self.expired_to = expire;
                }
                self.pipeline
                    .lock()
                    .expect("pipeline lock poisoned")
                    .committed(drained.totals);
                Ok(w)
            }
            Err(e) => {
                let outcome = if e.is_fenced() { "fenced" } else { "error" };
                m.flushes.get_or_create(&OutcomeLabels { outcome }).inc();
                m.failures.get_or_create(&StageLabels { stage: e.what }).inc();
                Err(e)
            }
        }
    }

    /// Flushes every `interval` until `stop`, retrying failures with backoff; then one last flush,
    /// retried for up to [`SHUTDOWN_GRACE`]. Returns whether everything was stored.
    pub async fn run(mut self, interval: Duration, stop: CancellationToken) -> bool {
        let mut failures = 0u32;
        let mut wait = interval;
        let mut asked: Vec<FlushRequest> = Vec::new();
        loop {
            let sleep = tokio::time::sleep(wait);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = sleep => {}
                Some(r) = self.requests.recv() => asked.push(r),
            }
            while let Ok(r) = self.requests.try_recv() {
                asked.push(r);
            }
            let result = self.flush().await;
            for r in asked.drain(..) {
                let _ = r.send(result.is_ok());
            }
            if let Err(e) = &result
                && e.is_fenced()
            {
                return self.stand_down(e);
            }
            match result {
                Ok(_) => {
                    if failures > 0 {
                        tracing::info!(after = failures, "the database is back: flushed what was waiting");
                    }
                    failures = 0;
                    wait = interval;
                }
                Err(e) => {
                    failures += 1;
                    wait = backoff(failures);
                    tracing::warn!(
                        error = %e,
                        waiting_rows = self.pending.len(),
                        retry_in = ?wait,
                        "flush failed; ingest goes on and the rows wait"
                    );
                }
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut attempt = 0;
        loop {
            match self.flush().await {
                Err(e) if e.is_fenced() => return self.stand_down(&e),
                Ok(_) => {
                    while let Ok(r) = self.requests.try_recv() {
                        let _ = r.send(true);
                    }
                    return true;
                }
                Err(e) if Instant::now() < deadline => {
                    attempt += 1;
                    tracing::warn!(error = %e, "last flush failed; retrying before exit");
                    tokio::time::sleep(backoff(attempt).min(deadline - Instant::now())).await;
                }
                Err(e) => {
                    self.metrics
                        .flushes
                        .get_or_create(&OutcomeLabels { outcome: "given_up" })
                        .inc();
                    tracing::error!(
                        error = %e,
                        lost_rows = self.pending.len(),
                        "gave up the last flush: what was counted since the previous flush is not stored"
                    );
                    return false;
                }
            }
        }
    }
}

impl Flusher {
    /// Stops for good after a fenced flush; see [`Flusher::fenced`].
    fn stand_down(mut self, e: &StoreError) -> bool {
        tracing::error!(
            error = %e,
            dropped_rows = self.pending.len(),
            "another instance consumes a partition whose counts are waiting here: stopping without \
             storing them (they were never acked; the new owner counts those messages)"
        );
        while let Ok(r) = self.requests.try_recv() {
            let _ = r.send(false);
        }
        self.fenced.cancel();
        false
    }
}

/// The delay before retry `n` (1-based): 0.5 s doubling up to 30 s, ±20% jitter.
fn backoff(n: u32) -> Duration {
    let base = BACKOFF_FIRST
        .saturating_mul(1 << n.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    base.mul_f64(rand::random_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter() {
        for (n, want) in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (40, 30.0)] {
            let got = backoff(n).as_secs_f64();
            assert!(
                (want * 0.8..=want * 1.2).contains(&got),
                "retry {n}: {got} s, want {want} ± 20%"
            );
        }
    }
}
