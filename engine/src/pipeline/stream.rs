//! The JetStream side of the pipeline: which partitions are consumed here, how far, and the
//! snapshot of their open traces that a flush stores with their positions.

use std::collections::BTreeMap;
use std::sync::Arc;

use slis::TraceId;
use slis::privacy::Redactor;

use crate::assembler::{Assembler, SnapshotWriter};
use crate::jetstream::partition_of;

/// Per JetStream partition consumed here: the newest stream sequence ingested and the open
/// traces of that partition, taken under the same lock as the buckets they belong with; the
/// flusher commits all three in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDrain {
    pub stream: String,
    /// (partition, sequence, open-trace snapshot).
    pub partitions: Vec<(u32, u64, Vec<u8>)>,
}

/// Which partitions of a stream are consumed here and how far.
#[derive(Debug)]
pub(super) struct StreamPositions {
    stream: String,
    partitions: u32,
    /// Per partition consumed here, the newest stream sequence ingested (or skipped as poison).
    positions: BTreeMap<u32, u64>,
}

impl StreamPositions {
    /// The stream `stream` of `partitions` partitions (at least one), none consumed yet.
    pub fn new(stream: &str, partitions: u32) -> Self {
        StreamPositions {
            stream: stream.to_owned(),
            partitions: partitions.max(1),
            positions: BTreeMap::new(),
        }
    }

    /// Consumes partition `p` from sequence `seq`.
    pub fn open(&mut self, p: u32, seq: u64) {
        self.positions.insert(p, seq);
    }

    /// Stops consuming partition `p`; returns which traces belong to it.
    pub fn release(&mut self, p: u32) -> impl Fn(&TraceId) -> bool + use<> {
        self.positions.remove(&p);
        let n = self.partitions;
        move |id| partition_of(id, n) == p
    }

    /// The newest sequence of partition `p` ingested here, if it is consumed here.
    pub fn position(&self, p: u32) -> Option<u64> {
        self.positions.get(&p).copied()
    }

    /// Moves partition `p` (if consumed here) to `seq`, never back.
    pub fn advance(&mut self, p: u32, seq: u64) {
        if let Some(pos) = self.positions.get_mut(&p) {
            *pos = (*pos).max(seq);
        }
    }

    /// The partitions consumed here, ascending, and the partition count to place a trace by.
    fn consumed(&self) -> (Vec<u32>, u32) {
        (self.positions.keys().copied().collect(), self.partitions)
    }

    /// Which traces belong to a partition consumed here.
    pub fn is_consumed(&self) -> impl Fn(&TraceId) -> bool + use<> {
        let (parts, n) = self.consumed();
        move |id| parts.binary_search(&partition_of(id, n)).is_ok()
    }

    /// Every consumed partition's position and open traces (names redacted by `redactor`).
    pub fn drain(&self, assembler: &Assembler, journeys: &[String], redactor: &Arc<Redactor>) -> StreamDrain {
        let (parts, n) = self.consumed();
        let mut writers: Vec<SnapshotWriter> = parts
            .iter()
            .map(|_| SnapshotWriter::new(journeys).redacting(redactor.clone()))
            .collect();
        assembler.snapshot(|id| parts.binary_search(&partition_of(id, n)).ok(), &mut writers);
        StreamDrain {
            stream: self.stream.clone(),
            partitions: parts
                .iter()
                .zip(writers)
                .map(|(&p, w)| (p, self.positions[&p], w.data))
                .collect(),
        }
    }
}
