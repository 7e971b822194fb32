//! Which buckets of a series changed since the last take: what a flush writes.

/// The buckets of one series (counts or histograms) touched since the last take.
#[derive(Clone, Debug, Default)]
pub(super) struct Dirty {
    /// Instants inside changed buckets (a bucket's start when it was marked; after a merge it
    /// lies inside the merged bucket, after an eviction in none).
    instants: Vec<i64>,
    /// The newest bucket changed (set on the fast path, resolved to its start by `settle`).
    pub(super) newest: bool,
    /// Length at which `instants` is next sorted and deduplicated.
    compact_at: usize,
}

impl Dirty {
    /// Bucket `i` of `starts` changed.
    #[inline]
    pub(super) fn touch(&mut self, starts: &[i64], i: usize) {
        if i + 1 == starts.len() {
            self.newest = true;
        } else {
            self.mark(starts[i]);
        }
    }

    /// The bucket holding `at` changed.
    pub(super) fn mark(&mut self, at: i64) {
        if self.instants.last() == Some(&at) {
            return;
        }
        self.instants.push(at);
        if self.instants.len() >= self.compact_at.max(64) {
            self.instants.sort_unstable();
            self.instants.dedup();
            self.compact_at = 2 * self.instants.len();
        }
    }

    /// Call before the newest bucket changes (a new newest, a merge, an eviction): turns the
    /// newest flag into its start.
    pub(super) fn settle(&mut self, starts: &[i64]) {
        if std::mem::take(&mut self.newest)
            && let Some(&s) = starts.last()
        {
            self.mark(s);
        }
    }

    /// The changed instants, sorted and unique; the set is empty afterwards.
    pub(super) fn take(&mut self, starts: &[i64]) -> Vec<i64> {
        self.settle(starts);
        let mut v = std::mem::take(&mut self.instants);
        v.sort_unstable();
        v.dedup();
        self.compact_at = 0;
        v
    }
}
