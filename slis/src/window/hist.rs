//! The latency histogram of one bucket: live while the bucket is among the newest, compressed with
//! hdrhistogram's V2 + deflate encoding once it closes.
//!
//! A live `Histogram<u64>` at these bounds holds 3,328 counters (26 KiB); a closed minute of a
//! few hundred samples compresses to a few hundred bytes, so only the newest buckets stay live.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

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
    let h: Histogram<u64> = de
        .deserialize(&mut &bytes[..])
        .expect("bytes this module encoded from memory always decode");
    add(into, &h);
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
