//! The write-ahead log's counters: records and bytes made durable, fsyncs and batch sizes,
//! refusals by reason, what recovery cut, segments and bytes on disk.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Recovery;
use crate::metrics::ReasonLabels;

/// The reasons an append is refused for.
const REASONS: [&str; 4] = ["full", "too_large", "io", "stopped"];

/// See the module docs. Names get the registry's prefix and counters `_total`.
#[derive(Debug)]
pub struct WalMetrics {
    /// Records made durable.
    pub appends: Counter,
    /// Bytes of records made durable, framing included.
    pub appended_bytes: Counter,
    /// `sync_data` calls on segments (one per batch, one more per segment rolled in a batch).
    pub fsyncs: Counter,
    /// Records per committed batch.
    pub batch_records: Histogram,
    /// Appends refused, per reason (`full`, `too_large`, `io`, `stopped`).
    pub refusals: Family<ReasonLabels, Counter>,
    /// Bytes recovery cut off (torn or corrupt tails, segments after a cut).
    pub truncated_bytes: Counter,
    /// Records recovery found with a bad checksum.
    pub corrupt_records: Counter,
    /// Records recovery handed back (not yet covered).
    pub recovered_records: Counter,
    /// Segment files on disk.
    pub segments: Gauge,
    /// Bytes of the segment files on disk.
    pub disk_bytes: Gauge,
}

impl Default for WalMetrics {
    fn default() -> Self {
        let metrics = WalMetrics {
            appends: Counter::default(),
            appended_bytes: Counter::default(),
            fsyncs: Counter::default(),
            batch_records: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            refusals: Family::default(),
            truncated_bytes: Counter::default(),
            corrupt_records: Counter::default(),
            recovered_records: Counter::default(),
            segments: Gauge::default(),
            disk_bytes: Gauge::default(),
        };
        for reason in REASONS {
            let _ = metrics.refusals.get_or_create(&ReasonLabels { reason });
        }
        metrics
    }
}

impl WalMetrics {
    /// Registers every metric under `registry` (expected to carry the `tracebudget` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wal_appends",
            "Records made durable in the write-ahead log",
            self.appends.clone(),
        );
        registry.register(
            "wal_appended_bytes",
            "Bytes of records made durable in the write-ahead log, framing included",
            self.appended_bytes.clone(),
        );
        registry.register("wal_fsyncs", "fsyncs of write-ahead log segments", self.fsyncs.clone());
        registry.register(
            "wal_batch_records",
            "Records per write-ahead log batch (one fsync each)",
            self.batch_records.clone(),
        );
        registry.register(
            "wal_refusals",
            "Appends the write-ahead log refused, per reason (full, too_large, io, stopped)",
            self.refusals.clone(),
        );
        registry.register(
            "wal_truncated_bytes",
            "Bytes cut off the write-ahead log at open (torn or corrupt records and what followed)",
            self.truncated_bytes.clone(),
        );
        registry.register(
            "wal_corrupt_records",
            "Write-ahead log records found with a bad checksum at open",
            self.corrupt_records.clone(),
        );
        registry.register(
            "wal_recovered_records",
            "Write-ahead log records replayed at open",
            self.recovered_records.clone(),
        );
        registry.register("wal_segments", "Write-ahead log segment files", self.segments.clone());
        registry.register(
            "wal_disk_bytes",
            "Bytes of the write-ahead log's segment files",
            self.disk_bytes.clone(),
        );
    }

    pub(super) fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(super) fn committed(&self, records: u64, bytes: u64) {
        self.appends.inc_by(records);
        self.appended_bytes.inc_by(bytes);
        self.batch_records.observe(records as f64);
    }

    pub(super) fn recovered(&self, recovery: &Recovery) {
        self.recovered_records.inc_by(recovery.records);
        self.truncated_bytes.inc_by(recovery.truncated_bytes);
        self.corrupt_records.inc_by(recovery.corrupt_records);
    }
}
