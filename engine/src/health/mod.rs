//! Trace-pipeline health (issue 10): the tracing itself, watched per service and per journey —
//! fragmentation and the service boundary that lost the context, span volume with a drop
//! detector, export lag, clock skew, and attribute cardinality. See docs/trace-health.md for
//! each measure's exact definition.
//!
//! Pure state, clock passed in (like the assembler): [`TraceHealth`] lives in the
//! [`Pipeline`](crate::pipeline::Pipeline), under its lock. What it costs on the hot path: per
//! span one service lookup (cached across a run of spans of one service) and one HDR record; per
//! attribute value one hash (in the decoder, outside the lock) and one sketch insert ([`Tags`],
//! grouped by service and key by the decoder). Closed traces are analysed in [`trace::analyze`].
//!
//! Memory is bounded: every map keyed by what clients send — services, attribute keys per
//! service, lost-context boundaries, clock-skew rows — has a cap (`[trace_health]`), one
//! [`OVERFLOW`] row that takes what comes past it, a count of what was folded there
//! ([`Dropped`], per reason) and an idle TTL ([`TraceHealth::forget_idle`], counted in
//! [`Evicted`]). A key's sketch is a `cardinality-estimator` HyperLogLog++ (exact for small
//! sets, 4 KiB at most), two per key (this window and the previous).
//!
//! **Invariant:** a scrape or an API read never renders under the pipeline lock: it takes a
//! [`Snapshot`] (a clone of [`TraceHealth`]: pointer copies, the services, their lag histograms
//! and sketches shared copy-on-write) and computes and encodes every figure after releasing it.

pub mod collector;
pub mod config;
#[cfg(test)]
mod tests;
pub mod trace;

use std::collections::{BTreeMap, HashMap};

/// Maps keyed by service and attribute names: foldhash (names come from our own config and
/// exporters, bounded by the caps; no defence against flooding is needed beyond them).
type Names<V> = HashMap<Arc<str>, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use cardinality_estimator::CardinalityEstimator;
use hdrhistogram::Histogram;
use slis::Timestamp;

pub use config::TraceHealthConfig;
pub use trace::{Boundary, Findings, SkewKind};

/// The largest export lag the histograms hold (longer lags count as this): 1 hour, in µs.
const LAG_MAX_MICROS: u64 = 3_600_000_000;

/// One attribute key of one service in a request, with a 64-bit hash of each value it carried
/// (see `decode::wire::value_hash`; repeats included: a sketch absorbs them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub service: Arc<str>,
    pub key: Arc<str>,
    pub values: Vec<u64>,
}

/// The tags of one request, a service's keys together.
pub type Tags = Vec<Tag>;

/// The name of the row of a full map: the service (and attribute key, and both services of a
/// boundary or skew row) that takes whatever comes past the cap.
pub const OVERFLOW: &str = "__overflow__";

/// What was folded into an [`OVERFLOW`] row, not kept under its own name (the `reason` label of
/// `tracebudget_trace_health_dropped_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Spans and attribute values of services beyond `max_services`.
    pub service_limit: u64,
    /// Attribute values of keys beyond `max_keys_per_service`.
    pub key_limit: u64,
    /// Traces losing the context at a boundary beyond `max_lost_context_rows`.
    pub lost_context_limit: u64,
    /// Skewed spans of a row beyond `max_clock_skew_rows`.
    pub clock_skew_limit: u64,
}

/// Rows forgotten after `idle_ttl` without an update, per map (the `map` label of
/// `tracebudget_trace_health_evicted_total{reason="idle"}`). A service's keys count when it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub services: u64,
    pub attribute_keys: u64,
    pub lost_context: u64,
    pub clock_skew: u64,
}

/// Rows held per map, each [`OVERFLOW`] row included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pub services: usize,
    pub attribute_keys: usize,
    pub lost_context: usize,
    pub clock_skew: usize,
}

/// A counter of a boundary or skew row, with the instant (unix ns) it last grew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counted {
    n: u64,
    seen: i64,
}

/// A value over this window and the previous one: rotated by the clock, never subtracted.
#[derive(Clone, Debug)]
struct Rotating<T> {
    epoch: i64,
    current: T,
    previous: T,
}

impl<T: Default> Rotating<T> {
    fn new(epoch: i64) -> Self {
        Rotating {
            epoch,
            current: T::default(),
            previous: T::default(),
        }
    }

    /// The current window's value at `epoch`, rotating first.
    fn at(&mut self, epoch: i64) -> &mut T {
        if epoch > self.epoch {
            self.previous = if epoch == self.epoch + 1 {
                std::mem::take(&mut self.current)
            } else {
                T::default()
            };
            self.current = T::default();
            self.epoch = epoch;
        }
        &mut self.current
    }

    /// The windows still within reach at `epoch`: (current, previous) as of then.
    fn view(&self, epoch: i64) -> [Option<&T>; 2] {
        match epoch - self.epoch {
            d if d <= 0 => [Some(&self.current), Some(&self.previous)],
            1 => [Some(&self.current), None],
            _ => [None, None],
        }
    }
}

/// A HyperLogLog++ sketch of 64-bit value hashes: the hashes themselves up to 128 distinct
/// values (exact), then 4,096 registers (precision 12: 1.6% standard error, 3 KiB).
#[derive(Clone, Default)]
struct Sketch(CardinalityEstimator<u64>);

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch(~{})", self.0.estimate())
    }
}

/// A service's span volume in buckets of `volume_window` (by receive time).
#[derive(Clone, Debug, Default)]
struct Volume {
    /// (bucket index, spans), ascending, at most baseline + 2 buckets.
    buckets: std::collections::VecDeque<(i64, u64)>,
}

impl Volume {
    fn add(&mut self, bucket: i64, n: u64, keep: usize) {
        match self.buckets.back_mut() {
            Some((b, c)) if *b == bucket => *c += n,
            Some((b, _)) if *b > bucket => {
                // A batch received with an older clock (replay): add it where it belongs.
                if let Some((_, c)) = self.buckets.iter_mut().find(|(b, _)| *b == bucket) {
                    *c += n;
                }
            }
            _ => self.buckets.push_back((bucket, n)),
        }
        while self.buckets.len() > keep {
            self.buckets.pop_front();
        }
    }

    fn get(&self, bucket: i64) -> u64 {
        self.buckets.iter().find(|(b, _)| *b == bucket).map_or(0, |(_, c)| *c)
    }
}

/// The volume verdict of one service at an instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VolumeStatus {
    /// Spans in the newest complete bucket.
    pub newest: u64,
    /// Average spans per bucket over the baseline before it.
    pub baseline: f64,
    /// `newest < volume_drop_ratio × baseline` with `baseline ≥ volume_min_spans`.
    pub drop: bool,
}

/// One service's state; shared with snapshots, so written through `Arc::make_mut` (a copy only
/// while a snapshot still holds it). The histograms and sketches are shared again below it, so
/// that copy is of the small parts.
#[derive(Clone, Debug)]
struct Service {
    spans: u64,
    volume: Volume,
    lag: Arc<Rotating<Option<Histogram<u32>>>>,
    keys: Names<Arc<Key>>,
    /// Closed traces this service took part in, and how many of them were fragmented.
    traces: u64,
    fragmented: u64,
    /// When spans or values of it were last received (unix ns).
    seen: i64,
}

impl Service {
    fn new(epoch: i64, seen: i64) -> Self {
        Service {
            spans: 0,
            volume: Volume::default(),
            lag: Arc::new(Rotating::new(epoch)),
            keys: Names::default(),
            traces: 0,
            fragmented: 0,
            seen,
        }
    }
}

/// One attribute key's sketches, and when values of it were last received (unix ns).
#[derive(Clone, Debug)]
struct Key {
    sketch: Rotating<Sketch>,
    seen: i64,
}

/// Per journey: closed traces judged, fragmented, skewed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JourneyHealth {
    pub traces: u64,
    pub fragmented: u64,
    pub skewed: u64,
}

/// Export lag percentiles of one service over the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lag {
    pub count: u64,
    pub p50_nanos: u64,
    pub p99_nanos: u64,
    pub max_nanos: u64,
}

/// One key's distinct values over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCardinality {
    pub key: Arc<str>,
    pub estimate: u64,
    pub over_limit: bool,
}

/// Everything the API and `/metrics` show of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceReport {
    pub service: Arc<str>,
    pub spans: u64,
    pub traces: u64,
    pub fragmented: u64,
    pub volume: VolumeStatus,
    pub lag: Option<Lag>,
    /// Sorted by estimate, largest first, then key.
    pub keys: Vec<KeyCardinality>,
}

/// [`TraceHealth::shown`]: the figures with their names as they may be shown.
#[derive(Debug, PartialEq)]
pub struct Shown {
    pub services: Vec<ServiceReport>,
    /// (parent service, child service, traces).
    pub boundaries: Vec<(String, String, u64)>,
    /// (parent service, child service, kind, spans).
    pub skews: Vec<(String, String, SkewKind, u64)>,
}

/// What `/metrics` and the API render, taken under the pipeline lock by
/// [`Pipeline::health_snapshot`](crate::pipeline::Pipeline::health_snapshot) and read after
/// releasing it (see the module docs).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub health: TraceHealth,
    /// The journeys' names, in the order of [`TraceHealth::journeys`].
    pub journeys: Vec<String>,
    pub redactor: Arc<slis::privacy::Redactor>,
}

/// See the module docs. `clone` is the snapshot: O(rows) pointer copies and counters.
#[derive(Clone, Debug)]
pub struct TraceHealth {
    config: TraceHealthConfig,
    services: Names<Arc<Service>>,
    /// Per journey index.
    journeys: Vec<JourneyHealth>,
    /// Traces in which each boundary lost the context.
    boundaries: BTreeMap<Boundary, Counted>,
    /// Skewed spans per (parent service, child service, kind).
    skews: BTreeMap<(Arc<str>, Arc<str>, SkewKind), Counted>,
    /// Closed traces judged in all, fragmented and skewed (journey or not).
    pub traces: u64,
    pub fragmented: u64,
    pub skewed: u64,
    dropped: Dropped,
    evicted: Evicted,
    /// [`OVERFLOW`], allocated once.
    overflow: Arc<str>,
}

/// Whether a key (`present` in the map or not) gets its own row in a map of `len` rows holding at
/// most `cap` rows besides its overflow row (`has_overflow`: that row exists).
fn fits(present: bool, len: usize, has_overflow: bool, cap: usize) -> bool {
    present || len < cap + usize::from(has_overflow)
}

impl TraceHealth {
    pub fn new(config: TraceHealthConfig, journeys: usize) -> Self {
        TraceHealth {
            config,
            services: Names::default(),
            journeys: vec![JourneyHealth::default(); journeys],
            boundaries: BTreeMap::new(),
            skews: BTreeMap::new(),
            traces: 0,
            fragmented: 0,
            skewed: 0,
            dropped: Dropped::default(),
            evicted: Evicted::default(),
            overflow: Arc::from(OVERFLOW),
        }
    }

    pub fn config(&self) -> &TraceHealthConfig {
        &self.config
    }

    fn window_epoch(&self, now: Timestamp) -> i64 {
        now.unix_nanos().div_euclid(nanos(self.config.window.0))
    }

    fn volume_bucket(&self, now: Timestamp) -> i64 {
        now.unix_nanos().div_euclid(nanos(self.config.volume_window.0))
    }

    /// The service's state (seen at `seen`), created while under `max_services`; past it the
    /// [`OVERFLOW`] service's, with `observations` counted as dropped.
    fn service(&mut self, name: &Arc<str>, observations: u64, epoch: i64, seen: i64) -> &mut Service {
        let present = self.services.contains_key(name);
        let has_overflow = !present && self.services.contains_key(OVERFLOW);
        let name = if fits(present, self.services.len(), has_overflow, self.config.max_services) {
            name
        } else {
            self.dropped.service_limit += observations;
            &self.overflow
        };
        let s = Arc::make_mut(
            self.services
                .entry(name.clone())
                .or_insert_with(|| Arc::new(Service::new(epoch, seen))),
        );
        s.seen = s.seen.max(seen);
        s
    }

    /// Counts accepted spans received at `now`: `spans` yields (service, end time) and should
    /// keep a service's spans together (a request's resource does), as a run of one service
    /// costs one lookup.
    pub fn observe<'a>(&mut self, spans: impl IntoIterator<Item = (&'a Arc<str>, Timestamp)>, now: Timestamp) {
        let epoch = self.window_epoch(now);
        let bucket = self.volume_bucket(now);
        let keep = self.config.baseline_buckets() as usize + 2;
        let mut run: Option<(&Arc<str>, u64, Vec<u64>)> = None;
        let seen = now.unix_nanos();
        let flush = |h: &mut TraceHealth, (service, n, lags): (&Arc<str>, u64, Vec<u64>)| {
            let s = h.service(service, n, epoch, seen);
            s.spans += n;
            s.volume.add(bucket, n, keep);
            let hist = Arc::make_mut(&mut s.lag).at(epoch).get_or_insert_with(lag_histogram);
            for lag in lags {
                hist.saturating_record(lag.clamp(1, LAG_MAX_MICROS));
            }
        };
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || **a == **b;
        for (service, end) in spans {
            let lag = u64::try_from(now.unix_nanos().saturating_sub(end.unix_nanos())).unwrap_or(0) / 1_000;
            match &mut run {
                Some((s, n, lags)) if same(s, service) => {
                    *n += 1;
                    lags.push(lag);
                }
                _ => {
                    if let Some(done) = run.take() {
                        flush(self, done);
                    }
                    run = Some((service, 1, vec![lag]));
                }
            }
        }
        if let Some(done) = run {
            flush(self, done);
        }
    }

    /// Adds a request's tags to the sketches of the window holding `now`: one service lookup per
    /// run of one service's keys, one key lookup per key.
    pub fn observe_tags(&mut self, tags: &[Tag], now: Timestamp) {
        let epoch = self.window_epoch(now);
        let seen = now.unix_nanos();
        let max_keys = self.config.max_keys_per_service;
        let overflow = self.overflow.clone();
        for group in tags.chunk_by(|a, b| Arc::ptr_eq(&a.service, &b.service)) {
            let values = group.iter().map(|t| t.values.len() as u64).sum();
            let s = self.service(&group[0].service, values, epoch, seen);
            let mut over = 0;
            for t in group {
                let present = s.keys.contains_key(&t.key);
                let has_overflow = !present && s.keys.contains_key(OVERFLOW);
                let key = if fits(present, s.keys.len(), has_overflow, max_keys) {
                    &t.key
                } else {
                    over += t.values.len() as u64;
                    &overflow
                };
                let k = Arc::make_mut(s.keys.entry(key.clone()).or_insert_with(|| {
                    Arc::new(Key {
                        sketch: Rotating::new(epoch),
                        seen,
                    })
                }));
                k.seen = k.seen.max(seen);
                let sketch = &mut k.sketch.at(epoch).0;
                for v in &t.values {
                    sketch.insert(v);
                }
            }
            self.dropped.key_limit += over;
        }
    }

    /// Whether `service` sends spans here (fragmentation's dangling-call rule).
    pub fn reports(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }

    /// Records the findings of one closed trace of `journey` (if any) holding `services`, closed
    /// at `now`. Services past `max_services` count once per trace in the [`OVERFLOW`] service.
    pub fn judged(&mut self, journey: Option<usize>, services: &[Arc<str>], f: &Findings, now: Timestamp) {
        let (fragmented, skewed) = (f.fragmented(), f.skewed());
        self.traces += 1;
        self.fragmented += u64::from(fragmented);
        self.skewed += u64::from(skewed);
        if let Some(j) = journey.and_then(|j| self.journeys.get_mut(j)) {
            j.traces += 1;
            j.fragmented += u64::from(fragmented);
            j.skewed += u64::from(skewed);
        }
        let mut overflowed = false;
        for name in services {
            match self.services.get_mut(name) {
                Some(s) => {
                    let s = Arc::make_mut(s);
                    s.traces += 1;
                    s.fragmented += u64::from(fragmented);
                }
                None => overflowed = true,
            }
        }
        if overflowed && let Some(s) = self.services.get_mut(OVERFLOW) {
            let s = Arc::make_mut(s);
            s.traces += 1;
            s.fragmented += u64::from(fragmented);
        }
        let seen = now.unix_nanos();
        let max = self.config.max_lost_context_rows;
        for b in &f.boundaries {
            let present = self.boundaries.contains_key(b);
            let has_overflow = !present && self.boundaries.contains_key(&self.overflow_boundary());
            let b = if fits(present, self.boundaries.len(), has_overflow, max) {
                b.clone()
            } else {
                self.dropped.lost_context_limit += 1;
                self.overflow_boundary()
            };
            count(self.boundaries.entry(b).or_default(), seen);
        }
        let max = self.config.max_clock_skew_rows;
        for (parent, child, kind) in &f.skews {
            let row = (parent.clone(), child.clone(), *kind);
            let present = self.skews.contains_key(&row);
            // Up to three overflow rows, one per kind, besides the `max`.
            let overflow_rows = if present {
                0
            } else {
                SkewKind::ALL
                    .into_iter()
                    .filter(|k| {
                        self.skews
                            .contains_key(&(self.overflow.clone(), self.overflow.clone(), *k))
                    })
                    .count()
            };
            let row = if present || self.skews.len() < max + overflow_rows {
                row
            } else {
                self.dropped.clock_skew_limit += 1;
                (self.overflow.clone(), self.overflow.clone(), *kind)
            };
            count(self.skews.entry(row).or_default(), seen);
        }
    }

    fn overflow_boundary(&self) -> Boundary {
        Boundary {
            from: self.overflow.clone(),
            to: self.overflow.clone(),
        }
    }

    /// Forgets every service, attribute key, boundary and skew row not updated since
    /// `now - idle_ttl`, counting each in [`Evicted`]. Call it now and then (the pipeline does
    /// once a minute): it walks every row.
    pub fn forget_idle(&mut self, now: Timestamp) {
        let cutoff = now.unix_nanos().saturating_sub(nanos(self.config.idle_ttl.0));
        let evicted = &mut self.evicted;
        self.services.retain(|_, s| {
            if s.seen < cutoff {
                evicted.services += 1;
                evicted.attribute_keys += s.keys.len() as u64;
                return false;
            }
            if s.keys.values().any(|k| k.seen < cutoff) {
                let keys = &mut Arc::make_mut(s).keys;
                let before = keys.len();
                keys.retain(|_, k| k.seen >= cutoff);
                evicted.attribute_keys += (before - keys.len()) as u64;
            }
            true
        });
        let before = self.boundaries.len();
        self.boundaries.retain(|_, c| c.seen >= cutoff);
        evicted.lost_context += (before - self.boundaries.len()) as u64;
        let before = self.skews.len();
        self.skews.retain(|_, c| c.seen >= cutoff);
        evicted.clock_skew += (before - self.skews.len()) as u64;
    }

    /// A config reload renumbered the journeys (`map[old]` = new index): kept journeys keep
    /// their figures.
    pub fn remap_journeys(&mut self, map: &[Option<usize>], journeys: usize) {
        let mut next = vec![JourneyHealth::default(); journeys];
        for (old, h) in self.journeys.iter().enumerate() {
            if let Some(Some(j)) = map.get(old) {
                next[*j] = *h;
            }
        }
        self.journeys = next;
    }

    pub fn journeys(&self) -> &[JourneyHealth] {
        &self.journeys
    }

    pub fn boundaries(&self) -> impl Iterator<Item = (&Boundary, u64)> {
        self.boundaries.iter().map(|(b, c)| (b, c.n))
    }

    pub fn skews(&self) -> impl Iterator<Item = (&(Arc<str>, Arc<str>, SkewKind), u64)> {
        self.skews.iter().map(|(k, c)| (k, c.n))
    }

    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    pub fn evicted(&self) -> Evicted {
        self.evicted
    }

    pub fn rows(&self) -> Rows {
        Rows {
            services: self.services.len(),
            attribute_keys: self.services.values().map(|s| s.keys.len()).sum(),
            lost_context: self.boundaries.len(),
            clock_skew: self.skews.len(),
        }
    }

    /// The volume verdict of one service at `now`.
    fn volume_status(&self, v: &Volume, now: Timestamp) -> VolumeStatus {
        let newest_bucket = self.volume_bucket(now) - 1;
        let n = self.config.baseline_buckets() as i64;
        let newest = v.get(newest_bucket);
        let sum: u64 = (newest_bucket - n..newest_bucket).map(|b| v.get(b)).sum();
        let baseline = sum as f64 / n as f64;
        let drop = baseline >= self.config.volume_min_spans as f64
            && (newest as f64) < self.config.volume_drop_ratio * baseline;
        VolumeStatus { newest, baseline, drop }
    }

    /// Every service, by name, as of `now`.
    pub fn report(&self, now: Timestamp) -> Vec<ServiceReport> {
        let epoch = self.window_epoch(now);
        let mut out: Vec<ServiceReport> = self
            .services
            .iter()
            .map(|(name, s)| {
                let mut merged: Option<Histogram<u32>> = None;
                for h in s.lag.view(epoch).into_iter().flatten().flatten() {
                    match &mut merged {
                        None => merged = Some(h.clone()),
                        Some(m) => {
                            let _ = m.add(h);
                        }
                    }
                }
                let lag = merged.filter(|h| !h.is_empty()).map(|h| Lag {
                    count: h.len(),
                    p50_nanos: h.value_at_quantile(0.5) * 1_000,
                    p99_nanos: h.value_at_quantile(0.99) * 1_000,
                    max_nanos: h.max() * 1_000,
                });
                let mut keys: Vec<KeyCardinality> = s
                    .keys
                    .iter()
                    .filter_map(|(key, k)| {
                        let [cur, prev] = k.sketch.view(epoch);
                        let mut union = cur?.clone();
                        if let Some(p) = prev {
                            union.0.merge(&p.0);
                        }
                        let estimate = union.0.estimate() as u64;
                        (estimate > 0).then(|| KeyCardinality {
                            key: key.clone(),
                            estimate,
                            over_limit: estimate > self.config.cardinality_limit,
                        })
                    })
                    .collect();
                keys.sort_by(|a, b| b.estimate.cmp(&a.estimate).then_with(|| a.key.cmp(&b.key)));
                ServiceReport {
                    service: name.clone(),
                    spans: s.spans,
                    traces: s.traces,
                    fragmented: s.fragmented,
                    volume: self.volume_status(&s.volume, now),
                    lag,
                    keys,
                }
            })
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service));
        out
    }

    /// What the API and `/metrics` show: [`TraceHealth::report`], the boundaries and the skews
    /// with every service name, attribute key and `peer.service` name through `redactor`
    /// (`[privacy]`), kept distinct ([`slis::privacy::DistinctNames`]) so no two rows or series
    /// share a label.
    pub fn shown(&self, now: Timestamp, redactor: &slis::privacy::Redactor) -> Shown {
        let mut names = slis::privacy::DistinctNames::new(redactor);
        let mut keys = slis::privacy::DistinctNames::new(redactor);
        let mut services = self.report(now);
        for s in &mut services {
            s.service = names.get(&s.service).into();
            for k in &mut s.keys {
                k.key = keys.get(&k.key).into();
            }
        }
        // In the order of the names shown (the raw order would hint at a redacted name).
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let boundaries = self
            .boundaries()
            .map(|(b, n)| (names.get(&b.from), names.get(&b.to), n))
            .collect();
        let skews = self
            .skews()
            .map(|((p, c, k), n)| (names.get(p), names.get(c), *k, n))
            .collect();
        Shown {
            services,
            boundaries,
            skews,
        }
    }

    /// Heap bytes of the cardinality sketches (what grows with distinct values).
    pub fn sketch_bytes(&self) -> usize {
        self.services
            .values()
            .flat_map(|s| s.keys.values())
            .map(|k| k.sketch.current.0.size_of() + k.sketch.previous.0.size_of())
            .sum()
    }
}

/// Adds one to a row last updated at `seen`.
fn count(c: &mut Counted, seen: i64) {
    c.n += 1;
    c.seen = c.seen.max(seen);
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX).max(1)
}

/// Export lag in µs, 1 µs to 1 h, 2 significant figures (≤ 1% error), like the latency histograms;
/// 32-bit counts (a bucket saturates at 4.3 billion spans of one service in one window), 13 KiB
/// where 64-bit counts took 26 KiB per service and window.
fn lag_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, LAG_MAX_MICROS, 2).expect("valid histogram bounds")
}
