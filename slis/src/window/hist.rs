//! The latency histograms of a journey: a sparse series of buckets in the histogram tiers, each
//! bucket's histogram live while the bucket is among the newest, compressed with hdrhistogram's
//! V2 + deflate encoding once it closes.
//!
//! A live `Histogram<u64>` at these bounds holds 3,328 counters (26 KiB); a closed minute of a
//! few hundred samples compresses to a few hundred bytes, so only the newest buckets stay live.
//! A compressed histogram grows with the number of distinct values it holds, about 1.5 KiB for an
//! hour of 2,000 lognormal samples a minute, which is why histograms coarsen to days after a week.

use std::mem;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::LIVE_BUCKETS;
use super::dirty::Dirty;
use super::tiers::{HIST_TIER_COUNT, HIST_WIDTHS, floor_to, hist_tier_starts};

/// Histogram values are microseconds from 1 µs to 1 h; larger values clamp to 1 h.
pub(super) const LOWEST_MICROS: u64 = 1;
pub(super) const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Two significant figures: a recorded value is off by at most 1/128 (< 1%) of itself.
pub(super) const SIGNIFICANT_FIGURES: u8 = 2;

pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_FIGURES)
        .expect("the constant histogram bounds are valid")
}

/// Heap bytes of a boxed live histogram: the struct itself and its counters.
pub(super) fn boxed_histogram_bytes(h: &Histogram<u64>) -> usize {
    size_of::<Histogram<u64>>() + h.distinct_values() * size_of::<u64>()
}

#[derive(Clone, Debug)]
pub(super) enum BucketHist {
    /// The bucket is among the newest: samples are recorded in place.
    Live(Box<Histogram<u64>>),
    /// V2 + deflate bytes; empty when the bucket holds no latency sample.
    Packed(Box<[u8]>),
}

impl BucketHist {
    pub(super) fn empty() -> Self {
        BucketHist::Packed(Box::default())
    }

    /// Adds this bucket's samples to `into`.
    pub(super) fn add_to(&self, into: &mut Histogram<u64>, de: &mut Deserializer) {
        match self {
            BucketHist::Live(h) => add(into, h),
            BucketHist::Packed(bytes) => add_packed(into, bytes, de),
        }
    }

    /// Bytes this bucket's histogram holds on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            BucketHist::Live(h) => boxed_histogram_bytes(h),
            BucketHist::Packed(bytes) => bytes.len(),
        }
    }
}

/// Adds `source` to `into`. Both come from [`new_histogram`] (or from bytes it produced), so their
/// layouts match and the addition cannot fail.
pub(super) fn add(into: &mut Histogram<u64>, source: &Histogram<u64>) {
    into.add(source).expect("histograms of the same bounds always add");
}

/// Adds the histogram encoded in `bytes` (empty = nothing) to `into`.
pub(super) fn add_packed(into: &mut Histogram<u64>, bytes: &[u8], de: &mut Deserializer) {
    if bytes.is_empty() {
        return;
    }
    // Bytes encoded here always decode; restored ones had their header checked, and a body
    // damaged in storage is left out rather than taking the engine down.
    match de.deserialize::<u64, _>(&mut &bytes[..]) {
        Ok(h) => add(into, &h),
        Err(e) => debug_assert!(false, "a packed histogram does not decode: {e:?}"),
    }
}

/// Encodes `h`, `None` when it cannot be: a counter above `i64::MAX` has no V2 encoding, and such
/// a histogram simply stays live.
pub(super) fn pack(h: &Histogram<u64>) -> Option<Box<[u8]>> {
    if h.is_empty() {
        return Some(Box::default());
    }
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).ok()?;
    Some(bytes.into_boxed_slice())
}

/// The latency histograms of one journey: sparse buckets whose widths follow
/// [`HISTOGRAM_TIERS`](super::HISTOGRAM_TIERS), independently of the count buckets.
///
/// Invariant: a bucket starting at `s` is as wide as the tier `s` falls in by `from` (`width_of`);
/// `advance` merges whatever a move of `from` makes coarser, so the invariant holds between calls.
#[derive(Clone, Debug)]
pub(super) struct Latencies {
    /// Bucket starts, ascending, in ns since the epoch.
    pub(super) starts: Vec<i64>,
    pub(super) hists: Vec<BucketHist>,
    /// Where each tier but the last begins (see [`hist_tier_starts`]); only grows.
    pub(super) from: [i64; HIST_TIER_COUNT - 1],
    /// Start and width of the newest bucket, for the fast path (width 0 when there is none).
    newest_start: i64,
    newest_width: u64,
    /// A reset histogram whose allocation the next live bucket reuses.
    spare: Option<Box<Histogram<u64>>>,
    /// Which buckets changed since the last `take_changes`.
    pub(super) dirty: Dirty,
}

impl Latencies {
    pub(super) fn new() -> Self {
        Latencies {
            starts: Vec::new(),
            hists: Vec::new(),
            from: [i64::MIN; HIST_TIER_COUNT - 1],
            newest_start: i64::MIN,
            newest_width: 0,
            spare: None,
            dirty: Dirty::default(),
        }
    }

    /// Records `weight` samples of `micros` at `at` (already known to be within the retention).
    #[inline]
    pub(super) fn record(&mut self, at: i64, micros: u64, weight: u64) {
        // Unsigned compare: also false when `at` is before the newest bucket.
        if (at.wrapping_sub(self.newest_start) as u64) < self.newest_width
            && let Some(BucketHist::Live(h)) = self.hists.last_mut()
        {
            h.saturating_record_n(micros, weight);
            self.dirty.newest = true;
            return;
        }
        self.record_slow(at, micros, weight);
    }

    /// Records into a bucket that is not the newest live one: it is created if missing; a packed
    /// one goes live if it is among the newest, otherwise it is decompressed, updated and
    /// compressed again (late samples).
    #[cold]
    fn record_slow(&mut self, at: i64, micros: u64, weight: u64) {
        let i = self.bucket_for(at);
        self.dirty.touch(&self.starts, i);
        let mut h = self.open(i);
        h.saturating_record_n(micros, weight);
        self.hists[i] = BucketHist::Live(h);
        if i + LIVE_BUCKETS < self.starts.len() {
            self.close(i);
        }
    }

    /// The width of the bucket holding `at` under the current tier boundaries.
    pub(super) fn width_of(&self, at: i64) -> i64 {
        match self.from.iter().position(|&f| at >= f) {
            Some(tier) => HIST_WIDTHS[tier],
            None => HIST_WIDTHS[HIST_TIER_COUNT - 1],
        }
    }

    /// Where the bucket starting at `start` ends: the next boundary of its tier (only the bucket
    /// that `floor_to` saturated at `i64::MIN` is shorter than its width).
    pub(super) fn end_of(&self, start: i64) -> i64 {
        let width = self.width_of(start);
        start.saturating_add(width - start.rem_euclid(width))
    }

    /// The start of the bucket holding `at` under the current tier boundaries.
    pub(super) fn bucket_start(&self, at: i64) -> i64 {
        floor_to(at, self.width_of(at))
    }

    /// The index of the bucket holding `at`, created if needed.
    pub(super) fn bucket_for(&mut self, at: i64) -> usize {
        let start = self.bucket_start(at);
        let p = self.starts.partition_point(|&s| s < start);
        if self.starts.get(p) == Some(&start) {
            return p;
        }
        self.dirty.settle(&self.starts);
        self.starts.insert(p, start);
        self.hists.insert(p, BucketHist::empty());
        if p + 1 == self.starts.len() {
            self.refresh_newest();
        }
        // Whatever the insert pushed out of the newest `LIVE_BUCKETS` closes.
        if let Some(old) = self.starts.len().checked_sub(LIVE_BUCKETS + 1) {
            self.close(old);
        }
        p
    }

    /// The samples of every bucket starting in `[from, now]`.
    pub(super) fn histogram(&self, from: i64, now: i64) -> Histogram<u64> {
        let mut h = new_histogram();
        let lo = self.starts.partition_point(|&s| s < from);
        let hi = self.starts.partition_point(|&s| s <= now);
        if lo < hi {
            let mut de = Deserializer::new();
            for b in &self.hists[lo..hi] {
                b.add_to(&mut h, &mut de);
            }
        }
        h
    }

    /// Moves the tier boundaries to `clock`, merging the buckets that became coarser, and drops the
    /// buckets that end at or before `keep_from`.
    pub(super) fn advance(&mut self, clock: i64, keep_from: i64) {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (f, new) in self.from.iter_mut().zip(hist_tier_starts(clock)) {
            if new > *f {
                (lo, hi) = (lo.min(*f), hi.max(new));
                *f = new;
            }
        }
        if lo < hi {
            self.regroup(lo, hi);
        }
        self.evict(keep_from);
        self.refresh_newest();
        super::trim(&mut self.starts, 1);
        super::trim(&mut self.hists, 1);
    }

    /// Merges the buckets starting in `[lo, hi)` into the buckets of the tier each start now falls
    /// in. `lo` is the lowest old boundary that moved and `hi` the highest new one, so every bucket
    /// a move made coarser is inside, and so is every bucket it merges with.
    fn regroup(&mut self, lo: i64, hi: i64) {
        let a = self.starts.partition_point(|&s| s < lo);
        let b = self.starts.partition_point(|&s| s < hi);
        self.dirty.settle(&self.starts);
        let mut de = Deserializer::new();
        let (mut starts, mut hists) = (Vec::with_capacity(b - a), Vec::with_capacity(b - a));
        let mut i = a;
        while i < b {
            let start = floor_to(self.starts[i], self.width_of(self.starts[i]));
            let end = self.end_of(self.starts[i]);
            let j = i + self.starts[i..b].partition_point(|&s| s < end);
            starts.push(start);
            self.dirty.mark(start);
            if j == i + 1 && start == self.starts[i] {
                hists.push(mem::replace(&mut self.hists[i], BucketHist::empty()));
                i = j;
                continue;
            }
            let mut merged = self.take_spare();
            for k in i..j {
                match mem::replace(&mut self.hists[k], BucketHist::empty()) {
                    BucketHist::Live(h) => {
                        add(&mut merged, &h);
                        self.put_spare(h);
                    }
                    BucketHist::Packed(bytes) => add_packed(&mut merged, &bytes, &mut de),
                }
            }
            hists.push(match pack(&merged) {
                Some(bytes) => {
                    self.put_spare(merged);
                    BucketHist::Packed(bytes)
                }
                None => BucketHist::Live(merged),
            });
            i = j;
        }
        self.starts.splice(a..b, starts);
        self.hists.splice(a..b, hists);
    }

    /// Drops the buckets that end at or before `keep_from`. A bucket straddling it (a day bucket,
    /// as `keep_from` is only a whole hour) stays until all of it is older.
    fn evict(&mut self, keep_from: i64) {
        let k = self.starts.partition_point(|&s| self.end_of(s) <= keep_from);
        if k == 0 {
            return;
        }
        self.dirty.settle(&self.starts);
        self.starts.drain(..k);
        for h in self.hists.drain(..k).collect::<Vec<_>>() {
            if let BucketHist::Live(h) = h {
                self.put_spare(h);
            }
        }
    }

    fn refresh_newest(&mut self) {
        match self.starts.last() {
            Some(&s) => {
                self.newest_start = s;
                self.newest_width = (self.end_of(s) - s) as u64;
            }
            None => self.newest_width = 0,
        }
    }

    /// Takes bucket `i`'s histogram out as a live one (its slot is left empty).
    pub(super) fn open(&mut self, i: usize) -> Box<Histogram<u64>> {
        match mem::replace(&mut self.hists[i], BucketHist::empty()) {
            BucketHist::Live(h) => h,
            BucketHist::Packed(bytes) => {
                let mut h = self.take_spare();
                add_packed(&mut h, &bytes, &mut Deserializer::new());
                h
            }
        }
    }

    /// Compresses bucket `i`'s histogram if it is live, keeping the allocation for reuse.
    pub(super) fn close(&mut self, i: usize) {
        let BucketHist::Live(h) = &self.hists[i] else {
            return;
        };
        let Some(bytes) = pack(h) else {
            return;
        };
        if let BucketHist::Live(h) = mem::replace(&mut self.hists[i], BucketHist::Packed(bytes)) {
            self.put_spare(h);
        }
    }

    fn take_spare(&mut self) -> Box<Histogram<u64>> {
        self.spare.take().unwrap_or_else(|| Box::new(new_histogram()))
    }

    fn put_spare(&mut self, mut h: Box<Histogram<u64>>) {
        if self.spare.is_none() {
            h.reset();
            self.spare = Some(h);
        }
    }

    /// Number of buckets and of live histograms among them.
    pub(super) fn buckets(&self) -> (usize, usize) {
        let live = self.hists.iter().filter(|h| matches!(h, BucketHist::Live(_))).count();
        (self.starts.len(), live)
    }

    /// Heap bytes: the vectors' capacity, every histogram and the spare.
    pub(super) fn heap_bytes(&self) -> usize {
        self.starts.capacity() * size_of::<i64>()
            + self.hists.capacity() * size_of::<BucketHist>()
            + self.hists.iter().map(BucketHist::heap_bytes).sum::<usize>()
            + self.spare.as_deref().map_or(0, boxed_histogram_bytes)
    }
}
