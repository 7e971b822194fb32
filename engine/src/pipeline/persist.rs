//! Flush and restore: what a flush takes from the windows, and the lifetime counts it stored,
//! from which follows what a crash would lose.

use slis::window::{Changes, Counts, JourneyWindows};

use super::stream::StreamDrain;

/// What one flush writes: every journey's changed buckets, and the lifetime counts of every SLO
/// once they are stored (see [`Pipeline::committed`](super::Pipeline::committed)).
#[derive(Debug, Default)]
pub struct Drained {
    /// (journey index, its changes); journeys without changes are left out.
    pub journeys: Vec<(usize, Changes)>,
    pub totals: Vec<Counts>,
    /// The JetStream partitions consumed here, as of the same instant (none without JetStream).
    pub stream: Option<StreamDrain>,
}

/// Every bucket changed since the previous call, per journey with changes.
pub(super) fn take_changes(windows: &mut [JourneyWindows]) -> Vec<(usize, Changes)> {
    let mut journeys = Vec::new();
    for (j, w) in windows.iter_mut().enumerate() {
        let mut changes = Changes::default();
        crate::store::block::take_blocks(w, &mut changes);
        if !changes.is_empty() {
            journeys.push((j, changes));
        }
    }
    journeys
}

/// Per SLO, its lifetime counts as of the last stored flush.
#[derive(Debug, Default)]
pub(super) struct Committed(Vec<Counts>);

impl Committed {
    /// Nothing stored yet for `slos` SLOs.
    pub fn new(slos: usize) -> Self {
        Committed(vec![Counts::default(); slos])
    }

    /// A flush holding these lifetime counts is stored.
    pub fn set(&mut self, totals: Vec<Counts>) {
        self.0 = totals;
    }

    /// A config reload: SLO `k` keeps what old SLO `from[k]` had stored, or starts at zero.
    pub fn remap(&mut self, from: &[Option<usize>]) {
        self.0 = from
            .iter()
            .map(|f| f.map_or_else(Counts::default, |o| self.0[o]))
            .collect();
    }

    /// Per SLO, what `lifetime` (the SLOs' lifetime counts, in order) holds beyond the stored.
    pub fn unflushed<'a>(&'a self, lifetime: impl Iterator<Item = Counts> + 'a) -> impl Iterator<Item = Counts> + 'a {
        lifetime.zip(&self.0).map(|(now, then)| Counts {
            total: now.total.saturating_sub(then.total),
            bad: now.bad.saturating_sub(then.bad),
        })
    }
}
