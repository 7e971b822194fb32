//! The ingest pipeline: clock rules, the root fast path, trace assembly and completeness verdicts,
//! feeding each journey's `slis::window::JourneyWindows`.
//!
//! One `Pipeline` is shared behind a mutex; receivers decode outside the lock and hand over whole
//! batches. The clock is an argument (`now`), so replay can drive it with virtual time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use slis::journey::Journeys;
use slis::slo::{SliKind, Slo};
use slis::window::{Changes, Counts, JourneyWindows, Merged, Recorded, RestoreError, RootSample, TraceVerdict};
use slis::{Span, SpanKind, Timestamp, TraceId};

use crate::assembler::{Arrival, Assembler, Candidate, ClosedTrace, RootRef};
use crate::config::IngestConfig;
use crate::exemplars::{self, Blame, BlameReason, Culprit, Dropped, ExemplarTrace, Insights, Rank};
use crate::health::{TraceHealth, TraceHealthConfig};
use crate::metrics::{EngineMetrics, ReasonLabels, ReceiverLabels, ResultLabels};

/// How long SLI buckets are kept beyond the longest SLO period.
pub const RETENTION_MARGIN: Duration = Duration::from_secs(86_400);

/// The storage key of the window slot that counts every root of a journey (bad = error), after
/// the slots of its SLOs.
pub const ROOTS_SERIES: &str = "roots";

/// The storage key of an SLO's window slot: its name and what it counts, so that changing an
/// SLO's threshold or kind starts a new series instead of reusing counts judged differently.
pub fn series_key(slo: &Slo) -> String {
    format!("{} ({})", slo.name, slo.sli)
}

/// What one flush writes: every journey's changed buckets, and the lifetime counts of every SLO
/// once they are stored (see [`Pipeline::committed`]).
#[derive(Debug, Default)]
pub struct Drained {
    /// (journey index, its changes); journeys without changes are left out.
    pub journeys: Vec<(usize, Changes)>,
    pub totals: Vec<Counts>,
    /// The JetStream partitions consumed here, as of the same instant (none without JetStream).
    pub stream: Option<StreamDrain>,
}

/// Per JetStream partition consumed here: the newest stream sequence ingested and the open
/// traces of that partition, taken under the same lock as the buckets they belong with; the
/// flusher commits all three in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDrain {
    pub stream: String,
    /// (partition, sequence, open-trace snapshot).
    pub partitions: Vec<(u32, u64, Vec<u8>)>,
}

/// The JetStream side of the pipeline: which partitions are consumed here and how far.
#[derive(Debug)]
struct StreamPositions {
    stream: String,
    partitions: u32,
    /// Per partition consumed here, the newest stream sequence ingested (or skipped as poison).
    positions: std::collections::BTreeMap<u32, u64>,
}

/// Where spans came from; the `receiver` label of the engine's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    OtlpGrpc,
    OtlpHttp,
    Zipkin,
    /// A JetStream partition's consumer.
    JetStream,
    /// A recorded file (`tracebudget replay`).
    Replay,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::OtlpGrpc => "otlp_grpc",
            Source::OtlpHttp => "otlp_http",
            Source::Zipkin => "zipkin",
            Source::JetStream => "jetstream",
            Source::Replay => "replay",
        }
    }
}

/// Why a span was refused by the pipeline (`reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    MissingTimestamp,
    Future,
    TooOld,
}

impl Reject {
    const ALL: [Reject; 3] = [Reject::MissingTimestamp, Reject::Future, Reject::TooOld];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MissingTimestamp => "missing_timestamp",
            Reject::Future => "future",
            Reject::TooOld => "too_old",
        }
    }
}

/// The outcome of one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: u64,
    pub rejected: u64,
    /// Why the first refused span was refused, for the OTLP `partial_success.error_message`.
    pub first_rejection: Option<String>,
}

impl Ingested {
    /// The `outcome` label of the request: `ok`, or `partial` when spans were refused.
    pub fn outcome(&self) -> &'static str {
        if self.rejected == 0 { "ok" } else { "partial" }
    }
}

/// The assembler holds `max_buffered_spans`: the whole batch was refused, nothing recorded.
/// Receivers answer 429 / RESOURCE_EXHAUSTED with Retry-After.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backpressure;

/// Clock sanity rules, from `[ingest]`.
#[derive(Clone, Copy, Debug)]
struct ClockRules {
    max_future_skew: Duration,
    max_span_age: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct Pipeline {
    journeys: Journeys,
    /// Per SLO: (journey, slot in that journey's windows).
    slots: Vec<(usize, usize)>,
    slo_names: Vec<String>,
    windows: Vec<JourneyWindows>,
    /// Per journey, the storage key of each window slot: its SLOs' then [`ROOTS_SERIES`].
    series: Vec<Vec<String>>,
    /// Per SLO, its lifetime counts as of the last stored flush.
    committed: Vec<Counts>,
    assembler: Assembler,
    rules: ClockRules,
    max_buffered_spans: usize,
    metrics: Arc<EngineMetrics>,
    closed: Vec<ClosedTrace>,
    last_advance_minute: i64,
    /// Per SLO, what it counts; per journey, its SLOs' indices.
    kinds: Vec<SliKind>,
    journey_slos: Vec<Vec<usize>>,
    /// Exemplars and contributors per SLO (in memory only).
    insights: Insights,
    evicted_roots: Vec<RootRef>,
    /// The newest `now` of `ingest` or `tick`.
    last_now: Timestamp,
    /// How long the windows keep buckets: the longest SLO period and a margin.
    retention: Duration,
    /// Per journey, what each other instance sharing the database counted, laid out like
    /// `windows` (see [`set_others`](Self::set_others)); empty on a single instance.
    others: Vec<Vec<JourneyWindows>>,
    stream: Option<StreamPositions>,
    /// Trace-pipeline health (issue 10): measured on every accepted span and closed trace.
    health: TraceHealth,
    health_scratch: crate::health::trace::Scratch,
    /// `[privacy]` rules, for the names a JetStream snapshot stores.
    redactor: Arc<slis::privacy::Redactor>,
}

/// Where every SLO counts, derived from the config's journeys and SLOs.
struct Layout {
    /// Per journey, what each window slot counts: its SLOs', then all roots (bad = error).
    per_journey: Vec<Vec<slis::window::Sli>>,
    /// Per journey, the storage key of each slot.
    series: Vec<Vec<String>>,
    /// Per SLO, (journey, slot).
    slots: Vec<(usize, usize)>,
    journey_slos: Vec<Vec<usize>>,
    ranks: Vec<Rank>,
    retention: Duration,
}

impl Layout {
    fn of(journeys: usize, slos: &[Slo]) -> Layout {
        let retention = slos.iter().map(|s| s.period.max_span()).max().unwrap_or(Duration::ZERO) + RETENTION_MARGIN;
        let mut per_journey: Vec<Vec<slis::window::Sli>> = vec![Vec::new(); journeys];
        let mut series: Vec<Vec<String>> = vec![Vec::new(); journeys];
        let mut journey_slos = vec![Vec::new(); journeys];
        let slots = slos
            .iter()
            .enumerate()
            .map(|(i, s)| {
                per_journey[s.journey].push(s.sli.window_sli());
                series[s.journey].push(series_key(s));
                journey_slos[s.journey].push(i);
                (s.journey, per_journey[s.journey].len() - 1)
            })
            .collect();
        // The last slot of every journey counts all its roots (bad = error).
        for (slis, keys) in per_journey.iter_mut().zip(&mut series) {
            slis.push(slis::window::Sli::Error);
            keys.push(ROOTS_SERIES.to_owned());
        }
        let ranks = slos
            .iter()
            .map(|s| match s.sli {
                SliKind::Latency { .. } => Rank::Slowest,
                SliKind::ExportLag { .. } => Rank::Slowest,
                SliKind::Error | SliKind::Completeness | SliKind::Fragmentation | SliKind::ClockSkew => {
                    Rank::ErrorsThenSlowest
                }
            })
            .collect();
        Layout {
            per_journey,
            series,
            slots,
            journey_slos,
            ranks,
            retention,
        }
    }
}

/// What [`Pipeline::reconfigure`] changed; series are written `journey/key`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub journeys_added: Vec<String>,
    pub journeys_removed: Vec<String>,
    /// Kept journeys whose slot layout changed: their stored blocks are rewritten at the next flush.
    pub reslotted_journeys: Vec<String>,
    pub new_series: Vec<String>,
    pub dropped_series: Vec<String>,
}

impl Pipeline {
    pub fn new(journeys: Journeys, slos: &[Slo], ingest: &IngestConfig, metrics: Arc<EngineMetrics>) -> Self {
        let layout = Layout::of(journeys.0.len(), slos);
        let windows = layout
            .per_journey
            .iter()
            .map(|slis| JourneyWindows::new(slis.clone(), layout.retention))
            .collect();
        let insights = Insights::new(layout.ranks.iter().copied(), exemplars::HORIZON);
        Pipeline {
            journeys,
            slots: layout.slots,
            slo_names: slos.iter().map(|s| s.name.clone()).collect(),
            windows,
            series: layout.series,
            committed: vec![Counts::default(); slos.len()],
            // Remember as many closed trace ids as a quarter of the span budget, to spot late spans.
            assembler: Assembler::new(ingest.trace_idle.0, (ingest.max_buffered_spans / 4).max(1_024)),
            rules: ClockRules {
                max_future_skew: ingest.max_future_skew.0,
                max_span_age: ingest.max_span_age.0,
            },
            max_buffered_spans: ingest.max_buffered_spans,
            metrics,
            closed: Vec::new(),
            last_advance_minute: i64::MIN,
            kinds: slos.iter().map(|s| s.sli).collect(),
            journey_slos: layout.journey_slos,
            insights,
            evicted_roots: Vec::new(),
            last_now: Timestamp::EPOCH,
            retention: layout.retention,
            others: Vec::new(),
            stream: None,
            health: TraceHealth::new(TraceHealthConfig::default(), layout.per_journey.len()),
            health_scratch: Default::default(),
            redactor: Arc::default(),
        }
    }

    /// `[privacy]`: the rules applied to the names a snapshot stores, and whether `peer.service`
    /// values are kept (on the attribute allow-list).
    pub fn set_privacy(&mut self, redactor: Arc<slis::privacy::Redactor>, keep_peer_service: bool) {
        self.redactor = redactor;
        self.assembler.keep_peer_service = keep_peer_service;
    }

    /// The redaction rules in force (`[privacy]`).
    pub fn redactor(&self) -> &Arc<slis::privacy::Redactor> {
        &self.redactor
    }

    /// Watches the tracing pipeline with these settings (`[trace_health]`), starting afresh.
    pub fn set_trace_health(&mut self, config: TraceHealthConfig) {
        self.health = TraceHealth::new(config, self.journeys.0.len());
    }

    /// The trace-pipeline health figures.
    pub fn health(&self) -> &TraceHealth {
        &self.health
    }

    /// What `/metrics` and the API render of trace health: O(rows) pointer copies, to be read
    /// after releasing the lock (a scrape never renders under it).
    pub fn health_snapshot(&self) -> crate::health::Snapshot {
        crate::health::Snapshot {
            health: self.health.clone(),
            journeys: self.journeys.0.iter().map(|j| j.name.clone()).collect(),
            redactor: self.redactor.clone(),
        }
    }

    /// Adds a request's distinct attribute values to the cardinality sketches (call it after an
    /// `ingest` of the same request that was not refused).
    pub fn ingest_tags(&mut self, tags: &[crate::health::Tag], now: Timestamp) {
        if !tags.is_empty() {
            self.health.observe_tags(tags, now);
        }
    }

    /// Consumes the JetStream stream `stream` of `partitions` partitions: each flush from now on
    /// carries the positions and open traces of the partitions opened with
    /// [`open_partition`](Self::open_partition).
    pub fn enable_stream(&mut self, stream: &str, partitions: u32) {
        self.stream = Some(StreamPositions {
            stream: stream.to_owned(),
            partitions: partitions.max(1),
            positions: Default::default(),
        });
    }

    /// Starts consuming partition `p` from its stored checkpoint `seq` (0: from the start), with
    /// the open traces stored with it (their idle time starts again at `now`).
    pub fn open_partition(
        &mut self,
        p: u32,
        seq: u64,
        snapshot: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<crate::assembler::SnapshotRestored, String> {
        let names: Vec<String> = self.journeys.0.iter().map(|j| j.name.clone()).collect();
        let stream = self.stream.as_mut().ok_or("the pipeline consumes no stream")?;
        stream.positions.insert(p, seq);
        let restored = match snapshot {
            Some(data) => self.assembler.restore(data, &names, now)?,
            None => Default::default(),
        };
        self.update_gauges();
        Ok(restored)
    }

    /// Stops consuming partition `p` (after a flush that stored it): its position and open
    /// traces are forgotten without a verdict, for the instance that takes it over.
    pub fn release_partition(&mut self, p: u32) -> usize {
        let Some(stream) = self.stream.as_mut() else {
            return 0;
        };
        stream.positions.remove(&p);
        let n = stream.partitions;
        let forgotten = self.assembler.forget(|id| crate::jetstream::partition_of(id, n) == p);
        self.update_gauges();
        forgotten
    }

    /// The newest sequence of partition `p` ingested here, if it is consumed here.
    pub fn position(&self, p: u32) -> Option<u64> {
        self.stream.as_ref()?.positions.get(&p).copied()
    }

    /// Records that the message `seq` of partition `p` was ingested (or skipped as undecodable):
    /// call it under the same lock hold as the ingest, so a drain sees both or neither.
    pub fn advance_position(&mut self, p: u32, seq: u64) {
        if let Some(pos) = self.stream.as_mut().and_then(|s| s.positions.get_mut(&p)) {
            *pos = (*pos).max(seq);
        }
    }

    fn drain_stream(&self) -> Option<StreamDrain> {
        let stream = self.stream.as_ref()?;
        let names: Vec<String> = self.journeys.0.iter().map(|j| j.name.clone()).collect();
        let parts: Vec<u32> = stream.positions.keys().copied().collect();
        let mut writers: Vec<crate::assembler::SnapshotWriter> = parts
            .iter()
            .map(|_| crate::assembler::SnapshotWriter::new(&names).redacting(self.redactor.clone()))
            .collect();
        let n = stream.partitions;
        self.assembler.snapshot(
            |id| parts.binary_search(&crate::jetstream::partition_of(id, n)).ok(),
            &mut writers,
        );
        Some(StreamDrain {
            stream: stream.stream.clone(),
            partitions: parts
                .iter()
                .zip(writers)
                .map(|(&p, w)| (p, stream.positions[&p], w.data))
                .collect(),
        })
    }

    /// Applies a reloaded config's journeys and SLOs without losing what was counted: a journey
    /// is known by its name and an SLO's history by its storage key ([`series_key`]: name and
    /// SLI), so a kept SLO keeps its windows, exemplars and blame, a changed or new one starts
    /// empty, a removed one is forgotten (its stored rows age out). Open traces stay open and
    /// close under the new journeys (see [`Assembler::remap_journeys`]). The clock rules and
    /// limits of `[ingest]` are not reloaded.
    pub fn reconfigure(&mut self, journeys: Journeys, slos: &[Slo]) -> Reconfigured {
        let layout = Layout::of(journeys.0.len(), slos);
        let mut out = Reconfigured::default();
        let old_journey: HashMap<&str, usize> = self
            .journeys
            .0
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();
        // Per old SLO, (journey name, storage key) → its index.
        let old_slo: HashMap<(&str, &str), usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, &(j, slot))| ((self.journeys.0[j].name.as_str(), self.series[j][slot].as_str()), i))
            .collect();
        let mut journey_map = vec![None; self.journeys.0.len()];
        let mut old_windows: Vec<Option<JourneyWindows>> =
            std::mem::take(&mut self.windows).into_iter().map(Some).collect();
        let mut windows = Vec::with_capacity(journeys.0.len());
        for (j, journey) in journeys.0.iter().enumerate() {
            let slis = layout.per_journey[j].clone();
            let Some(&o) = old_journey.get(journey.name.as_str()) else {
                out.journeys_added.push(journey.name.clone());
                let mut w = JourneyWindows::new(slis, layout.retention);
                w.advance(self.last_now);
                windows.push(w);
                continue;
            };
            journey_map[o] = Some(j);
            let from: Vec<Option<usize>> = layout.series[j]
                .iter()
                .map(|key| self.series[o].iter().position(|k| k == key))
                .collect();
            for (key, f) in layout.series[j].iter().zip(&from) {
                if f.is_none() {
                    out.new_series.push(format!("{}/{key}", journey.name));
                }
            }
            for key in &self.series[o] {
                if !layout.series[j].contains(key) {
                    out.dropped_series.push(format!("{}/{key}", journey.name));
                }
            }
            let w = old_windows[o].take().expect("journey names are unique");
            let same = from.len() == self.series[o].len() && from.iter().enumerate().all(|(k, f)| *f == Some(k));
            if same && layout.retention == self.retention {
                windows.push(w);
            } else {
                out.reslotted_journeys.push(journey.name.clone());
                windows.push(w.reslot(slis, &from, layout.retention));
            }
        }
        for (o, j) in self.journeys.0.iter().enumerate() {
            if journey_map[o].is_none() {
                out.journeys_removed.push(j.name.clone());
                for key in &self.series[o] {
                    out.dropped_series.push(format!("{}/{key}", j.name));
                }
            }
        }
        let slo_from: Vec<Option<usize>> = layout
            .slots
            .iter()
            .map(|&(j, slot)| {
                old_slo
                    .get(&(journeys.0[j].name.as_str(), layout.series[j][slot].as_str()))
                    .copied()
            })
            .collect();
        self.committed = slo_from
            .iter()
            .map(|f| f.map_or_else(Counts::default, |o| self.committed[o]))
            .collect();
        self.insights.remap(&slo_from, &layout.ranks);
        self.assembler.remap_journeys(&journey_map);
        self.health.remap_journeys(&journey_map, journeys.0.len());
        self.windows = windows;
        self.journeys = journeys;
        self.slots = layout.slots;
        self.slo_names = slos.iter().map(|s| s.name.clone()).collect();
        self.series = layout.series;
        self.kinds = slos.iter().map(|s| s.sli).collect();
        self.journey_slos = layout.journey_slos;
        self.retention = layout.retention;
        // Laid out for the old config: the next read of the other instances lays them out anew.
        self.others.clear();
        self.update_gauges();
        out
    }

    /// Takes one decoded batch at `now` (the receive time).
    pub fn ingest(&mut self, source: Source, spans: Vec<Span>, now: Timestamp) -> Result<Ingested, Backpressure> {
        let receiver = source.as_str();
        let n = spans.len() as u64;
        self.last_now = self.last_now.max(now);
        self.metrics
            .spans_received
            .get_or_create(&ReceiverLabels { receiver })
            .inc_by(n);
        if self.assembler.buffered_spans() >= self.max_buffered_spans {
            self.metrics.reject(receiver, "backpressure", n);
            return Err(Backpressure);
        }
        let mut out = Ingested::default();
        let mut rejected = [0u64; Reject::ALL.len()];
        let (mut clamped, mut late, mut duplicate, mut too_old_samples) = (0u64, 0u64, 0u64, 0u64);
        let newest = now + self.rules.max_future_skew;
        let oldest = now - self.rules.max_span_age;
        self.health.observe(
            spans
                .iter()
                .filter(|s| s.start.unix_nanos() > 0 && s.end.unix_nanos() > 0 && s.end <= newest && s.end >= oldest)
                .map(|s| (&s.service, s.end)),
            now,
        );
        for span in spans {
            let verdict = if span.start.unix_nanos() <= 0 || span.end.unix_nanos() <= 0 {
                Err(Reject::MissingTimestamp)
            } else if span.end > newest {
                Err(Reject::Future)
            } else if span.end < oldest {
                Err(Reject::TooOld)
            } else {
                Ok(())
            };
            if let Err(reason) = verdict {
                rejected[reason as usize] += 1;
                out.rejected += 1;
                if out.first_rejection.is_none() {
                    out.first_rejection = Some(format!(
                        "span {} of trace {}: {} (end {}, now {})",
                        span.span_id,
                        span.trace_id,
                        reason.as_str(),
                        span.end,
                        now
                    ));
                }
                continue;
            }
            if span.end < span.start {
                clamped += 1; // negative duration: kept, with latency 0
            }
            out.accepted += 1;

            let root = span.parent_span_id.is_none().then(|| {
                let journey = self.journeys.match_root(&span);
                let sample = match journey {
                    Some(j) => self.sample(j, &span),
                    None => RootSample {
                        at: span.end,
                        latency_nanos: span.duration_nanos(),
                        error: false,
                        weight: span.weight,
                    },
                };
                RootRef { journey, sample }
            });
            let candidate = match (span.parent_span_id, span.kind) {
                (Some(parent), SpanKind::Server | SpanKind::Consumer) => {
                    self.journeys.match_root(&span).map(|journey| Candidate {
                        journey,
                        parent,
                        sample: self.sample(journey, &span),
                    })
                }
                _ => None,
            };
            match self.assembler.add(&span, now, root, candidate) {
                Arrival::Added => {}
                Arrival::Duplicate => {
                    duplicate += 1;
                    continue;
                }
                // A late root of a trace that closed without one was never counted: count it now.
                // One of a trace that had its root is a repeat (a retry after close): never twice.
                // Its trace is gone, so nothing can be blamed for it.
                Arrival::Late { had_root } => {
                    late += 1;
                    if had_root {
                        continue;
                    }
                    if let Some(RootRef {
                        journey: Some(j),
                        sample,
                    }) = root
                    {
                        self.unblamed(j, &sample, "late_root");
                    }
                }
            }
            if let Some(RootRef {
                journey: Some(j),
                sample,
            }) = root
            {
                too_old_samples += self.record_root(j, &sample);
                self.offer_root(j, span.trace_id, &sample, now);
            }
        }

        let m = &self.metrics;
        m.spans_accepted
            .get_or_create(&ReceiverLabels { receiver })
            .inc_by(out.accepted);
        for reason in Reject::ALL {
            m.reject(receiver, reason.as_str(), rejected[reason as usize]);
        }
        if clamped > 0 {
            m.spans_clamped
                .get_or_create(&ReasonLabels {
                    reason: "negative_duration",
                })
                .inc_by(clamped);
        }
        m.late_spans.inc_by(late);
        m.duplicate_spans.inc_by(duplicate);
        if too_old_samples > 0 {
            m.samples_dropped
                .get_or_create(&ReasonLabels {
                    reason: "outside_retention",
                })
                .inc_by(too_old_samples);
        }
        let mut roots = std::mem::take(&mut self.evicted_roots);
        let evicted = self.assembler.evict_over(self.max_buffered_spans, &mut roots);
        self.metrics.traces_evicted.inc_by(evicted as u64);
        for r in roots.drain(..) {
            if let Some(j) = r.journey {
                self.unblamed(j, &r.sample, "trace_evicted");
            }
        }
        self.evicted_roots = roots;
        self.update_gauges();
        Ok(out)
    }

    fn sample(&self, journey: usize, span: &Span) -> RootSample {
        RootSample {
            at: span.end,
            latency_nanos: span.duration_nanos(),
            error: self.journeys.0[journey].is_error(span),
            weight: span.weight,
        }
    }

    /// Whether a root makes SLO `slo` bad at once (completeness waits for the close).
    fn root_bad(&self, slo: usize, s: &RootSample) -> bool {
        match self.kinds[slo] {
            SliKind::Latency { threshold } => u128::from(s.latency_nanos) > threshold.as_nanos(),
            SliKind::Error => s.error,
            SliKind::Completeness | SliKind::Fragmentation | SliKind::ExportLag { .. } | SliKind::ClockSkew => false,
        }
    }

    /// Offers a recorded root as an exemplar to each latency/error SLO of its journey it makes bad.
    fn offer_root(&mut self, journey: usize, trace_id: TraceId, s: &RootSample, now: Timestamp) {
        for k in 0..self.journey_slos[journey].len() {
            let slo = self.journey_slos[journey][k];
            if self.root_bad(slo, s) {
                self.offer(slo, trace_id, s, now);
            }
        }
    }

    fn offer(&mut self, slo: usize, trace_id: TraceId, s: &RootSample, now: Timestamp) {
        let duration = Duration::from_nanos(s.latency_nanos);
        let e = ExemplarTrace {
            trace_id,
            start: s.at - duration,
            duration,
            error: s.error,
            weight: s.weight,
        };
        if let Err(reason) = self.insights.offer(slo, s.at, e, now) {
            self.drop_exemplar(reason);
        }
    }

    fn drop_exemplar(&self, reason: Dropped) {
        self.metrics
            .exemplars_dropped
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    fn blame(&mut self, slo: usize, s: &RootSample, c: &Culprit, now: Timestamp) {
        if s.weight == 0 {
            return;
        }
        if let Err(reason) = self.insights.blame(slo, s.at, c, u64::from(s.weight), now) {
            self.drop_blame(reason.as_str(), u64::from(s.weight));
        }
    }

    fn drop_blame(&self, reason: &'static str, weight: u64) {
        if weight > 0 {
            self.metrics
                .blame_dropped
                .get_or_create(&ReasonLabels { reason })
                .inc_by(weight);
        }
    }

    /// A root recorded with no trace left to blame: its bad events are counted as unblamed.
    fn unblamed(&self, journey: usize, s: &RootSample, reason: &'static str) {
        let bad = self.journey_slos[journey]
            .iter()
            .filter(|&&slo| self.root_bad(slo, s))
            .count();
        self.drop_blame(reason, bad as u64 * u64::from(s.weight));
    }

    /// Records a root sample; returns 1 when the window refused it as older than its retention.
    fn record_root(&mut self, journey: usize, sample: &RootSample) -> u64 {
        match self.windows[journey].record_root(sample) {
            Recorded::Counted => 0,
            Recorded::TooOld => 1,
        }
    }

    /// Closes idle traces and judges their completeness; advances the windows once a minute.
    pub fn tick(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let mut closed = std::mem::take(&mut self.closed);
        self.assembler.close_idle(now, &mut closed);
        self.judge(&mut closed, now);
        self.closed = closed;
        let minute = now.unix_secs().div_euclid(60);
        if minute != self.last_advance_minute {
            self.last_advance_minute = minute;
            for w in &mut self.windows {
                w.advance(now);
            }
            let full = self.insights.advance(now);
            self.drop_blame(Dropped::BucketFull.as_str(), full);
            self.health.forget_idle(now);
        }
        self.update_gauges();
    }

    /// Whether the assembler holds `max_buffered_spans`: the next batch would be refused.
    pub fn is_full(&self) -> bool {
        self.assembler.buffered_spans() >= self.max_buffered_spans
    }

    /// Shutdown with a stream: closes every open trace but those of the partitions consumed here,
    /// which stay open in their partition's snapshot and are restored at the next start.
    pub fn close_all_but_consumed(&mut self) {
        let Some(stream) = &self.stream else {
            return self.close_all();
        };
        let n = stream.partitions;
        let parts: Vec<u32> = stream.positions.keys().copied().collect();
        let mut closed = std::mem::take(&mut self.closed);
        self.assembler.close_unless(
            |id| parts.binary_search(&crate::jetstream::partition_of(id, n)).is_ok(),
            &mut closed,
        );
        self.judge(&mut closed, self.last_now);
        self.closed = closed;
        self.update_gauges();
    }

    /// Closes every open trace at once (shutdown, end of a replay), as of the last `now` seen.
    pub fn close_all(&mut self) {
        let mut closed = std::mem::take(&mut self.closed);
        self.assembler.close_all(&mut closed);
        self.judge(&mut closed, self.last_now);
        self.closed = closed;
        self.update_gauges();
    }

    fn judge(&mut self, closed: &mut Vec<ClosedTrace>, now: Timestamp) {
        let mut results = [0u64; 4]; // complete, incomplete, no_journey, no_root
        let mut too_old = 0;
        let tolerance = i64::try_from(self.health.config().skew_tolerance.0.as_nanos()).unwrap_or(i64::MAX);
        for t in closed.drain(..) {
            let health = &self.health;
            let findings = crate::health::trace::analyze_with(
                &t.nodes,
                &t.peers,
                tolerance,
                |s| health.reports(s),
                &mut self.health_scratch,
            );
            let judged = match (t.root, t.remote_root) {
                (Some(RootRef { journey: Some(j), .. }), _) | (None, Some(Candidate { journey: j, .. })) => Some(j),
                _ => None,
            };
            self.health.judged(judged, &t.services, &findings, now);
            let (journey, sample, roots, orphans, root) = match (t.root, t.remote_root) {
                (
                    Some(RootRef {
                        journey: Some(j),
                        sample,
                    }),
                    _,
                ) => {
                    let root = t.nodes.iter().position(|n| n.parent.is_none());
                    (j, sample, t.roots, t.orphans, root)
                }
                (Some(RootRef { journey: None, .. }), _) => {
                    results[2] += 1;
                    continue;
                }
                (None, Some(c)) => {
                    // The root's parent lies outside the trace: it is recorded now, as the root.
                    too_old += self.record_root(c.journey, &c.sample);
                    self.offer_root(c.journey, t.trace_id, &c.sample, now);
                    let root = t.nodes.iter().position(|n| n.parent == Some(c.parent));
                    (c.journey, c.sample, 1, 0, root)
                }
                (None, None) => {
                    results[3] += 1;
                    continue;
                }
            };
            let expected = &self.journeys.0[journey].expected_services;
            let complete = roots == 1 && orphans == 0 && expected.iter().all(|e| t.services.iter().any(|s| s == e));
            results[usize::from(!complete)] += 1;
            let verdict = TraceVerdict {
                complete,
                fragmented: findings.fragmented(),
                skewed: findings.skewed(),
                max_lag_nanos: t.max_lag_nanos,
            };
            if self.windows[journey].record_trace(sample.at, &verdict, sample.weight) == Recorded::TooOld {
                too_old += 1;
            }
            self.blame_trace(journey, &t, root, &sample, &verdict, &findings, now);
        }
        let m = &self.metrics;
        for (result, n) in ["complete", "incomplete", "no_journey", "no_root"]
            .into_iter()
            .zip(results)
        {
            if n > 0 {
                m.traces_closed.get_or_create(&ResultLabels { result }).inc_by(n);
            }
        }
        if too_old > 0 {
            m.samples_dropped
                .get_or_create(&ReasonLabels {
                    reason: "outside_retention",
                })
                .inc_by(too_old);
        }
    }

    /// Blames the spans of a closed trace for each SLO of its journey it made bad, and offers it
    /// as an exemplar of the completeness SLOs it failed (latency/error ones had it on arrival).
    #[allow(clippy::too_many_arguments)]
    fn blame_trace(
        &mut self,
        journey: usize,
        t: &ClosedTrace,
        root: Option<usize>,
        s: &RootSample,
        verdict: &TraceVerdict,
        findings: &crate::health::Findings,
        now: Timestamp,
    ) {
        let complete = verdict.complete;
        let mut culprits = Vec::new();
        for k in 0..self.journey_slos[journey].len() {
            let slo = self.journey_slos[journey][k];
            culprits.clear();
            match (self.kinds[slo], root) {
                (SliKind::Completeness, _) if !complete => {
                    self.offer(slo, t.trace_id, s, now);
                    let expected = &self.journeys.0[journey].expected_services;
                    exemplars::completeness_culprits(&t.nodes, root, &t.services, expected, &mut culprits);
                }
                (SliKind::Error, Some(r)) if s.error => {
                    let origin = exemplars::error_origin(&t.nodes, r);
                    culprits.push(exemplars::culprit(&t.nodes[origin], BlameReason::ErrorOrigin));
                }
                (SliKind::Latency { .. }, Some(r)) if self.root_bad(slo, s) => {
                    let slowest = exemplars::critical_path(&t.nodes, r);
                    culprits.push(exemplars::culprit(&t.nodes[slowest], BlameReason::SlowestChild));
                }
                (kind @ (SliKind::Fragmentation | SliKind::ExportLag { .. } | SliKind::ClockSkew), _)
                    if kind.window_sli().trace_bad(verdict) =>
                {
                    self.offer(slo, t.trace_id, s, now);
                    exemplars::health_culprits(&t.nodes, kind, findings, t.max_lag_node, &mut culprits);
                }
                _ => continue,
            }
            for c in &culprits {
                self.blame(slo, s, c, now);
            }
        }
    }

    /// The `limit` worst bad traces of SLO `slo` (an index into the config's SLOs) whose roots ended
    /// in time buckets reaching past `since`, worst first: errors then slowest (latency SLOs:
    /// slowest). In memory only; see [`crate::exemplars`].
    pub fn exemplars(&self, slo: usize, since: Timestamp, limit: usize) -> Vec<ExemplarTrace> {
        self.insights.exemplars(slo, since, limit)
    }

    /// The `limit` services/operations blamed for most of SLO `slo`'s weighted bad events in time
    /// buckets reaching past `since`, largest first. In memory only; see [`crate::exemplars`].
    pub fn contributors(&self, slo: usize, since: Timestamp, limit: usize) -> Vec<Blame> {
        self.insights.contributors(slo, since, limit)
    }

    fn update_gauges(&self) {
        self.metrics.buffered_spans.set(self.assembler.buffered_spans() as i64);
        self.metrics.open_traces.set(self.assembler.open_traces() as i64);
    }

    pub fn buffered_spans(&self) -> usize {
        self.assembler.buffered_spans()
    }

    pub fn journeys(&self) -> &Journeys {
        &self.journeys
    }

    /// Weighted roots (total) and error roots (bad) per journey, over the windows' lifetime.
    pub fn root_counts(&self) -> impl Iterator<Item = Counts> + '_ {
        self.windows.iter().map(|w| w.lifetime(w.slots() - 1))
    }

    /// Per SLO (in config order): its name, its journey's index, and its weighted counts over the
    /// windows' lifetime (since start, or since the history restored at start).
    pub fn slo_totals(&self) -> impl Iterator<Item = (&str, usize, Counts)> + '_ {
        self.slots
            .iter()
            .zip(&self.slo_names)
            .map(move |(&(journey, slot), name)| (name.as_str(), journey, self.windows[journey].lifetime(slot)))
    }

    /// The window slot of SLO `slo` (an index into the config's SLOs) in its journey's windows.
    pub fn slot(&self, slo: usize) -> usize {
        self.slots[slo].1
    }

    /// Per SLO (in config order): what it counted that is not stored yet.
    pub fn unflushed(&self) -> impl Iterator<Item = Counts> + '_ {
        self.slo_totals()
            .zip(&self.committed)
            .map(|((_, _, now), then)| Counts {
                total: now.total.saturating_sub(then.total),
                bad: now.bad.saturating_sub(then.bad),
            })
    }

    /// The storage keys of journey `journey`'s window slots.
    pub fn series(&self, journey: usize) -> &[String] {
        &self.series[journey]
    }

    /// The journeys' windows, for queries.
    pub fn windows(&self) -> &[JourneyWindows] {
        &self.windows
    }

    /// Journey `journey`'s windows with what the other instances counted (see
    /// [`set_others`](Self::set_others)): what evaluation, the API and `/metrics` read.
    pub fn merged(&self, journey: usize) -> Merged<'_> {
        Merged::new(
            &self.windows[journey],
            self.others.get(journey).map_or(&[], Vec::as_slice),
        )
    }

    /// Weighted roots and error roots per journey over the merged windows' lifetime.
    pub fn merged_root_counts(&self) -> impl Iterator<Item = Counts> + '_ {
        (0..self.windows.len()).map(|j| {
            let m = self.merged(j);
            m.lifetime(m.slots() - 1)
        })
    }

    /// Empty windows laid out like this pipeline's, with the journey names and slot keys they
    /// hold: what a read of the other instances' rows fills (outside the pipeline lock).
    pub fn others_layout(&self) -> (Vec<JourneyWindows>, Vec<String>, Vec<Vec<String>>) {
        (
            self.windows.iter().map(JourneyWindows::empty_like).collect(),
            self.journeys.0.iter().map(|j| j.name.clone()).collect(),
            self.series.clone(),
        )
    }

    /// Installs what the other instances counted: per instance, windows laid out by
    /// [`others_layout`](Self::others_layout) under the config still in force (the caller keeps
    /// reloads out between the two; a layout that no longer matches is refused and `false`
    /// returned). An empty vector: none.
    pub fn set_others(&mut self, by_instance: Vec<Vec<JourneyWindows>>) -> bool {
        let fits = by_instance.iter().all(|windows| {
            windows.len() == self.windows.len() && windows.iter().zip(&self.windows).all(|(o, w)| o.same_layout(w))
        });
        if !fits {
            return false;
        }
        self.others.clear();
        if !by_instance.is_empty() {
            let mut per_journey: Vec<Vec<JourneyWindows>> = (0..self.windows.len())
                .map(|_| Vec::with_capacity(by_instance.len()))
                .collect();
            for windows in by_instance {
                for (j, w) in windows.into_iter().enumerate() {
                    per_journey[j].push(w);
                }
            }
            self.others = per_journey;
        }
        true
    }

    /// Whether other instances' counts are merged in.
    pub fn has_others(&self) -> bool {
        !self.others.is_empty()
    }

    /// Takes every bucket changed since the previous drain, for a flush.
    pub fn drain_changes(&mut self) -> Drained {
        let mut journeys = Vec::new();
        for (j, w) in self.windows.iter_mut().enumerate() {
            let mut changes = Changes::default();
            crate::store::block::take_blocks(w, &mut changes);
            if !changes.is_empty() {
                journeys.push((j, changes));
            }
        }
        Drained {
            journeys,
            totals: self.slo_totals().map(|(_, _, c)| c).collect(),
            stream: self.drain_stream(),
        }
    }

    /// A flush holding every drain up to the one that gave `totals` is stored.
    pub fn committed(&mut self, totals: Vec<Counts>) {
        self.committed = totals;
    }

    /// The oldest instant any journey keeps: stored rows ending before it may be deleted.
    pub fn retained_from(&self) -> Option<Timestamp> {
        self.windows.iter().map(JourneyWindows::retained_from).min()
    }

    /// Starts restoring stored buckets: moves every window's clock to `now`.
    pub fn begin_restore(&mut self, now: Timestamp) {
        for w in &mut self.windows {
            w.advance(now);
        }
    }

    /// Restores one stored count bucket of a journey (`counts` by slot, see [`series`](Self::series)).
    pub fn restore_counts(&mut self, journey: usize, start: Timestamp, width: Duration, counts: &[Counts]) -> Recorded {
        self.windows[journey].restore_counts(start, width, counts)
    }

    /// Reports every count bucket of a journey as changed at the next drain (its restored rows
    /// are to be written in another layout).
    pub fn mark_counts_changed(&mut self, journey: usize) {
        self.windows[journey].mark_counts_changed();
    }

    /// Restores one stored latency histogram of a journey.
    pub fn restore_latencies(
        &mut self,
        journey: usize,
        start: Timestamp,
        width: Duration,
        encoded: &[u8],
    ) -> Result<Recorded, RestoreError> {
        self.windows[journey].restore_latencies(start, width, encoded)
    }

    /// Ends a restore: merges and evicts as of `now`; what was restored counts as stored.
    pub fn finish_restore(&mut self, now: Timestamp) {
        for w in &mut self.windows {
            w.advance(now);
        }
        self.committed = self.slo_totals().map(|(_, _, c)| c).collect();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use slis::journey::{AttrMatcher, Journey, RootMatcher};
    use slis::slo::{Period, SliKind};
    use slis::{AttrValue, SpanId, StatusCode, TraceId};

    pub(crate) const T0: i64 = 1_780_000_000; // seconds

    pub(crate) fn journeys() -> Journeys {
        Journeys(vec![Journey {
            name: "checkout".into(),
            root: RootMatcher {
                service: Some("frontend".into()),
                ..Default::default()
            },
            status_error: true,
            error_rules: vec![AttrMatcher::parse("http.response.status_code >= 500").unwrap()],
            expected_services: vec!["frontend".into(), "payment".into()],
            labels: vec![],
        }])
    }

    pub(crate) fn slos() -> Vec<Slo> {
        let slo = |name: &str, sli| Slo {
            name: name.into(),
            journey: 0,
            sli,
            objective: 0.99,
            period: Period::Rolling(Duration::from_secs(7 * 86_400)),
            policy: 0,
            labels: vec![],
        };
        vec![
            slo("error", SliKind::Error),
            slo(
                "latency",
                SliKind::Latency {
                    threshold: Duration::from_millis(200),
                },
            ),
            slo("complete", SliKind::Completeness),
        ]
    }

    pub(crate) fn pipeline(max_buffered_spans: usize) -> (Pipeline, Arc<EngineMetrics>) {
        let metrics = Arc::new(EngineMetrics::default());
        let ingest = IngestConfig {
            trace_idle: Duration::from_secs(30).into(),
            max_buffered_spans,
            ..Default::default()
        };
        (Pipeline::new(journeys(), &slos(), &ingest, metrics.clone()), metrics)
    }

    /// A span of trace `t`, id `id`, ending `end_ms` after T0 and lasting `ms`.
    pub(crate) fn span(t: u8, id: u8, parent: Option<u8>, service: &str, end_ms: i64, ms: i64) -> Span {
        let end = Timestamp::from_unix_millis(T0 * 1_000 + end_ms);
        Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.into(),
            name: "op".into(),
            kind: SpanKind::Server,
            start: end - Duration::from_millis(ms as u64),
            end,
            status: StatusCode::Unset,
            attributes: vec![],
            weight: 1,
        }
    }

    pub(crate) fn now(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(T0 + s)
    }

    fn totals(p: &Pipeline, _at: i64) -> Vec<(String, u64, u64)> {
        p.slo_totals().map(|(n, _, c)| (n.to_owned(), c.total, c.bad)).collect()
    }

    /// Issue 10: the trace-health SLIs are judged when a trace closes — fragmentation on its
    /// roots and orphans, clock skew on parent/child times, export lag on its latest span — and
    /// blame the boundary, the skewed service and the late span.
    #[test]
    fn trace_health_slos_judge_closed_traces_and_blame_who_broke_them() {
        let slo = |name: &str, sli| Slo {
            name: name.into(),
            journey: 0,
            sli,
            objective: 0.99,
            period: Period::Rolling(Duration::from_secs(7 * 86_400)),
            policy: 0,
            labels: vec![],
        };
        let slos = vec![
            slo("fragmentation", SliKind::Fragmentation),
            slo("skew", SliKind::ClockSkew),
            slo(
                "lag",
                SliKind::ExportLag {
                    threshold: Duration::from_secs(2),
                },
            ),
        ];
        let ingest = IngestConfig {
            trace_idle: Duration::from_secs(30).into(),
            ..Default::default()
        };
        let mut p = Pipeline::new(journeys(), &slos, &ingest, Arc::new(EngineMetrics::default()));
        // Trace 1 healthy; 2: a second root in payment; 3: payment starts 50 ms before its
        // parent; 4: healthy but received 3 s after it ended. All end at T0 + 1 s.
        let mut batch = vec![
            span(1, 1, None, "frontend", 1_000, 100),
            span(1, 2, Some(1), "payment", 990, 50),
            span(2, 1, None, "frontend", 1_000, 100),
            span(2, 2, None, "payment", 990, 50),
            span(3, 1, None, "frontend", 1_000, 100),
            span(3, 2, Some(1), "payment", 990, 140),
        ];
        p.ingest(Source::OtlpHttp, std::mem::take(&mut batch), now(1)).unwrap();
        p.ingest(Source::OtlpHttp, vec![span(4, 1, None, "frontend", 1_000, 100)], now(4))
            .unwrap();
        p.tick(now(60));
        use crate::exemplars::BlameReason;
        use slis::window::Window;
        let w = Window::Last(Duration::from_secs(3_600));
        let got: Vec<(u64, u64)> = (0..3)
            .map(|slo| {
                let c = p.windows()[0].counts(p.slot(slo), w, now(60));
                (c.total, c.bad)
            })
            .collect();
        assert_eq!(got, [(4, 1), (4, 1), (4, 1)]);
        let blamed = |slo| {
            p.contributors(slo, now(0), 5)
                .into_iter()
                .map(|b| (b.service, b.operation, b.reason))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            blamed(0),
            [("payment".into(), "unknown → payment".into(), BlameReason::LostContext)]
        );
        assert_eq!(
            blamed(1),
            [(
                "payment".into(),
                "starts_before_parent (frontend → payment)".into(),
                BlameReason::ClockSkew
            )]
        );
        assert_eq!(blamed(2), [("frontend".into(), "op".into(), BlameReason::ExportLag)]);
        let h = p.health();
        assert_eq!((h.traces, h.fragmented, h.skewed), (4, 1, 1));
        assert_eq!(h.journeys()[0].traces, 4);
    }

    #[test]
    fn roots_count_at_once_and_completeness_when_the_trace_closes() {
        let (mut p, m) = pipeline(1_000);
        let mut slow_error = span(1, 1, None, "frontend", 0, 300);
        slow_error
            .attributes
            .push(("http.response.status_code".into(), AttrValue::Int(503)));
        let batch = vec![
            slow_error, // trace 1: error, slow, complete
            span(1, 2, Some(1), "payment", 0, 100),
            span(2, 1, None, "frontend", 0, 50), // trace 2: fine, but payment never took part
            span(3, 1, None, "frontend", 0, 50), // trace 3: complete
            span(3, 2, Some(1), "payment", 0, 10),
            span(3, 3, Some(7), "payment", 0, 10), // … but an orphan: incomplete
            span(4, 1, None, "frontend", 0, 50),   // trace 4: two roots: incomplete
            span(4, 2, None, "payment", 0, 10),
        ];
        let got = p.ingest(Source::OtlpHttp, batch, now(1)).unwrap();
        assert_eq!(
            got,
            Ingested {
                accepted: 8,
                rejected: 0,
                first_rejection: None
            }
        );
        assert_eq!(p.root_counts().map(|c| (c.total, c.bad)).collect::<Vec<_>>(), [(4, 1)]);
        assert_eq!(
            totals(&p, 1),
            [
                ("error".into(), 4, 1),
                ("latency".into(), 4, 1),
                ("complete".into(), 0, 0)
            ]
        );
        p.tick(now(30));
        assert_eq!(totals(&p, 30)[2], ("complete".into(), 0, 0), "not idle for 30 s yet");
        p.tick(now(31));
        assert_eq!(totals(&p, 31)[2], ("complete".into(), 4, 3));
        let closed = |r| m.traces_closed.get_or_create(&ResultLabels { result: r }).get();
        assert_eq!((closed("complete"), closed("incomplete")), (1, 3));
        assert_eq!(p.buffered_spans(), 0);
    }

    #[test]
    fn reconfigure_keeps_what_kept_slos_counted_and_open_traces_close_under_the_new_journeys() {
        let (mut p, _) = pipeline(1_000);
        let mut error = span(1, 1, None, "frontend", 0, 300);
        error.status = StatusCode::Error;
        // Trace 1 closes before the reload; trace 2 (missing payment) is still open across it.
        p.ingest(
            Source::OtlpHttp,
            vec![error, span(1, 2, Some(1), "payment", 0, 10)],
            now(1),
        )
        .unwrap();
        p.tick(now(40));
        p.ingest(
            Source::OtlpHttp,
            vec![span(2, 1, None, "frontend", 41_000, 50)],
            now(41),
        )
        .unwrap();
        assert_eq!(
            totals(&p, 41),
            [
                ("error".into(), 2, 1),
                ("latency".into(), 2, 1),
                ("complete".into(), 1, 0)
            ]
        );

        // The reload: a second journey before the first (indices move), "latency" gets another
        // threshold (a new series), "error" is dropped, "complete" is kept.
        let mut js = journeys();
        let mut search = js.0[0].clone();
        search.name = "search".into();
        search.root.service = Some("search".into());
        js.0.insert(0, search);
        let mut slos = slos();
        for s in &mut slos {
            s.journey = 1;
        }
        slos.remove(0);
        slos[0].sli = SliKind::Latency {
            threshold: Duration::from_millis(100),
        };
        slos.push(Slo {
            name: "search-errors".into(),
            journey: 0,
            sli: SliKind::Error,
            ..slos[1].clone()
        });
        let changed = p.reconfigure(js, &slos);
        assert_eq!(
            changed,
            Reconfigured {
                journeys_added: vec!["search".into()],
                journeys_removed: vec![],
                reslotted_journeys: vec!["checkout".into()],
                new_series: vec!["checkout/latency (latency ≤ 100ms)".into()],
                dropped_series: vec![
                    "checkout/error (error)".into(),
                    "checkout/latency (latency ≤ 200ms)".into()
                ],
            }
        );
        assert_eq!(
            totals(&p, 41),
            [
                ("latency".into(), 0, 0),
                ("complete".into(), 1, 0),
                ("search-errors".into(), 0, 0)
            ]
        );
        // The roots series moved with its journey.
        assert_eq!(
            p.root_counts().map(|c| (c.total, c.bad)).collect::<Vec<_>>(),
            [(0, 0), (2, 1)]
        );

        // Trace 2 closes under the new layout (incomplete: payment never came), new roots count
        // in the new slots.
        p.ingest(
            Source::OtlpHttp,
            vec![
                span(3, 1, None, "frontend", 42_000, 150),
                span(4, 1, None, "search", 42_000, 10),
            ],
            now(42),
        )
        .unwrap();
        p.tick(now(80));
        assert_eq!(
            totals(&p, 80),
            [
                ("latency".into(), 1, 1),
                ("complete".into(), 3, 2),
                ("search-errors".into(), 1, 0)
            ]
        );
        let drained = p.drain_changes();
        assert_eq!(drained.journeys.iter().map(|(j, _)| *j).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn clock_rules_reject_or_clamp_by_reason() {
        let (mut p, m) = pipeline(1_000);
        let mut missing = span(1, 1, None, "frontend", 0, 10);
        missing.start = Timestamp::EPOCH;
        let future = span(2, 1, None, "frontend", 6 * 60_000 + 2_000, 10); // 6 min ahead of now(1)
        let old = span(3, 1, None, "frontend", -2 * 3_600_000, 10);
        let mut backwards = span(4, 1, None, "frontend", 0, 10);
        std::mem::swap(&mut backwards.start, &mut backwards.end);
        let got = p
            .ingest(Source::Zipkin, vec![missing, future, old, backwards], now(1))
            .unwrap();
        assert_eq!((got.accepted, got.rejected), (1, 3));
        assert!(got.first_rejection.unwrap().contains("missing_timestamp"));
        for reason in ["missing_timestamp", "future", "too_old"] {
            let c = m
                .spans_rejected
                .get_or_create(&crate::metrics::RejectLabels {
                    receiver: "zipkin",
                    reason,
                })
                .get();
            assert_eq!(c, 1, "{reason}");
        }
        assert_eq!(
            m.spans_clamped
                .get_or_create(&ReasonLabels {
                    reason: "negative_duration"
                })
                .get(),
            1
        );
        // The clamped root counts, with latency 0: good for the latency SLO.
        assert_eq!(totals(&p, 1)[1], ("latency".into(), 1, 0));
    }

    #[test]
    fn duplicates_and_late_spans_never_recount() {
        let (mut p, m) = pipeline(1_000);
        let batch = vec![
            span(1, 1, None, "frontend", 0, 10),
            span(1, 2, Some(1), "payment", 0, 5),
        ];
        p.ingest(Source::OtlpGrpc, batch.clone(), now(1)).unwrap();
        p.ingest(Source::OtlpGrpc, batch.clone(), now(2)).unwrap(); // an exporter's retry
        assert_eq!(m.duplicate_spans.get(), 2);
        p.tick(now(40));
        p.ingest(Source::OtlpGrpc, vec![span(1, 3, Some(1), "payment", 0, 5)], now(41))
            .unwrap();
        // The whole trace again, after it closed (a retry, or a replay of the same ids): late,
        // and its root is not counted a second time.
        p.ingest(Source::OtlpGrpc, batch, now(42)).unwrap();
        p.tick(now(80));
        assert_eq!(m.late_spans.get(), 3);
        assert_eq!(
            totals(&p, 80),
            [
                ("error".into(), 1, 0),
                ("latency".into(), 1, 0),
                ("complete".into(), 1, 0)
            ]
        );
    }

    #[test]
    fn a_late_root_of_a_rootless_closed_trace_counts_once() {
        let (mut p, m) = pipeline(1_000);
        p.ingest(Source::OtlpHttp, vec![span(1, 2, Some(1), "payment", 0, 5)], now(1))
            .unwrap();
        p.tick(now(31));
        p.ingest(Source::OtlpHttp, vec![span(1, 1, None, "frontend", 0, 10)], now(32))
            .unwrap();
        assert_eq!(m.late_spans.get(), 1);
        assert_eq!(totals(&p, 32)[0], ("error".into(), 1, 0));
        let closed = |r| m.traces_closed.get_or_create(&ResultLabels { result: r }).get();
        assert_eq!(closed("no_root"), 1);
    }

    #[test]
    fn a_root_with_a_parent_outside_the_trace_is_recorded_at_close() {
        let (mut p, _) = pipeline(1_000);
        let entry = span(1, 1, Some(99), "frontend", 0, 300); // called by an uninstrumented proxy
        p.ingest(
            Source::OtlpHttp,
            vec![entry, span(1, 2, Some(1), "payment", 0, 10)],
            now(1),
        )
        .unwrap();
        assert_eq!(totals(&p, 1)[0], ("error".into(), 0, 0));
        p.tick(now(31));
        assert_eq!(
            totals(&p, 31),
            [
                ("error".into(), 1, 0),
                ("latency".into(), 1, 1),
                ("complete".into(), 1, 0)
            ]
        );
    }

    #[test]
    fn backpressure_refuses_whole_batches_and_eviction_keeps_the_bound() {
        let (mut p, m) = pipeline(10);
        let flood: Vec<Span> = (1..=12).map(|t| span(t, 1, Some(9), "payment", 0, 5)).collect();
        let got = p.ingest(Source::OtlpHttp, flood, now(1)).unwrap();
        assert_eq!(got.accepted, 12);
        assert_eq!(m.traces_evicted.get(), 2);
        assert_eq!(p.buffered_spans(), 10);
        assert_eq!(
            p.ingest(Source::OtlpHttp, vec![span(50, 1, None, "frontend", 0, 5)], now(2)),
            Err(Backpressure)
        );
        let rejected = m.spans_rejected.get_or_create(&crate::metrics::RejectLabels {
            receiver: "otlp_http",
            reason: "backpressure",
        });
        assert_eq!(rejected.get(), 1);
        assert_eq!(
            totals(&p, 2)[0],
            ("error".into(), 0, 0),
            "nothing of a refused batch is recorded"
        );
    }

    #[test]
    fn exemplars_on_arrival_and_contributors_when_traces_close() {
        use crate::exemplars::{Blame, BlameReason, ExemplarTrace};
        let (mut p, m) = pipeline(1_000);
        let named = |mut s: Span, name: &str, error: bool, weight: u32| {
            s.name = name.into();
            if error {
                s.status = StatusCode::Error;
            }
            s.weight = weight;
            s
        };
        let mut rule_error = named(span(4, 1, None, "frontend", 0, 100), "GET /checkout", false, 2);
        rule_error
            .attributes
            .push(("http.response.status_code".into(), AttrValue::Int(503)));
        let batch = vec![
            // Trace 1: slow, failed in the bank, under a failed payment.
            named(span(1, 1, None, "frontend", 0, 300), "GET /checkout", true, 1),
            named(span(1, 2, Some(1), "payment", 0, 250), "charge", true, 1),
            named(span(1, 3, Some(2), "bank", 0, 200), "auth", true, 1),
            named(span(1, 4, Some(2), "payment", 0, 5), "log", false, 1),
            // Trace 2 (weight 3): slow because of its own rendering.
            named(span(2, 1, None, "frontend", 0, 500), "GET /checkout", false, 3),
            named(span(2, 2, Some(1), "payment", 0, 100), "charge", false, 3),
            named(span(2, 3, Some(1), "frontend", 0, 350), "render", false, 3),
            // Trace 3: payment missing, and a span whose parent never came.
            named(span(3, 1, None, "frontend", 0, 50), "GET /checkout", false, 1),
            named(span(3, 2, Some(77), "catalog", 0, 5), "list", false, 1),
            // Trace 4 (weight 2): an error by the journey's rule, no span says it failed.
            rule_error,
            named(span(4, 2, Some(1), "payment", 0, 20), "charge", false, 2),
            // Trace 6: its root comes after the trace closed.
            named(span(6, 2, Some(1), "payment", 0, 5), "charge", false, 1),
        ];
        p.ingest(Source::OtlpHttp, batch, now(1)).unwrap();
        // An exporter's retry of trace 1's root: neither an exemplar nor blame twice.
        p.ingest(
            Source::OtlpHttp,
            vec![named(span(1, 1, None, "frontend", 0, 300), "GET /checkout", true, 1)],
            now(2),
        )
        .unwrap();

        let since = now(-3_600);
        let end = Timestamp::from_unix_secs(T0);
        let ex = |t: u8, ms: u64, error: bool, weight: u32| ExemplarTrace {
            trace_id: TraceId([t; 16]),
            start: end - Duration::from_millis(ms),
            duration: Duration::from_millis(ms),
            error,
            weight,
        };
        assert_eq!(p.exemplars(0, since, 5), [ex(1, 300, true, 1), ex(4, 100, true, 2)]);
        assert_eq!(p.exemplars(1, since, 5), [ex(2, 500, false, 3), ex(1, 300, true, 1)]);
        assert_eq!(p.exemplars(1, since, 1), [ex(2, 500, false, 3)]);
        assert!(p.exemplars(2, since, 5).is_empty(), "completeness is judged at close");
        assert!(p.contributors(0, since, 5).is_empty(), "blame needs the whole trace");

        p.tick(now(32)); // two seconds past trace_idle: every trace closed
        let blame = |service: &str, operation: &str, bad_events, reason| Blame {
            service: service.into(),
            operation: operation.into(),
            bad_events,
            reason,
        };
        assert_eq!(
            p.contributors(0, since, 5),
            [
                blame("frontend", "GET /checkout", 2, BlameReason::ErrorOrigin),
                blame("bank", "auth", 1, BlameReason::ErrorOrigin),
            ]
        );
        assert_eq!(
            p.contributors(1, since, 5),
            [
                blame("frontend", "render", 3, BlameReason::SlowestChild),
                blame("bank", "auth", 1, BlameReason::SlowestChild),
            ]
        );
        assert_eq!(
            p.contributors(2, since, 5),
            [
                blame("catalog", "list", 1, BlameReason::OrphanSpan),
                blame("payment", "", 1, BlameReason::MissingService),
            ]
        );
        assert_eq!(p.exemplars(2, since, 5), [ex(3, 50, false, 1)]);
        assert_eq!(
            totals(&p, 32)[2],
            ("complete".into(), 7, 1),
            "weighted; trace 6 had no root"
        );

        // Trace 6's root, late and failed: counted and kept as an exemplar, but with no trace left
        // to blame, its bad event is counted as unblamed.
        p.ingest(
            Source::OtlpHttp,
            vec![named(span(6, 1, None, "frontend", 0, 10), "GET /checkout", true, 1)],
            now(33),
        )
        .unwrap();
        assert_eq!(totals(&p, 33)[0], ("error".into(), 8, 4));
        assert_eq!(
            p.exemplars(0, since, 5),
            [ex(1, 300, true, 1), ex(4, 100, true, 2), ex(6, 10, true, 1)]
        );
        assert_eq!(p.contributors(0, since, 5).iter().map(|b| b.bad_events).sum::<u64>(), 3);
        let unblamed = |reason| m.blame_dropped.get_or_create(&ReasonLabels { reason }).get();
        assert_eq!((unblamed("late_root"), unblamed("trace_evicted")), (1, 0));
    }

    #[test]
    fn an_evicted_trace_counts_its_bad_events_as_unblamed() {
        let (mut p, m) = pipeline(2);
        let mut failed = span(1, 1, None, "frontend", 0, 300); // bad for error and latency
        failed.status = StatusCode::Error;
        failed.weight = 4;
        let batch = vec![
            failed,
            span(2, 1, None, "frontend", 0, 10),
            span(3, 1, None, "frontend", 0, 10),
        ];
        p.ingest(Source::OtlpHttp, batch, now(1)).unwrap();
        assert_eq!(m.traces_evicted.get(), 1);
        let unblamed = |reason| m.blame_dropped.get_or_create(&ReasonLabels { reason }).get();
        assert_eq!(unblamed("trace_evicted"), 8, "weight 4, bad for two SLOs");
        assert_eq!(p.exemplars(0, now(-60), 5).len(), 1, "the exemplar was kept on arrival");
    }
}
