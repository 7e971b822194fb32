//! `tracebudget_jetstream_…`: every message's outcome, every reject with its reason, acks,
//! consumer lag and errors, per partition.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub partition: u32,
    /// `ingested`, `rejected` (undecodable: see `rejects`), `skipped_committed` (at or below the
    /// stored checkpoint), `skipped_redelivered` (at or below what this process ingested).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub partition: u32,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct JetStreamMetrics {
    pub messages: Family<OutcomeLabels, Counter>,
    pub rejects: Family<RejectLabels, Counter>,
    pub acks: Family<PartitionLabels, Counter>,
    pub ack_failures: Family<PartitionLabels, Counter>,
    pub backpressure_waits: Family<PartitionLabels, Counter>,
    pub pending: Family<PartitionLabels, Gauge>,
    pub position: Family<PartitionLabels, Gauge>,
    pub committed: Family<PartitionLabels, Gauge>,
    pub restored_traces: Family<PartitionLabels, Counter>,
    pub partitions: Gauge,
    pub errors: Family<StageLabels, Counter>,
}

impl JetStreamMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("jetstream");
        r.register(
            "messages",
            "JetStream messages per partition and outcome (ingested, rejected, skipped_committed, skipped_redelivered)",
            self.messages.clone(),
        );
        r.register(
            "rejects",
            "Undecodable JetStream messages per partition and reason (their position still advances)",
            self.rejects.clone(),
        );
        r.register(
            "acks",
            "Acks sent (AckPolicy::All: one ack covers every earlier message of the partition)",
            self.acks.clone(),
        );
        r.register("ack_failures", "Acks that could not be sent", self.ack_failures.clone());
        r.register(
            "backpressure_waits",
            "Times a message waited because the trace assembler was full (retried, never skipped)",
            self.backpressure_waits.clone(),
        );
        r.register(
            "pending_messages",
            "Consumer lag: messages of the partition not yet delivered, as of the last delivery",
            self.pending.clone(),
        );
        r.register(
            "position",
            "Newest stream sequence of the partition ingested here",
            self.position.clone(),
        );
        r.register(
            "committed_position",
            "Newest stream sequence of the partition stored by a flush",
            self.committed.clone(),
        );
        r.register(
            "restored_traces",
            "Open traces restored from the partition's snapshot when consumption started",
            self.restored_traces.clone(),
        );
        r.register(
            "partitions_consumed",
            "Partitions this instance consumes",
            self.partitions.clone(),
        );
        r.register(
            "errors",
            "JetStream failures per stage (connect, stream, consumer, fetch, checkpoint); each is retried",
            self.errors.clone(),
        );
    }

    pub fn message(&self, partition: u32, outcome: &'static str) {
        self.messages.get_or_create(&OutcomeLabels { partition, outcome }).inc();
    }

    pub fn error(&self, stage: &'static str) {
        self.errors.get_or_create(&StageLabels { stage }).inc();
    }
}
