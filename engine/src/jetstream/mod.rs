//! The JetStream source: OTLP `ExportTraceServiceRequest` messages on a NATS JetStream stream,
//! partitioned by trace id, consumed with exactly-once accounting.
//!
//! - `config.rs` — `[jetstream]`.
//! - `consumer.rs` — one durable pull consumer per partition this instance owns (the set comes
//!   from a `tokio::sync::watch` channel: from config, or from the cluster's partition locks);
//!   skips what the database already counts, ingests the rest with the position in the same
//!   lock hold, acks after the flush that stored it.
//! - `split.rs` — what `tracebudget publish` does to a request: split by partition, keep the
//!   resource/scope structure, re-encode.
//! - `metrics.rs` — `tracebudget_jetstream_…`.
//!
//! **Invariant:** a message is acked only after a flush has committed, in one transaction, the
//! buckets it changed, its partition's position at or past its sequence, and the partition's
//! open traces of that instant; a message at or below the stored position is never ingested.

pub mod config;
pub mod consumer;
pub mod metrics;
pub mod split;

pub use config::JetStreamConfig;
pub use consumer::{Consumer, OwnedPartitions};
pub use metrics::JetStreamMetrics;

use slis::TraceId;

/// The partition of a trace: the first 8 bytes of its id as a big-endian u64, modulo
/// `partitions`. Every span of a trace lands in one partition.
pub fn partition_of(trace_id: &TraceId, partitions: u32) -> u32 {
    let head = u64::from_be_bytes(trace_id.0[..8].try_into().expect("8 bytes"));
    (head % u64::from(partitions.max(1))) as u32
}

/// The same, from the raw bytes of an OTLP trace id (16 bytes; anything else: partition 0, the
/// consumer's decoder rejects it and counts why).
pub fn partition_of_bytes(trace_id: &[u8], partitions: u32) -> u32 {
    match <[u8; 16]>::try_from(trace_id) {
        Ok(id) => partition_of(&TraceId(id), partitions),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_come_from_the_first_eight_bytes_big_endian() {
        let mut id = [0u8; 16];
        id[7] = 10;
        id[15] = 0xff; // the low half does not count
        for (partitions, want) in [(1, 0), (3, 1), (4, 2), (8, 2), (16, 10), (0, 0)] {
            assert_eq!(partition_of(&TraceId(id), partitions), want, "{partitions}");
        }
        id[0] = 1; // 2^56 + 10
        assert_eq!(partition_of(&TraceId(id), 7), (((1u64 << 56) + 10) % 7) as u32);
        assert_eq!(partition_of_bytes(&id, 7), partition_of(&TraceId(id), 7));
        assert_eq!(partition_of_bytes(&[1, 2, 3], 7), 0);
    }
}

#[cfg(test)]
mod exactly_once_tests;

#[cfg(test)]
mod handover_tests;
