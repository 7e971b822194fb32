//! What a store needs to persist the windows: which buckets changed since the last call
//! ([`JourneyWindows::take_changes`]) with their whole contents, and how to put stored buckets back
//! ([`JourneyWindows::restore_counts`], [`JourneyWindows::restore_latencies`]).
//!
//! A change is the *absolute* content of a bucket, not a delta: writing it twice, or writing an
//! older version first, leaves the same rows, so a store can retry a failed write, merge a failed
//! batch with the next one, and keep the newest version of each bucket. A bucket wider than the
//! finest tier (made by coarsening) replaces every stored row inside its span: the store deletes
//! those rows when it writes it, which keeps the stored buckets coarsened like the ones in memory.
//! Evicted buckets are not reported; the store deletes rows past the retention on its own.
//!
//! Tracking costs the hot path one store: a sample in the newest bucket sets a flag; a sample in
//! any other bucket, a new bucket, a merge or an eviction records an instant (deduplicated, and
//! compacted so it never outgrows the number of buckets by much).

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use super::hist::{BucketHist, add};
use super::{Counts, JourneyWindows, Recorded};
use crate::time::{Timestamp, duration_nanos};

/// A count bucket as stored: its span and, per SLO slot, the counts of that bucket alone (not
/// cumulative).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountBucket {
    pub start: Timestamp,
    pub width: Duration,
    /// `counts[i]` belongs to SLO slot `i` of [`JourneyWindows::new`].
    pub counts: Vec<Counts>,
}

/// A latency histogram bucket as stored: hdrhistogram's V2 encoding (deflated for closed buckets,
/// plain for the newest, which are rewritten often); empty when the bucket holds no sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyBucket {
    pub start: Timestamp,
    pub width: Duration,
    pub encoded: Vec<u8>,
}

/// The buckets that changed since the previous [`JourneyWindows::take_changes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub counts: Vec<CountBucket>,
    pub latencies: Vec<LatencyBucket>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.latencies.is_empty()
    }
}

/// A stored histogram that does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError {
    pub start: Timestamp,
    pub reason: String,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "latency histogram of the bucket at {}: {}", self.start, self.reason)
    }
}

impl std::error::Error for RestoreError {}

/// Indexes of the buckets holding `instants` (sorted), each once, given each bucket's end.
fn holding(instants: &[i64], starts: &[i64], end_of: impl Fn(i64) -> i64) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for &t in instants {
        let Some(i) = starts.partition_point(|&s| s <= t).checked_sub(1) else {
            continue;
        };
        if t < end_of(starts[i]) && out.last() != Some(&i) {
            out.push(i);
        }
    }
    out
}

fn nanos(d: i64) -> Duration {
    Duration::from_nanos(d.max(0) as u64)
}

impl JourneyWindows {
    /// Moves every bucket changed since the previous call into `out` (appending), with its whole
    /// content. See the module docs of `persist.rs` for what a store does with them.
    pub fn take_changes(&mut self, out: &mut Changes) {
        let instants = self.dirty.take(&self.starts);
        for i in holding(&instants, &self.starts, |s| s.saturating_add(self.count_width(s))) {
            out.counts.push(self.count_bucket(i));
        }
        let lat = &mut self.lat;
        let instants = lat.dirty.take(&lat.starts);
        for i in holding(&instants, &lat.starts, |s| lat.end_of(s)) {
            let start = lat.starts[i];
            let encoded = match &lat.hists[i] {
                BucketHist::Packed(bytes) => bytes.to_vec(),
                BucketHist::Live(h) if h.is_empty() => Vec::new(),
                BucketHist::Live(h) => {
                    let mut bytes = Vec::new();
                    // Plain V2 (no deflate): the newest buckets are rewritten every flush.
                    V2Serializer::new()
                        .serialize(h, &mut bytes)
                        .expect("a live histogram has a V2 encoding (counts below i64::MAX)");
                    bytes
                }
            };
            out.latencies.push(LatencyBucket {
                start: Timestamp::from_unix_nanos(start),
                width: nanos(lat.end_of(start) - start),
                encoded,
            });
        }
    }

    /// The same journey with another set of SLO slots (a config reload): slot `k` of the result
    /// is `slis[k]`, holding the history of this store's slot `from[k]`, or nothing when `None`
    /// (a new SLO starts empty). The latency histograms (per journey) and the clock move over
    /// unchanged. Every count bucket is reported changed, since stored blocks carry the slot
    /// layout and must be rewritten in the new one.
    pub fn reslot(&self, slis: Vec<super::Sli>, from: &[Option<usize>], retention: Duration) -> JourneyWindows {
        assert_eq!(slis.len(), from.len(), "one source per new slot");
        let old = self.slis.len();
        let mut w = JourneyWindows::new(slis, retention);
        let pick = |row: &[Counts]| -> Vec<Counts> {
            from.iter()
                .map(|f| f.filter(|&o| o < old).map_or_else(Counts::default, |o| row[o]))
                .collect()
        };
        w.base = pick(&self.base).into_boxed_slice();
        w.cum = self.cum.chunks_exact(old.max(1)).flat_map(pick).collect();
        if old == 0 {
            w.cum = vec![Counts::default(); self.starts.len() * from.len()];
        }
        w.starts = self.starts.clone();
        w.fine_from = self.fine_from;
        w.keep_from = self.keep_from;
        w.newest_start = self.newest_start;
        w.newest_width = self.newest_width;
        w.clock = self.clock;
        w.lat = self.lat.clone();
        w.mark_counts_changed();
        w
    }

    /// Every count bucket starting in `[from, to)`, with its whole content, oldest first: lets a
    /// store write a changed bucket together with its neighbours (e.g. one row per hour or day).
    pub fn count_buckets(&self, from: Timestamp, to: Timestamp) -> Vec<CountBucket> {
        let first = self.starts.partition_point(|&s| s < from.unix_nanos());
        let last = self.starts.partition_point(|&s| s < to.unix_nanos());
        (first..last.max(first)).map(|i| self.count_bucket(i)).collect()
    }

    /// Reports every count bucket as changed at the next [`take_changes`](Self::take_changes),
    /// e.g. after restoring rows a store wants to rewrite in another layout.
    pub fn mark_counts_changed(&mut self) {
        for i in 0..self.starts.len() {
            self.dirty.mark(self.starts[i]);
        }
    }

    /// Count bucket `i` alone (not cumulative).
    fn count_bucket(&self, i: usize) -> CountBucket {
        let n = self.slis.len();
        let end = &self.cum[i * n..(i + 1) * n];
        let counts = (0..n)
            .map(|slot| {
                let before = if i == 0 {
                    self.base[slot]
                } else {
                    self.cum[(i - 1) * n + slot]
                };
                Counts {
                    total: end[slot].total.saturating_sub(before.total),
                    bad: end[slot].bad.saturating_sub(before.bad),
                }
            })
            .collect();
        CountBucket {
            start: Timestamp::from_unix_nanos(self.starts[i]),
            width: nanos(self.count_width(self.starts[i])),
            counts,
        }
    }

    /// Adds a stored count bucket back: its counts go to the bucket holding `start` under the
    /// current tiers, so rows written before a coarsening merge as the memory would have. Call
    /// [`advance`](Self::advance) with the clock first, restore every row (ascending starts are
    /// fastest), then `advance` again. A row landing in a bucket of another span is reported by
    /// the next [`take_changes`](Self::take_changes), so the store coarsens too; slots beyond the
    /// store's SLOs are ignored and a bad count above the total is cut to it.
    pub fn restore_counts(&mut self, start: Timestamp, width: Duration, counts: &[Counts]) -> Recorded {
        let at = start.unix_nanos();
        let Some(i) = self.bucket_for(at) else {
            return Recorded::TooOld;
        };
        if self.starts[i] != at || self.count_width(at) != duration_nanos(width) {
            self.dirty.mark(self.starts[i]);
        }
        let n = self.slis.len();
        let mut row = i * n;
        while row < self.cum.len() {
            for (slot, c) in counts.iter().take(n).enumerate() {
                let cell = &mut self.cum[row + slot];
                cell.total = cell.total.saturating_add(c.total);
                cell.bad = cell.bad.saturating_add(c.bad.min(c.total));
            }
            row += n;
        }
        Recorded::Counted
    }

    /// Adds a stored latency histogram back, like [`restore_counts`](Self::restore_counts). A row
    /// that matches a bucket of the current tiers exactly is kept as it is (no decoding); one that
    /// merges into a coarser bucket is decoded and added. Fails on bytes that are not a V2
    /// histogram of this store's bounds.
    pub fn restore_latencies(
        &mut self,
        start: Timestamp,
        width: Duration,
        encoded: &[u8],
    ) -> Result<Recorded, RestoreError> {
        let at = start.unix_nanos();
        let lat = &mut self.lat;
        if lat.end_of(lat.bucket_start(at)) <= self.keep_from {
            return Ok(Recorded::TooOld);
        }
        let err = |reason: String| RestoreError { start, reason };
        let width = duration_nanos(width);
        if !encoded.is_empty() && lat.fits(at, width) {
            // Kept as stored, undecoded: restoring a month of buckets stays cheap. The header is
            // checked here; a deflated body that still fails to decode is skipped at query time.
            check_header(encoded).map_err(err)?;
            lat.keep_packed(at, encoded);
            return Ok(Recorded::Counted);
        }
        let h: Histogram<u64> = if encoded.is_empty() {
            super::hist::new_histogram()
        } else {
            check_header(encoded).map_err(err)?;
            Deserializer::new()
                .deserialize(&mut &encoded[..])
                .map_err(|e| err(format!("not an HDR V2 histogram: {e:?}")))?
        };
        lat.merge(at, width, &h);
        Ok(Recorded::Counted)
    }

    /// The retention horizon (a whole hour): every bucket ending at or before it has been
    /// evicted, so a store may delete its rows that end by then.
    pub fn retained_from(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.keep_from)
    }

    /// Width of the count bucket starting at `start`, in nanoseconds.
    fn count_width(&self, start: i64) -> i64 {
        if start < self.fine_from {
            super::COARSE_NANOS
        } else {
            super::FINE_NANOS
        }
    }
}

/// V2 cookies: plain and deflated.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// Checks what can be checked without decoding: the cookie, the length, and for the plain
/// encoding this store's bounds (1 µs … 1 h, 2 significant figures).
fn check_header(b: &[u8]) -> Result<(), String> {
    let be32 = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
    };
    let be64 = |i: usize| {
        b.get(i..i + 8)
            .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
    };
    match be32(0) {
        Some(V2_DEFLATE_COOKIE) => match be32(4) {
            Some(len) if len as usize + 8 == b.len() => Ok(()),
            _ => Err(format!(
                "not an HDR V2 histogram: deflated length does not match {} bytes",
                b.len()
            )),
        },
        Some(V2_COOKIE) => {
            let (len, sigfig, low, high) = (be32(4), be32(12), be64(16), be64(24));
            match (len, sigfig, low, high) {
                (Some(len), Some(sigfig), Some(low), Some(high)) if len as usize + 40 == b.len() => {
                    if (low, high, sigfig)
                        == (
                            super::hist::LOWEST_MICROS,
                            super::hist::HIGHEST_MICROS,
                            u32::from(super::hist::SIGNIFICANT_FIGURES),
                        )
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "bounds {low}..{high} µs at {sigfig} significant figures, expected {}..{} at {}",
                            super::hist::LOWEST_MICROS,
                            super::hist::HIGHEST_MICROS,
                            super::hist::SIGNIFICANT_FIGURES
                        ))
                    }
                }
                _ => Err(format!(
                    "not an HDR V2 histogram: length does not match {} bytes",
                    b.len()
                )),
            }
        }
        _ => Err("not an HDR V2 histogram: unknown cookie".to_owned()),
    }
}

impl super::hist::Latencies {
    /// Whether a stored bucket at `at` of `width` is a bucket of the current tiers that does not
    /// exist yet, so it can be kept as stored.
    fn fits(&self, at: i64, width: i64) -> bool {
        let start = self.bucket_start(at);
        start == at && self.end_of(start) - start == width && self.starts.binary_search(&start).is_err()
    }

    /// Inserts a stored bucket as it is (see [`fits`](Self::fits)).
    fn keep_packed(&mut self, at: i64, encoded: &[u8]) {
        let i = self.bucket_for(at);
        self.hists[i] = BucketHist::Packed(encoded.into());
    }

    /// Adds a decoded histogram into the bucket holding `at` (a stored bucket the tiers made
    /// coarser, or one that already exists); the bucket is reported by the next take.
    fn merge(&mut self, at: i64, width: i64, h: &Histogram<u64>) {
        let start = self.bucket_start(at);
        if start != at || self.end_of(start) - start != width || self.starts.binary_search(&start).is_ok() {
            self.dirty.mark(start);
        }
        let i = self.bucket_for(at);
        let mut live = self.open(i);
        add(&mut live, h);
        self.hists[i] = BucketHist::Live(live);
        if i + super::LIVE_BUCKETS < self.starts.len() {
            self.close(i);
        }
    }
}
