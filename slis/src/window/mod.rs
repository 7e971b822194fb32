//! Per-journey SLI windows: time buckets of exact good/bad counts, one series per SLO, and one HDR
//! latency histogram series per journey, queried over rolling (`Last`) or anchored (`Since`)
//! windows.
//!
//! # Buckets
//!
//! A sample belongs to the bucket holding its timestamp (floor division: a sample exactly on a
//! boundary belongs to the bucket starting there). Counts and latency histograms are bucketed
//! separately, each by its own tier table:
//!
//! - counts ([`TIERS`]): minute buckets for the newest 6 hours, hour buckets up to the retention;
//! - histograms ([`HISTOGRAM_TIERS`]): minute buckets for the newest hour, hour buckets up to
//!   7 days, day buckets (UTC midnight to midnight) up to the retention.
//!
//! [`JourneyWindows::advance`] merges the buckets of a tier into one bucket of the next once the
//! whole coarser bucket is older than the tier keeps (by the clock it is given): the minute count
//! buckets of an hour once all of it is older than 6 h, the minute histograms of an hour once all
//! of it is older than 1 h, the hour histograms of a day once all of it is older than 7 days. So
//! minute count buckets reach back 6 to 7 hours, minute histograms 1 to 2 hours and hour histograms
//! 7 to 8 days. `advance` drops count buckets that start before the retention horizon (a whole
//! hour) and histogram buckets that end at or before it; a day histogram straddling the horizon
//! stays until its whole day is past, still holding the samples it took before the horizon.
//! Buckets are sparse: a minute without traffic costs nothing.
//!
//! # Windows
//!
//! A bucket is counted whole or not at all. [`Window::Last(d)`](Window::Last) at `now` holds every
//! bucket whose start lies in `[now − d, now]`; [`Window::Since(t)`](Window::Since) every bucket
//! whose start lies in `[t, now]`. The old edge is therefore aligned *up* to the next bucket start:
//! `Last(5m)` at 12:05:52 starts at 12:00:52 and covers the minute buckets 12:01 … 12:05, i.e.
//! 12:01:00 to 12:05:52 (plus anything stamped later within the 12:05 bucket). In the hour tier the
//! edge moves up to the next whole hour. A window shorter than its buckets may hold none of them.
//! Buckets starting after `now` (samples ahead of the clock) are left out.
//!
//! The same rule applies to [`latency_histogram`](JourneyWindows::latency_histogram) and
//! [`percentiles`](JourneyWindows::percentiles) over the *histogram* buckets: their old edge moves
//! up to the next start in the histogram tier it falls in — the next minute within the last 1–2
//! hours, the next whole hour up to 7–8 days back, the next UTC midnight beyond. `Last(30d)` at
//! 2026-03-02T15:00 starts at 2026-01-31T15:00 and takes the day buckets from 2026-02-01 on, so it
//! covers 29 days and 15 hours. A percentile window may therefore start later than the count
//! window of the same `Window` (never earlier), and `Percentiles::count` need not equal
//! `Counts::total`. Likewise, for a `now` older than the minute tier, the bucket holding `now` is
//! an hour or a day and takes samples stamped after `now` within it.
//!
//! # Cost
//!
//! Counts are stored cumulatively: the row of bucket `b` holds, per SLO, the totals of every bucket
//! up to and including `b`, on top of `base`, the totals of evicted buckets. Any window is then one
//! binary search on the bucket starts and one subtraction. A sample in the newest bucket adds to
//! one row; a late sample adds to its bucket's row and every later one (rare). Counts saturate at
//! `u64::MAX` over the store's lifetime.
//!
//! Only the newest [`LIVE_BUCKETS`] histogram buckets keep a live histogram; older ones keep it
//! compressed (see `hist.rs`), a late sample decompresses, updates and recompresses its bucket,
//! and a query decompresses the ones it covers: a 30-day query merges about 30 day, 168 hour and
//! 120 minute histograms. After 31 days of steady traffic with 3 SLOs a journey holds about
//! 60 KiB of count rows, 80 KiB of live histograms (two buckets and a spare) and the compressed
//! ones, which grow with the traffic: about 340 KiB in all at 200 roots a minute, 490 KiB at 2,000
//! and 660 KiB at 20,000 (the `window/31_days` bench prints them).

mod dirty;
mod hist;
mod persist;
#[cfg(test)]
mod tests;
mod tiers;

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::sli::RootRule;
pub use crate::sli::{RootSample, Sli, TraceVerdict};
use crate::time::{Timestamp, duration_nanos};
use dirty::Dirty;
use hist::Latencies;
pub use persist::{Changes, CountBucket, LatencyBucket, RestoreError};
use tiers::{COARSE_NANOS, FINE_KEEP_NANOS, FINE_NANOS, floor_to};
pub use tiers::{HISTOGRAM_TIERS, Keep, TIERS, Tier};

/// How many of the newest histogram buckets keep a live (uncompressed) histogram. Two, so that
/// samples straddling a minute boundary both land on the fast path.
pub const LIVE_BUCKETS: usize = 2;

/// Weighted event counts of one SLO over a window; good = `total − bad`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub bad: u64,
}

/// Whether a sample was taken.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Counted,
    /// Older than the retention horizon: nothing was recorded, the caller counts a rejection.
    TooOld,
}

/// A time range ending at the query's `now`. See the module docs for how edges align to buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `d`: buckets starting in `[now − d, now]`.
    Last(Duration),
    /// From an instant (e.g. a calendar month start): buckets starting in `[t, now]`.
    Since(Timestamp),
}

/// Latency percentiles over a window, each within 1% of the exact value (HDR, 2 significant
/// figures); latencies above 1 h count as 1 h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    /// Weighted number of samples.
    pub count: u64,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The root rule of one SLO judged on the root's arrival, and its slot.
#[derive(Clone, Copy, Debug)]
struct SlotRule {
    slot: usize,
    rule: RootRule,
}

/// The SLI windows of one journey. See the module docs. Which sample is bad in which slot is
/// each [`Sli`]'s rule ([`crate::sli`]): its root rule for roots, its close rule for closed traces.
#[derive(Clone)]
pub struct JourneyWindows {
    slis: Box<[Sli]>,
    root_rules: Box<[SlotRule]>,
    /// Slots of the SLOs judged at close (completeness and the trace-health kinds).
    close_slots: Box<[usize]>,
    retention_nanos: i64,
    /// Count bucket starts, ascending, in ns since the epoch. Buckets starting before `fine_from`
    /// are coarse, the others fine.
    starts: Vec<i64>,
    /// Cumulative counts, `slis.len()` per bucket (see the module docs).
    cum: Vec<Counts>,
    /// Cumulative counts of the evicted buckets, per SLO.
    base: Box<[Counts]>,
    /// Whole hour from which buckets are fine; only grows.
    fine_from: i64,
    /// Buckets before this start are evicted and samples before it are `TooOld`; only grows.
    keep_from: i64,
    /// Start and width of the newest bucket, for the fast path (width 0 when there is none).
    newest_start: i64,
    newest_width: u64,
    /// Latest clock given to `advance`.
    clock: i64,
    /// The latency histograms, in buckets of their own tiers.
    lat: Latencies,
    /// Which count buckets changed since the last [`take_changes`](Self::take_changes).
    dirty: Dirty,
}

impl JourneyWindows {
    /// A store for the SLOs of one journey, `slis[i]` being SLO `i`. `retention` should be the
    /// longest SLO period plus a margin (e.g. 32 days); older buckets are dropped by `advance`.
    pub fn new(slis: Vec<Sli>, retention: Duration) -> Self {
        let root_rules = slis
            .iter()
            .enumerate()
            .filter_map(|(slot, sli)| sli.root_rule().map(|rule| SlotRule { slot, rule }))
            .collect();
        let close_slots = slis
            .iter()
            .enumerate()
            .filter(|(_, sli)| sli.on_close())
            .map(|(i, _)| i)
            .collect();
        JourneyWindows {
            base: vec![Counts::default(); slis.len()].into_boxed_slice(),
            slis: slis.into_boxed_slice(),
            root_rules,
            close_slots,
            retention_nanos: duration_nanos(retention),
            starts: Vec::new(),
            cum: Vec::new(),
            fine_from: i64::MIN,
            keep_from: i64::MIN,
            newest_start: i64::MIN,
            newest_width: 0,
            clock: i64::MIN,
            lat: Latencies::new(),
            dirty: Dirty::default(),
        }
    }

    /// Counts one root span in every latency and error SLO and in the latency histogram.
    #[inline]
    pub fn record_root(&mut self, s: &RootSample) -> Recorded {
        let at = s.at.unix_nanos();
        if s.weight == 0 {
            return self.age(at);
        }
        let Some(i) = self.bucket_for(at) else {
            return Recorded::TooOld;
        };
        self.dirty.touch(&self.starts, i);
        let w = u64::from(s.weight);
        let n = self.slis.len();
        let (rules, cum) = (&self.root_rules, &mut self.cum);
        let mut row = i * n;
        while row < cum.len() {
            for r in rules.iter() {
                add(&mut cum[row + r.slot], w, r.rule.bad(s));
            }
            row += n;
        }
        self.lat.record(at, s.latency_nanos / 1_000, w);
        Recorded::Counted
    }

    /// Counts one closed trace in every completeness SLO (and in the trace-health SLOs as a
    /// healthy trace): [`record_trace`](Self::record_trace) with only `complete` known.
    pub fn record_completeness(&mut self, at: Timestamp, complete: bool, weight: u32) -> Recorded {
        let verdict = TraceVerdict {
            complete,
            ..TraceVerdict::default()
        };
        self.record_trace(at, &verdict, weight)
    }

    /// Counts one closed trace in every SLO judged at close, each by its own rule.
    pub fn record_trace(&mut self, at: Timestamp, verdict: &TraceVerdict, weight: u32) -> Recorded {
        let at = at.unix_nanos();
        if weight == 0 {
            return self.age(at);
        }
        let Some(i) = self.bucket_for(at) else {
            return Recorded::TooOld;
        };
        self.dirty.touch(&self.starts, i);
        let n = self.slis.len();
        let mut row = i * n;
        while row < self.cum.len() {
            for &slot in self.close_slots.iter() {
                let bad = self.slis[slot].trace_bad(verdict);
                add(&mut self.cum[row + slot], u64::from(weight), bad);
            }
            row += n;
        }
        Recorded::Counted
    }

    /// Moves the store's clock to `now`: merges the count buckets of every hour that is now wholly
    /// older than the fine tier keeps and the histogram buckets the histogram tiers make coarser,
    /// and evicts buckets past the retention. Call it periodically (e.g. every minute); queries
    /// follow the tiers as of the last call, and only memory grows without it.
    pub fn advance(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now.unix_nanos());
        self.coarsen(floor_to(self.clock.saturating_sub(FINE_KEEP_NANOS), COARSE_NANOS));
        let reference = self.clock.max(self.newest_start);
        self.keep_from = self
            .keep_from
            .max(floor_to(reference.saturating_sub(self.retention_nanos), COARSE_NANOS));
        self.evict();
        self.refresh_newest();
        let n = self.slis.len();
        trim(&mut self.starts, 1);
        trim(&mut self.cum, n);
        self.lat.advance(self.clock, self.keep_from);
    }

    /// Weighted counts of SLO `slo` over `window`; zero for an unknown SLO or an empty window.
    pub fn counts(&self, slo: usize, window: Window, now: Timestamp) -> Counts {
        let n = self.slis.len();
        let Some((lo, hi)) = self.range(window, now).filter(|_| slo < n) else {
            return Counts::default();
        };
        let end = self.cum[(hi - 1) * n + slo];
        let before = if lo == 0 {
            self.base[slo]
        } else {
            self.cum[(lo - 1) * n + slo]
        };
        let total = end.total.saturating_sub(before.total);
        Counts {
            total,
            bad: end.bad.saturating_sub(before.bad).min(total),
        }
    }

    /// The number of SLO slots.
    pub fn slots(&self) -> usize {
        self.slis.len()
    }

    /// Weighted counts of SLO `slo` over the store's whole life (since it was created or
    /// restored), evicted buckets included: it never decreases.
    pub fn lifetime(&self, slo: usize) -> Counts {
        let n = self.slis.len();
        match self.cum.len().checked_sub(n) {
            Some(last) if slo < n => self.cum[last + slo],
            _ => self.base.get(slo).copied().unwrap_or_default(),
        }
    }

    /// The journey's root latencies over `window`, in microseconds (1 µs … 1 h, 2 significant
    /// figures), weighted. The window's edges align to the histogram buckets, which are coarser
    /// than the count buckets (see the module docs).
    pub fn latency_histogram(&self, window: Window, now: Timestamp) -> Histogram<u64> {
        let (from, now) = edges(window, now);
        self.lat.histogram(from, now)
    }

    /// P50/P95/P99/max of root latency over `window` (edges aligned as for
    /// [`latency_histogram`](Self::latency_histogram)); `None` without samples.
    pub fn percentiles(&self, window: Window, now: Timestamp) -> Option<Percentiles> {
        percentiles_of(&self.latency_histogram(window, now))
    }

    /// An empty store laid out like this one: the same SLO slots and retention.
    pub fn empty_like(&self) -> JourneyWindows {
        JourneyWindows::new(
            self.slis.to_vec(),
            Duration::from_nanos(u64::try_from(self.retention_nanos).unwrap_or(0)),
        )
    }

    /// Whether `other` has the same SLO slots (so their counts may be added slot by slot).
    pub fn same_layout(&self, other: &JourneyWindows) -> bool {
        self.slis == other.slis
    }

    /// Bytes held: the struct itself, its vectors' capacity and every histogram (allocator
    /// overhead not included).
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.slis.len() * size_of::<Sli>()
            + self.root_rules.len() * size_of::<SlotRule>()
            + self.close_slots.len() * size_of::<usize>()
            + self.base.len() * size_of::<Counts>()
            + self.starts.capacity() * size_of::<i64>()
            + self.cum.capacity() * size_of::<Counts>()
            + self.lat.heap_bytes()
    }

    /// `Counted` if a sample at `at` would be taken, without recording anything.
    fn age(&self, at: i64) -> Recorded {
        if at < self.keep_from {
            Recorded::TooOld
        } else {
            Recorded::Counted
        }
    }

    /// The bucket for a sample at `at`, created if needed; `None` when too old.
    #[inline]
    fn bucket_for(&mut self, at: i64) -> Option<usize> {
        // Unsigned compare: also false when `at` is before the newest bucket.
        if (at.wrapping_sub(self.newest_start) as u64) < self.newest_width {
            return Some(self.starts.len() - 1);
        }
        self.bucket_for_slow(at)
    }

    #[cold]
    fn bucket_for_slow(&mut self, at: i64) -> Option<usize> {
        if at < self.keep_from {
            return None;
        }
        let start = floor_to(at, if at < self.fine_from { COARSE_NANOS } else { FINE_NANOS });
        let p = self.starts.partition_point(|&s| s < start);
        if self.starts.get(p) == Some(&start) {
            return Some(p);
        }
        self.dirty.settle(&self.starts);
        let n = self.slis.len();
        let before: Vec<Counts> = if p == 0 {
            self.base.to_vec()
        } else {
            self.cum[(p - 1) * n..p * n].to_vec()
        };
        self.cum.splice(p * n..p * n, before);
        self.starts.insert(p, start);
        if p + 1 == self.starts.len() {
            self.refresh_newest();
            self.keep_from = self
                .keep_from
                .max(floor_to(start.saturating_sub(self.retention_nanos), COARSE_NANOS));
        }
        Some(p)
    }

    /// Merges the fine count buckets starting before `fine_from` (a whole hour) into hour buckets.
    fn coarsen(&mut self, fine_from: i64) {
        if fine_from <= self.fine_from {
            return;
        }
        let a = self.starts.partition_point(|&s| s < self.fine_from);
        let b = self.starts.partition_point(|&s| s < fine_from);
        self.fine_from = fine_from;
        if a == b {
            return;
        }
        self.dirty.settle(&self.starts);
        let n = self.slis.len();
        let (mut starts, mut cum) = (Vec::new(), Vec::new());
        let mut i = a;
        while i < b {
            let hour = floor_to(self.starts[i], COARSE_NANOS);
            let j = i + self.starts[i..b].partition_point(|&s| s < hour.saturating_add(COARSE_NANOS));
            self.dirty.mark(hour);
            starts.push(hour);
            cum.extend_from_slice(&self.cum[(j - 1) * n..j * n]);
            i = j;
        }
        self.starts.splice(a..b, starts);
        self.cum.splice(a * n..b * n, cum);
    }

    /// Drops the count buckets starting before `keep_from`, folding their counts into `base`.
    fn evict(&mut self) {
        let k = self.starts.partition_point(|&s| s < self.keep_from);
        if k == 0 {
            return;
        }
        self.dirty.settle(&self.starts);
        let n = self.slis.len();
        self.base.copy_from_slice(&self.cum[(k - 1) * n..k * n]);
        self.starts.drain(..k);
        self.cum.drain(..k * n);
    }

    fn refresh_newest(&mut self) {
        match self.starts.last() {
            Some(&s) => {
                self.newest_start = s;
                self.newest_width = (if s < self.fine_from { COARSE_NANOS } else { FINE_NANOS }) as u64;
            }
            None => self.newest_width = 0,
        }
    }

    /// Indexes `lo..hi` of the count buckets `window` covers at `now`, `None` when there are none.
    fn range(&self, window: Window, now: Timestamp) -> Option<(usize, usize)> {
        let (from, now) = edges(window, now);
        let lo = self.starts.partition_point(|&s| s < from);
        let hi = self.starts.partition_point(|&s| s <= now);
        (lo < hi).then_some((lo, hi))
    }
}

/// P50/P95/P99/max of a histogram, `None` when it is empty.
fn percentiles_of(h: &Histogram<u64>) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    let at = |q| Duration::from_micros(h.value_at_quantile(q));
    Some(Percentiles {
        count: h.len(),
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: Duration::from_micros(h.max()),
    })
}

/// A read-only view of one journey's windows as several instances counted them: its own and
/// those of the other instances sharing the database (each laid out alike: the same SLO
/// slots). Counts add; latency histograms merge, so percentiles are those of all the samples.
/// Without others it answers exactly as the own windows, at the cost of one branch.
#[derive(Clone, Copy, Debug)]
pub struct Merged<'a> {
    own: &'a JourneyWindows,
    others: &'a [JourneyWindows],
}

impl<'a> Merged<'a> {
    /// `others` must be laid out like `own` (checked in debug builds).
    pub fn new(own: &'a JourneyWindows, others: &'a [JourneyWindows]) -> Self {
        debug_assert!(others.iter().all(|o| own.same_layout(o)), "windows laid out alike");
        Merged { own, others }
    }

    /// See [`JourneyWindows::counts`]: the sum over every part.
    pub fn counts(&self, slo: usize, window: Window, now: Timestamp) -> Counts {
        let own = self.own.counts(slo, window, now);
        self.others.iter().fold(own, |c, o| sum(c, o.counts(slo, window, now)))
    }

    /// See [`JourneyWindows::lifetime`]: the sum over every part (the others' since they were
    /// last read).
    pub fn lifetime(&self, slo: usize) -> Counts {
        let own = self.own.lifetime(slo);
        self.others.iter().fold(own, |c, o| sum(c, o.lifetime(slo)))
    }

    pub fn slots(&self) -> usize {
        self.own.slots()
    }

    /// See [`JourneyWindows::latency_histogram`]: every part's samples.
    pub fn latency_histogram(&self, window: Window, now: Timestamp) -> Histogram<u64> {
        let mut h = self.own.latency_histogram(window, now);
        for o in self.others {
            hist::add(&mut h, &o.latency_histogram(window, now));
        }
        h
    }

    /// See [`JourneyWindows::percentiles`]: over every part's samples.
    pub fn percentiles(&self, window: Window, now: Timestamp) -> Option<Percentiles> {
        if self.others.is_empty() {
            return self.own.percentiles(window, now);
        }
        percentiles_of(&self.latency_histogram(window, now))
    }
}

impl<'a> From<&'a JourneyWindows> for Merged<'a> {
    fn from(own: &'a JourneyWindows) -> Self {
        Merged { own, others: &[] }
    }
}

fn sum(a: Counts, b: Counts) -> Counts {
    Counts {
        total: a.total.saturating_add(b.total),
        bad: a.bad.saturating_add(b.bad),
    }
}

/// The instants a window spans at `now`, `(from, now)` in ns since the epoch: it holds the buckets
/// starting in `[from, now]`.
fn edges(window: Window, now: Timestamp) -> (i64, i64) {
    let now = now.unix_nanos();
    let from = match window {
        Window::Last(d) => now.saturating_sub(duration_nanos(d)),
        Window::Since(t) => t.unix_nanos(),
    };
    (from, now)
}

/// Gives back spare capacity beyond a margin, so memory follows the bucket count after coarsening
/// and eviction without a reallocation for every new bucket. `stride` is the entries per bucket.
fn trim<T>(v: &mut Vec<T>, stride: usize) {
    let slack = v.len() / 8 + 64 * stride;
    if v.capacity() > v.len() + 2 * slack {
        v.shrink_to(v.len() + slack);
    }
}

#[inline]
fn add(c: &mut Counts, weight: u64, bad: bool) {
    c.total = c.total.saturating_add(weight);
    c.bad = c.bad.saturating_add(weight * u64::from(bad));
}

impl fmt::Debug for JourneyWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (histogram_buckets, live) = self.lat.buckets();
        f.debug_struct("JourneyWindows")
            .field("slis", &self.slis)
            .field("buckets", &self.starts.len())
            .field("histogram_buckets", &histogram_buckets)
            .field("live_histograms", &live)
            .field("fine_from", &Timestamp::from_unix_nanos(self.fine_from))
            .field("keep_from", &Timestamp::from_unix_nanos(self.keep_from))
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}
