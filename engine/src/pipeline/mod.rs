//! The ingest pipeline: clock rules, the root fast path, trace assembly and verdicts, feeding
//! each journey's `slis::window::JourneyWindows`.
//!
//! One `Pipeline` is shared behind a mutex; receivers decode outside the lock and hand over whole
//! batches. The clock is an argument (`now`), so replay can drive it with virtual time.
//!
//! `Pipeline` is a façade over parts, one job per file:
//! - `ingest.rs` — [`Source`], the clock rules and their [`Reject`] reasons, [`Ingested`],
//!   [`Backpressure`];
//! - `layout.rs` — journeys and SLOs → window slots and storage keys ([`series_key`]), and how a
//!   reloaded config maps onto the one in force ([`Reconfigured`]);
//! - `judge.rs` — root and trace verdicts by each SLO's `slis::sli::Sli` rules, exemplars and
//!   blame;
//! - `stream.rs` — JetStream partitions consumed here, their positions and snapshots
//!   ([`StreamDrain`]);
//! - `others.rs` — other instances' windows, merged read-only;
//! - `persist.rs` — what a flush takes ([`Drained`]) and what is stored.

mod ingest;
mod judge;
mod layout;
mod others;
mod persist;
mod stream;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;
use std::time::Duration;

use slis::journey::Journeys;
use slis::slo::Slo;
use slis::window::{Counts, JourneyWindows, Merged, Recorded, RestoreError, RootSample};
use slis::{Span, SpanKind, Timestamp};

use crate::assembler::{Arrival, Assembler, Candidate, ClosedTrace, RootRef};
use crate::config::IngestConfig;
use crate::exemplars::{self, Blame, ExemplarTrace, Insights};
use crate::health::{TraceHealth, TraceHealthConfig};
use crate::metrics::{EngineMetrics, ReasonLabels, ReceiverLabels};
use ingest::ClockRules;
pub use ingest::{Backpressure, Ingested, Reject, Source};
use judge::{Judge, root_sample};
use layout::{JourneyFrom, Layout};
pub use layout::{RETENTION_MARGIN, ROOTS_SERIES, Reconfigured, series_key};
use others::Others;
use persist::Committed;
pub use persist::Drained;
pub use stream::StreamDrain;
use stream::StreamPositions;

/// See the module docs.
#[derive(Debug)]
pub struct Pipeline {
    journeys: Journeys,
    /// Where every SLO counts, and by which rules.
    layout: Layout,
    windows: Vec<JourneyWindows>,
    /// Per SLO, its lifetime counts as of the last stored flush.
    committed: Committed,
    assembler: Assembler,
    rules: ClockRules,
    max_buffered_spans: usize,
    metrics: Arc<EngineMetrics>,
    closed: Vec<ClosedTrace>,
    last_advance_minute: i64,
    /// Exemplars and contributors per SLO (in memory only).
    insights: Insights,
    evicted_roots: Vec<RootRef>,
    /// The newest `now` of `ingest` or `tick`.
    last_now: Timestamp,
    /// What each other instance sharing the database counted, laid out like `windows` (see
    /// [`set_others`](Self::set_others)); empty on a single instance.
    others: Others,
    stream: Option<StreamPositions>,
    /// Trace-pipeline health: measured on every accepted span and closed trace.
    health: TraceHealth,
    health_scratch: crate::health::trace::Scratch,
    /// `[privacy]` rules, for the names a JetStream snapshot stores.
    redactor: Arc<slis::privacy::Redactor>,
}

/// The judging part over the pipeline's fields, borrowed apart from the others.
macro_rules! judge {
    ($p:ident) => {
        Judge {
            layout: &$p.layout,
            journeys: &$p.journeys,
            windows: &mut $p.windows,
            insights: &mut $p.insights,
            metrics: &$p.metrics,
        }
    };
}

impl Pipeline {
    /// A pipeline for `journeys` and their `slos`, with the clock rules and limits of `ingest`.
    pub fn new(journeys: Journeys, slos: &[Slo], ingest: &IngestConfig, metrics: Arc<EngineMetrics>) -> Self {
        let layout = Layout::of(journeys.0.len(), slos);
        let windows = layout
            .per_journey
            .iter()
            .map(|slis| JourneyWindows::new(slis.clone(), layout.retention))
            .collect();
        let insights = Insights::new(layout.ranks(), exemplars::HORIZON);
        Pipeline {
            health: TraceHealth::new(TraceHealthConfig::default(), layout.per_journey.len()),
            journeys,
            layout,
            windows,
            committed: Committed::new(slos.len()),
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
            insights,
            evicted_roots: Vec::new(),
            last_now: Timestamp::EPOCH,
            others: Others::default(),
            stream: None,
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
            journeys: self.journey_names(),
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
        self.stream = Some(StreamPositions::new(stream, partitions));
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
        let names = self.journey_names();
        let stream = self.stream.as_mut().ok_or("the pipeline consumes no stream")?;
        stream.open(p, seq);
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
        let forgotten = self.assembler.forget(stream.release(p));
        self.update_gauges();
        forgotten
    }

    /// The newest sequence of partition `p` ingested here, if it is consumed here.
    pub fn position(&self, p: u32) -> Option<u64> {
        self.stream.as_ref()?.position(p)
    }

    /// Records that the message `seq` of partition `p` was ingested (or skipped as undecodable):
    /// call it under the same lock hold as the ingest, so a drain sees both or neither.
    pub fn advance_position(&mut self, p: u32, seq: u64) {
        if let Some(stream) = self.stream.as_mut() {
            stream.advance(p, seq);
        }
    }

    fn journey_names(&self) -> Vec<String> {
        self.journeys.0.iter().map(|j| j.name.clone()).collect()
    }

    /// Applies a reloaded config's journeys and SLOs without losing what was counted: a journey
    /// is known by its name and an SLO's history by its storage key ([`series_key`]: name and
    /// SLI), so a kept SLO keeps its windows, exemplars and blame, a changed or new one starts
    /// empty, a removed one is forgotten (its stored rows age out). Open traces stay open and
    /// close under the new journeys (see [`Assembler::remap_journeys`]). The clock rules and
    /// limits of `[ingest]` are not reloaded.
    pub fn reconfigure(&mut self, journeys: Journeys, slos: &[Slo]) -> Reconfigured {
        let layout = Layout::of(journeys.0.len(), slos);
        let remap = self.layout.remap(&self.journeys, &layout, &journeys);
        let mut old_windows: Vec<Option<JourneyWindows>> =
            std::mem::take(&mut self.windows).into_iter().map(Some).collect();
        let mut take = |o: usize| old_windows[o].take().expect("journey names are unique");
        self.windows = remap
            .journeys
            .into_iter()
            .zip(&layout.per_journey)
            .map(|(from, slis)| match from {
                JourneyFrom::New => {
                    let mut w = JourneyWindows::new(slis.clone(), layout.retention);
                    w.advance(self.last_now);
                    w
                }
                JourneyFrom::Kept(o) => take(o),
                JourneyFrom::Reslotted(o, from) => take(o).reslot(slis.clone(), &from, layout.retention),
            })
            .collect();
        self.committed.remap(&remap.slo_from);
        self.insights.remap(&remap.slo_from, &layout.ranks());
        self.assembler.remap_journeys(&remap.journey_map);
        self.health.remap_journeys(&remap.journey_map, journeys.0.len());
        self.journeys = journeys;
        self.layout = layout;
        // Laid out for the old config: the next read of the other instances lays them out anew.
        self.others.clear();
        self.update_gauges();
        remap.report
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
        let admit = self.rules.at(now);
        self.health.observe(
            spans
                .iter()
                .filter(|s| admit.check(s).is_ok())
                .map(|s| (&s.service, s.end)),
            now,
        );
        let mut judge = judge!(self);
        for span in spans {
            if let Err(reason) = admit.check(&span) {
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
                    Some(j) => root_sample(&self.journeys.0[j], &span),
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
                        sample: root_sample(&self.journeys.0[journey], &span),
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
                        judge.unblamed(j, &sample, "late_root");
                    }
                }
            }
            if let Some(RootRef {
                journey: Some(j),
                sample,
            }) = root
            {
                too_old_samples += judge.record_root(j, &sample);
                judge.offer_root(j, span.trace_id, &sample, now);
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
                judge.unblamed(j, &r.sample, "trace_evicted");
            }
        }
        self.evicted_roots = roots;
        self.update_gauges();
        Ok(out)
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
            judge!(self).advance(now);
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
        let mut closed = std::mem::take(&mut self.closed);
        self.assembler.close_unless(stream.is_consumed(), &mut closed);
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

    /// Judges closed traces as of `now`.
    fn judge(&mut self, closed: &mut Vec<ClosedTrace>, now: Timestamp) {
        judge!(self).close(closed, &mut self.health, &mut self.health_scratch, now);
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

    /// The spans the assembler holds.
    pub fn buffered_spans(&self) -> usize {
        self.assembler.buffered_spans()
    }

    /// The journeys in force.
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
        self.layout
            .slots
            .iter()
            .zip(&self.layout.slo_names)
            .map(move |(&(journey, slot), name)| (name.as_str(), journey, self.windows[journey].lifetime(slot)))
    }

    /// The window slot of SLO `slo` (an index into the config's SLOs) in its journey's windows.
    pub fn slot(&self, slo: usize) -> usize {
        self.layout.slots[slo].1
    }

    /// Per SLO (in config order): what it counted that is not stored yet.
    pub fn unflushed(&self) -> impl Iterator<Item = Counts> + '_ {
        self.committed.unflushed(self.slo_totals().map(|(_, _, c)| c))
    }

    /// The storage keys of journey `journey`'s window slots.
    pub fn series(&self, journey: usize) -> &[String] {
        &self.layout.series[journey]
    }

    /// The journeys' windows, for queries.
    pub fn windows(&self) -> &[JourneyWindows] {
        &self.windows
    }

    /// Journey `journey`'s windows with what the other instances counted (see
    /// [`set_others`](Self::set_others)): what evaluation, the API and `/metrics` read.
    pub fn merged(&self, journey: usize) -> Merged<'_> {
        self.others.merged(&self.windows[journey], journey)
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
            self.journey_names(),
            self.layout.series.clone(),
        )
    }

    /// Installs what the other instances counted: per instance, windows laid out by
    /// [`others_layout`](Self::others_layout) under the config still in force (the caller keeps
    /// reloads out between the two; a layout that no longer matches is refused and `false`
    /// returned). An empty vector: none.
    pub fn set_others(&mut self, by_instance: Vec<Vec<JourneyWindows>>) -> bool {
        self.others.set(by_instance, &self.windows)
    }

    /// Whether other instances' counts are merged in.
    pub fn has_others(&self) -> bool {
        !self.others.is_empty()
    }

    /// Takes every bucket changed since the previous drain, for a flush.
    pub fn drain_changes(&mut self) -> Drained {
        Drained {
            journeys: persist::take_changes(&mut self.windows),
            totals: self.slo_totals().map(|(_, _, c)| c).collect(),
            stream: self
                .stream
                .as_ref()
                .map(|s| s.drain(&self.assembler, &self.journey_names(), &self.redactor)),
        }
    }

    /// A flush holding every drain up to the one that gave `totals` is stored.
    pub fn committed(&mut self, totals: Vec<Counts>) {
        self.committed.set(totals);
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
        self.committed.set(self.slo_totals().map(|(_, _, c)| c).collect());
    }
}
