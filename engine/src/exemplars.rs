//! What only traces can tell a page, per SLO: the worst bad traces of the recent past
//! (**exemplars**) and the services/operations the bad events blame (**contributors**).
//!
//! Pure data: the clock is an argument, nothing here does I/O. Everything is in memory only and
//! not persisted: after a restart both start empty while the SLI windows are restored.
//!
//! Both are kept in time buckets by the root's end time (the instant the SLI windows count the
//! event at): one-minute buckets for the last [`MINUTE_TIER`], one-hour buckets up to the horizon
//! ([`HORIZON`], the longest default alert window, 3 d); [`Insights::advance`] folds old minutes
//! into their hour and drops hours past the horizon. A bucket keeps the [`TOP_K`] worst traces and
//! at most [`MAX_CONTRIBUTORS`] contributors, so memory per SLO is bounded whatever the traffic.
//!
//! Blame is computed from a closed trace's spans ([`SpanNode`]s, what the assembler keeps):
//! - error: where the error originated — from the root, descend through children that failed to
//!   the deepest failed span (breadth first, so the first such span in arrival order wins a tie);
//! - latency: the critical path — from the root, descend to the longest child while it takes at
//!   least half ([`SIGNIFICANT_SHARE`]) of its parent's time; the last span reached is blamed;
//! - completeness: each expected service that is missing (operation `""`), and the service and
//!   operation of each span that lost its parent (an orphan, or a second parentless span).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use slis::sli::Blames;
use slis::{SpanId, Timestamp, TraceId};

use crate::assembler::SpanNode;

/// Exemplars kept per bucket.
pub const TOP_K: usize = 5;
/// Contributors kept per bucket; past it, a new contributor's events are dropped (counted).
pub const MAX_CONTRIBUTORS: usize = 32;
/// How long one-minute buckets are kept before folding into one-hour buckets.
pub const MINUTE_TIER: Duration = Duration::from_secs(3_600);
/// How long one-hour buckets are kept: the longest window of the default alert policy.
pub const HORIZON: Duration = Duration::from_secs(3 * 86_400);
/// The critical path descends into the longest child only while it takes at least this share
/// (numerator, denominator) of its parent's duration; otherwise the parent's own time dominates.
pub const SIGNIFICANT_SHARE: (u64, u64) = (1, 2);

/// One bad trace, as a page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExemplarTrace {
    pub trace_id: TraceId,
    /// The root span's start.
    pub start: Timestamp,
    /// The root span's duration.
    pub duration: Duration,
    /// Whether the root was judged an error by its journey.
    pub error: bool,
    /// The root's sampling weight (how many requests it stands for).
    pub weight: u32,
}

/// Why a span or service is blamed for bad events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlameReason {
    ErrorOrigin,
    SlowestChild,
    MissingService,
    OrphanSpan,
    /// Trace health: a service boundary where the trace context was lost (the operation names
    /// the boundary, `caller → callee`).
    LostContext,
    /// Trace health: a span whose clock disagrees with its parent's (the operation names how).
    ClockSkew,
    /// Trace health: the span of the trace received longest after its end.
    ExportLag,
}

impl BlameReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BlameReason::ErrorOrigin => "error originated here",
            BlameReason::SlowestChild => "slowest child span",
            BlameReason::MissingService => "missing service",
            BlameReason::OrphanSpan => "orphan span",
            BlameReason::LostContext => "lost trace context",
            BlameReason::ClockSkew => "clock skew",
            BlameReason::ExportLag => "slowest export",
        }
    }
}

/// A contributor to an SLO's bad events over a query's time range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blame {
    pub service: String,
    /// The span name; `""` for a missing service.
    pub operation: String,
    /// Weighted bad events blaming it.
    pub bad_events: u64,
    pub reason: BlameReason,
}

/// What one bad event blames.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Culprit {
    pub service: Arc<str>,
    pub operation: Arc<str>,
    pub reason: BlameReason,
}

pub use slis::sli::Rank;

/// Greater is worse; ties go to the newer trace, then the greater id, so order is total.
fn rank_key(rank: Rank, e: &ExemplarTrace) -> (bool, Duration, Timestamp, TraceId) {
    (rank.errors_first() && e.error, e.duration, e.start, e.trace_id)
}

/// Why something was not kept (the `reason` label of the drop counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Older than the horizon at the time it was offered.
    TooOld,
    /// The bucket already held `MAX_CONTRIBUTORS` others.
    BucketFull,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::TooOld => "too_old",
            Dropped::BucketFull => "bucket_full",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Blame: which span of a closed trace is to blame.

/// Parent lookups over a closed trace's spans: a scan for small traces, an index for large ones.
struct Tree<'a> {
    nodes: &'a [SpanNode],
    index: Option<HashMap<SpanId, usize>>,
}

impl<'a> Tree<'a> {
    fn new(nodes: &'a [SpanNode]) -> Self {
        let index = (nodes.len() > 32).then(|| nodes.iter().enumerate().map(|(i, n)| (n.span_id, i)).collect());
        Tree { nodes, index }
    }

    fn contains(&self, id: SpanId) -> bool {
        match &self.index {
            Some(index) => index.contains_key(&id),
            None => self.nodes.iter().any(|n| n.span_id == id),
        }
    }

    /// Children of `i`, in arrival order.
    fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let id = self.nodes[i].span_id;
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.parent == Some(id))
            .map(|(c, _)| c)
    }
}

/// The span where the error of root `root` originated: the deepest span reached from the root
/// through failed children (the root itself when no child failed).
pub fn error_origin(nodes: &[SpanNode], root: usize) -> usize {
    let tree = Tree::new(nodes);
    let (mut best, mut best_depth) = (root, 0);
    let mut queue = VecDeque::from([(root, 0usize)]);
    while let Some((i, depth)) = queue.pop_front() {
        if depth > best_depth {
            (best, best_depth) = (i, depth);
        }
        if depth < nodes.len() {
            queue.extend(tree.children(i).filter(|&c| nodes[c].error).map(|c| (c, depth + 1)));
        }
    }
    best
}

/// The span the critical path of root `root` ends at: from the root, the longest child (the first
/// on a tie) while it takes at least [`SIGNIFICANT_SHARE`] of its parent's duration.
pub fn critical_path(nodes: &[SpanNode], root: usize) -> usize {
    let tree = Tree::new(nodes);
    let (num, den) = SIGNIFICANT_SHARE;
    let mut at = root;
    for _ in 0..nodes.len() {
        let longest = tree
            .children(at)
            .max_by_key(|&c| (nodes[c].duration_nanos, std::cmp::Reverse(c)));
        match longest {
            Some(c)
                if u128::from(nodes[c].duration_nanos) * u128::from(den)
                    >= u128::from(nodes[at].duration_nanos) * u128::from(num) =>
            {
                at = c
            }
            _ => break,
        }
    }
    at
}

/// What an incomplete trace blames: each missing expected service, then each span other than the
/// root `root` that lost its parent (no parent, or a parent not in the trace), once per service
/// and operation.
pub fn completeness_culprits(
    nodes: &[SpanNode],
    root: Option<usize>,
    services: &[Arc<str>],
    expected: &[Arc<str>],
    out: &mut Vec<Culprit>,
) {
    let empty: Arc<str> = Arc::from("");
    for e in expected {
        if !services.iter().any(|s| s == e) {
            out.push(Culprit {
                service: e.clone(),
                operation: empty.clone(),
                reason: BlameReason::MissingService,
            });
        }
    }
    let tree = Tree::new(nodes);
    for (i, n) in nodes.iter().enumerate() {
        if Some(i) == root || n.parent.is_some_and(|p| tree.contains(p)) {
            continue;
        }
        let culprit = Culprit {
            service: n.service.clone(),
            operation: n.operation.clone(),
            reason: BlameReason::OrphanSpan,
        };
        if !out.contains(&culprit) {
            out.push(culprit);
        }
    }
}

/// Trace health: who a bad trace of a `fragmentation`, `export_lag` or `clock_skew` SLO blames
/// (its `rule`) — the caller of each boundary that lost the context (the callee when the caller is
/// unknown), each skewed span's service, or the span received longest after its end.
pub fn health_culprits(
    nodes: &[SpanNode],
    rule: Blames,
    findings: &crate::health::Findings,
    max_lag_node: u32,
    out: &mut Vec<Culprit>,
) {
    match rule {
        Blames::LostContext => {
            for b in &findings.boundaries {
                let service = if &*b.from == crate::health::trace::UNKNOWN {
                    &b.to
                } else {
                    &b.from
                };
                out.push(Culprit {
                    service: service.clone(),
                    operation: Arc::from(format!("{} → {}", b.from, b.to)),
                    reason: BlameReason::LostContext,
                });
            }
        }
        Blames::SkewedSpans => {
            for (parent, child, how) in &findings.skews {
                let culprit = Culprit {
                    service: child.clone(),
                    operation: Arc::from(format!("{} ({parent} → {child})", how.as_str())),
                    reason: BlameReason::ClockSkew,
                };
                if !out.contains(&culprit) {
                    out.push(culprit);
                }
            }
        }
        Blames::LatestExport => {
            if let Some(n) = nodes.get(max_lag_node as usize) {
                out.push(culprit(n, BlameReason::ExportLag));
            }
        }
        Blames::CriticalPath | Blames::ErrorOrigin | Blames::MissingServices => {}
    }
}

/// The culprit a span stands for.
pub fn culprit(node: &SpanNode, reason: BlameReason) -> Culprit {
    Culprit {
        service: node.service.clone(),
        operation: node.operation.clone(),
        reason,
    }
}

// ---------------------------------------------------------------------------------------------
// Buckets.

fn floor(t: Timestamp, width_secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(t.unix_secs().div_euclid(width_secs) * width_secs)
}

/// Minute buckets for the last `MINUTE_TIER`, hour buckets up to the horizon; both sorted by start.
#[derive(Debug)]
struct Tiers<T> {
    minutes: VecDeque<(Timestamp, T)>,
    hours: VecDeque<(Timestamp, T)>,
}

impl<T: Default> Tiers<T> {
    fn new() -> Self {
        Tiers {
            minutes: VecDeque::new(),
            hours: VecDeque::new(),
        }
    }

    /// The bucket for an event at `at`, or `None` when it is past the horizon at `now`.
    fn bucket(&mut self, at: Timestamp, now: Timestamp, horizon: Duration) -> Option<&mut T> {
        let minute = floor(at, 60);
        let hour = floor(at, 3_600);
        let tier = if minute + MINUTE_TIER > now {
            (&mut self.minutes, minute)
        } else if hour + horizon > now {
            (&mut self.hours, hour)
        } else {
            return None;
        };
        Some(slot(tier.0, tier.1))
    }

    /// Folds minutes older than `MINUTE_TIER` into their hour, drops hours past the horizon.
    fn advance(&mut self, now: Timestamp, horizon: Duration, mut merge: impl FnMut(&mut T, T)) {
        while self
            .minutes
            .front()
            .is_some_and(|(start, _)| *start + MINUTE_TIER <= now)
        {
            let (start, bucket) = self.minutes.pop_front().expect("front exists");
            merge(slot(&mut self.hours, floor(start, 3_600)), bucket);
        }
        while self.hours.front().is_some_and(|(start, _)| *start + horizon <= now) {
            self.hours.pop_front();
        }
    }

    /// Buckets ending after `since`: every event at or after `since`, and at most one bucket's
    /// worth before it.
    fn since(&self, since: Timestamp) -> impl Iterator<Item = &T> {
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3_600);
        self.hours
            .iter()
            .filter(move |(s, _)| *s + hour > since)
            .chain(self.minutes.iter().filter(move |(s, _)| *s + minute > since))
            .map(|(_, b)| b)
    }

    fn len(&self) -> usize {
        self.minutes.len() + self.hours.len()
    }
}

fn slot<T: Default>(tier: &mut VecDeque<(Timestamp, T)>, start: Timestamp) -> &mut T {
    let i = match tier.binary_search_by_key(&start, |(s, _)| *s) {
        Ok(i) => i,
        Err(i) => {
            tier.insert(i, (start, T::default()));
            i
        }
    };
    &mut tier[i].1
}

/// Inserts `e` into `top` (worst first) if it is among the `TOP_K` worst.
fn offer_top(top: &mut Vec<ExemplarTrace>, e: ExemplarTrace, rank: Rank) {
    let pos = top.partition_point(|x| rank_key(rank, x) > rank_key(rank, &e));
    if pos < TOP_K {
        top.insert(pos, e);
        top.truncate(TOP_K);
    }
}

type Counts = Vec<(Culprit, u64)>;

/// Adds to a bucket's contributors; `Err` when the bucket is full and `c` is not in it.
fn add_blame(counts: &mut Counts, c: &Culprit, weight: u64) -> Result<(), Dropped> {
    if let Some((_, n)) = counts.iter_mut().find(|(k, _)| k == c) {
        *n += weight;
    } else if counts.len() < MAX_CONTRIBUTORS {
        counts.push((c.clone(), weight));
    } else {
        return Err(Dropped::BucketFull);
    }
    Ok(())
}

/// Merges `from` into `into`; keeps the `MAX_CONTRIBUTORS` largest, returns the weight dropped.
fn merge_blame(into: &mut Counts, from: Counts) -> u64 {
    for (c, n) in from {
        match into.iter_mut().find(|(k, _)| *k == c) {
            Some((_, m)) => *m += n,
            None => into.push((c, n)),
        }
    }
    if into.len() <= MAX_CONTRIBUTORS {
        return 0;
    }
    into.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    into.drain(MAX_CONTRIBUTORS..).map(|(_, n)| n).sum()
}

// ---------------------------------------------------------------------------------------------
// The store.

#[derive(Debug)]
struct SloInsights {
    rank: Rank,
    exemplars: Tiers<Vec<ExemplarTrace>>,
    contributors: Tiers<Counts>,
}

/// Exemplars and contributors of every SLO. See the module docs.
#[derive(Debug)]
pub struct Insights {
    slos: Vec<SloInsights>,
    horizon: Duration,
}

impl Insights {
    /// One entry per SLO, in config order, with how it ranks its bad traces.
    pub fn new(ranks: impl IntoIterator<Item = Rank>, horizon: Duration) -> Self {
        Insights {
            slos: ranks
                .into_iter()
                .map(|rank| SloInsights {
                    rank,
                    exemplars: Tiers::new(),
                    contributors: Tiers::new(),
                })
                .collect(),
            horizon,
        }
    }

    /// A config reload: SLO `k` of the new config takes the exemplars and blame of old SLO
    /// `from[k]` (same name and SLI), or starts empty with rank `ranks[k]`.
    pub fn remap(&mut self, from: &[Option<usize>], ranks: &[Rank]) {
        let mut old: Vec<Option<SloInsights>> = std::mem::take(&mut self.slos).into_iter().map(Some).collect();
        self.slos = from
            .iter()
            .zip(ranks)
            .map(|(f, &rank)| {
                f.and_then(|o| old.get_mut(o).and_then(Option::take))
                    .unwrap_or_else(|| SloInsights {
                        rank,
                        exemplars: Tiers::new(),
                        contributors: Tiers::new(),
                    })
            })
            .collect();
    }

    /// Offers a bad trace of SLO `slo` whose root ended at `at`.
    pub fn offer(&mut self, slo: usize, at: Timestamp, e: ExemplarTrace, now: Timestamp) -> Result<(), Dropped> {
        let s = &mut self.slos[slo];
        let top = s.exemplars.bucket(at, now, self.horizon).ok_or(Dropped::TooOld)?;
        offer_top(top, e, s.rank);
        Ok(())
    }

    /// Blames `c` for `weight` bad events of SLO `slo` whose root ended at `at`.
    pub fn blame(
        &mut self,
        slo: usize,
        at: Timestamp,
        c: &Culprit,
        weight: u64,
        now: Timestamp,
    ) -> Result<(), Dropped> {
        let bucket = self.slos[slo]
            .contributors
            .bucket(at, now, self.horizon)
            .ok_or(Dropped::TooOld)?;
        add_blame(bucket, c, weight)
    }

    /// Ages every SLO's buckets as of `now`; returns the weighted bad events whose contributor was
    /// dropped when hours filled up (`Dropped::BucketFull`).
    pub fn advance(&mut self, now: Timestamp) -> u64 {
        let mut dropped = 0;
        for s in &mut self.slos {
            let rank = s.rank;
            s.exemplars.advance(now, self.horizon, |into, from| {
                for e in from {
                    offer_top(into, e, rank);
                }
            });
            s.contributors
                .advance(now, self.horizon, |into, from| dropped += merge_blame(into, from));
        }
        dropped
    }

    /// The `limit` worst bad traces of SLO `slo` in buckets ending after `since`, worst first.
    pub fn exemplars(&self, slo: usize, since: Timestamp, limit: usize) -> Vec<ExemplarTrace> {
        let s = &self.slos[slo];
        let mut all: Vec<ExemplarTrace> = s.exemplars.since(since).flatten().copied().collect();
        all.sort_by_key(|e| std::cmp::Reverse(rank_key(s.rank, e)));
        all.truncate(limit);
        all
    }

    /// The `limit` largest contributors to SLO `slo`'s bad events in buckets ending after `since`,
    /// largest first (ties by service, operation, reason).
    pub fn contributors(&self, slo: usize, since: Timestamp, limit: usize) -> Vec<Blame> {
        let mut sum: HashMap<&Culprit, u64> = HashMap::new();
        for bucket in self.slos[slo].contributors.since(since) {
            for (c, n) in bucket {
                *sum.entry(c).or_default() += n;
            }
        }
        let mut all: Vec<Blame> = sum
            .into_iter()
            .map(|(c, n)| Blame {
                service: c.service.to_string(),
                operation: c.operation.to_string(),
                bad_events: n,
                reason: c.reason,
            })
            .collect();
        all.sort_by(|a, b| {
            (b.bad_events, &a.service, &a.operation, a.reason).cmp(&(a.bad_events, &b.service, &b.operation, b.reason))
        });
        all.truncate(limit);
        all
    }

    /// Buckets held over all SLOs (exemplar and contributor buckets), for tests and figures.
    pub fn buckets(&self) -> usize {
        self.slos.iter().map(|s| s.exemplars.len() + s.contributors.len()).sum()
    }
}

#[cfg(test)]
mod tests;
