//! Judging and blame: a root is recorded and offered as an exemplar on arrival; a closed trace
//! gets its verdict (completeness and trace health), is recorded in the SLOs judged at close and
//! blames its spans. Which root or trace is bad for which SLO is each SLO's [`Sli`] rule
//! (`slis::sli`); this module only applies it.

use std::time::Duration;

use slis::journey::{Journey, Journeys};
use slis::sli::Blames;
use slis::window::{JourneyWindows, Recorded, RootSample, Sli, TraceVerdict};
use slis::{Span, Timestamp, TraceId};

use super::layout::Layout;
use crate::assembler::{Candidate, ClosedTrace, RootRef};
use crate::exemplars::{self, BlameReason, Culprit, Dropped, ExemplarTrace, Insights};
use crate::health::{Findings, TraceHealth, trace::Scratch};
use crate::metrics::{EngineMetrics, ReasonLabels, ResultLabels};

/// What root span `span` of journey `journey` counts as.
pub(super) fn root_sample(journey: &Journey, span: &Span) -> RootSample {
    RootSample {
        at: span.end,
        latency_nanos: span.duration_nanos(),
        error: journey.is_error(span),
        weight: span.weight,
    }
}

/// The pipeline's state a verdict touches, borrowed for one batch or one round of closes.
#[derive(Debug)]
pub(super) struct Judge<'a> {
    pub layout: &'a Layout,
    pub journeys: &'a Journeys,
    pub windows: &'a mut [JourneyWindows],
    pub insights: &'a mut Insights,
    pub metrics: &'a EngineMetrics,
}

impl Judge<'_> {
    /// Records a root sample; returns 1 when the window refused it as older than its retention.
    #[inline]
    pub fn record_root(&mut self, journey: usize, sample: &RootSample) -> u64 {
        match self.windows[journey].record_root(sample) {
            Recorded::Counted => 0,
            Recorded::TooOld => 1,
        }
    }

    /// Offers a recorded root as an exemplar to each SLO of its journey it makes bad at once.
    pub fn offer_root(&mut self, journey: usize, trace_id: TraceId, s: &RootSample, now: Timestamp) {
        let layout = self.layout;
        for &slo in &layout.journey_slos[journey] {
            if layout.slis[slo].root_bad(s) {
                self.offer(slo, trace_id, s, now);
            }
        }
    }

    /// A root recorded with no trace left to blame: its bad events are counted as unblamed.
    pub fn unblamed(&self, journey: usize, s: &RootSample, reason: &'static str) {
        let bad = self.layout.journey_slos[journey]
            .iter()
            .filter(|&&slo| self.layout.slis[slo].root_bad(s))
            .count();
        self.drop_blame(reason, bad as u64 * u64::from(s.weight));
    }

    /// Moves the exemplar and blame buckets to `now`, counting the blame dropped by merging.
    pub fn advance(&mut self, now: Timestamp) {
        let full = self.insights.advance(now);
        self.drop_blame(Dropped::BucketFull.as_str(), full);
    }

    /// Judges each closed trace: trace health, the root of a trace whose root's parent lies
    /// outside it, the SLOs judged at close, and blame.
    pub fn close(
        &mut self,
        closed: &mut Vec<ClosedTrace>,
        health: &mut TraceHealth,
        scratch: &mut Scratch,
        now: Timestamp,
    ) {
        let mut results = [0u64; 4]; // complete, incomplete, no_journey, no_root
        let mut too_old = 0;
        let tolerance = i64::try_from(health.config().skew_tolerance.0.as_nanos()).unwrap_or(i64::MAX);
        for t in closed.drain(..) {
            let findings =
                crate::health::trace::analyze_with(&t.nodes, &t.peers, tolerance, |s| health.reports(s), scratch);
            let judged = match (t.root, t.remote_root) {
                (Some(RootRef { journey: Some(j), .. }), _) | (None, Some(Candidate { journey: j, .. })) => Some(j),
                _ => None,
            };
            health.judged(judged, &t.services, &findings, now);
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
        let m = self.metrics;
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
    /// as an exemplar of the SLOs judged at close that it failed (those judged on the root had it
    /// on arrival).
    #[allow(clippy::too_many_arguments)]
    fn blame_trace(
        &mut self,
        journey: usize,
        t: &ClosedTrace,
        root: Option<usize>,
        s: &RootSample,
        verdict: &TraceVerdict,
        findings: &Findings,
        now: Timestamp,
    ) {
        let layout = self.layout;
        let mut culprits = Vec::new();
        for &slo in &layout.journey_slos[journey] {
            let sli: Sli = layout.slis[slo];
            if !sli.bad(s, verdict) {
                continue;
            }
            if sli.on_close() {
                self.offer(slo, t.trace_id, s, now);
            }
            culprits.clear();
            match (sli.blames(), root) {
                (Blames::MissingServices, _) => {
                    let expected = &self.journeys.0[journey].expected_services;
                    exemplars::completeness_culprits(&t.nodes, root, &t.services, expected, &mut culprits);
                }
                (Blames::ErrorOrigin, Some(r)) => {
                    let origin = exemplars::error_origin(&t.nodes, r);
                    culprits.push(exemplars::culprit(&t.nodes[origin], BlameReason::ErrorOrigin));
                }
                (Blames::CriticalPath, Some(r)) => {
                    let slowest = exemplars::critical_path(&t.nodes, r);
                    culprits.push(exemplars::culprit(&t.nodes[slowest], BlameReason::SlowestChild));
                }
                (Blames::ErrorOrigin | Blames::CriticalPath, None) => {}
                (rule @ (Blames::LostContext | Blames::LatestExport | Blames::SkewedSpans), _) => {
                    exemplars::health_culprits(&t.nodes, rule, findings, t.max_lag_node, &mut culprits);
                }
            }
            for c in &culprits {
                self.blame(slo, s, c, now);
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
            self.metrics
                .exemplars_dropped
                .get_or_create(&ReasonLabels {
                    reason: reason.as_str(),
                })
                .inc();
        }
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
}
