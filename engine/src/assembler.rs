//! The trace assembler: buffers spans by trace id until a trace has been idle for `trace_idle`,
//! then hands it over, closed, with what completeness needs (services, roots, orphans) and what
//! blame needs (each span's parent, service, operation, duration and whether it failed).
//!
//! Pure data structure: the clock is an argument, nothing here spawns or sleeps. Memory is bounded
//! by the caller, who evicts the least recently active traces when `buffered_spans` is over its bound.
//! Traces are kept in order of last activity (a linked hash map), so closing idle traces and
//! evicting the oldest both pop from the front.

mod snapshot;

pub use snapshot::{SnapshotRestored, SnapshotWriter};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hashlink::LinkedHashMap;
use slis::window::RootSample;
use slis::{Span, SpanId, SpanKind, Timestamp, TraceId};

/// Past this many spans a trace indexes its span ids in a set, so duplicate checks stay O(1).
const INDEX_THRESHOLD: usize = 32;

/// What happened to one span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    Added,
    /// The trace already holds a span with this id (an exporter's retry): ignored.
    Duplicate,
    /// The trace was closed (or evicted) recently: counted, not added, never recounts the trace.
    /// `had_root`: the trace held a parentless root, so a late root is a repeat, not a new request.
    Late {
        had_root: bool,
    },
}

/// A span of a journey whose parent may lie outside the trace (an uninstrumented caller): if, when
/// the trace closes, that parent is missing and the trace has no parentless root, it is the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub journey: usize,
    pub parent: SpanId,
    pub sample: RootSample,
}

/// The root recorded on arrival (fast path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootRef {
    /// `None` when the root matched no journey.
    pub journey: Option<usize>,
    /// As recorded (`error` false when no journey judged it).
    pub sample: RootSample,
}

/// What the assembler keeps of each buffered span: 72 bytes (a test holds the bound), the names
/// shared `Arc<str>`s from the decoder, not copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanNode {
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: Arc<str>,
    /// The span name.
    pub operation: Arc<str>,
    /// Start, ns since the epoch (clock skew is judged on it).
    pub start_nanos: i64,
    /// 0 when the span ended before it started (`negative`).
    pub duration_nanos: u64,
    pub kind: SpanKind,
    /// The span says it failed ([`slis::journey::says_failed`]).
    pub error: bool,
    /// The span ended before it started (its duration was clamped to 0).
    pub negative: bool,
}

#[derive(Debug)]
struct OpenTrace {
    last_seen: Timestamp,
    nodes: Vec<SpanNode>,
    /// Boxed: only traces past `INDEX_THRESHOLD` spans have one, and the box keeps every other
    /// open trace 40 bytes smaller (8 instead of 48 for an empty `Option<HashSet>`).
    #[allow(clippy::box_collection)]
    index: Option<Box<HashSet<SpanId>>>,
    root: Option<RootRef>,
    roots: u32,
    /// Boxed for the same reason: rare (a journey entry span with a parent).
    candidate: Option<Box<Candidate>>,
    /// The largest receive time − end time of its spans (export lag), 0 when none was late,
    /// and the node that had it.
    max_lag_nanos: u64,
    max_lag_node: u32,
    /// (node index, `peer.service`) of the CLIENT/PRODUCER spans that name their callee.
    peers: Vec<(u32, Arc<str>)>,
}

/// A trace handed over when it closes.
#[derive(Debug, PartialEq)]
pub struct ClosedTrace {
    pub trace_id: TraceId,
    /// The first parentless root, as recorded on arrival.
    pub root: Option<RootRef>,
    /// Parentless spans.
    pub roots: u32,
    /// Spans whose parent is not in the trace.
    pub orphans: u32,
    /// When there is no parentless root and exactly one orphan, and that orphan matched a journey:
    /// the root whose parent lies outside the trace. It was not recorded on arrival.
    pub remote_root: Option<Candidate>,
    /// Distinct services, in order of appearance.
    pub services: Vec<Arc<str>>,
    /// Every span, in arrival order.
    pub nodes: Vec<SpanNode>,
    /// The largest export lag of its spans, and the node that had it.
    pub max_lag_nanos: u64,
    pub max_lag_node: u32,
    /// (node index, `peer.service`) of the spans that carry one.
    pub peers: Vec<(u32, Arc<str>)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Assembler {
    open: LinkedHashMap<TraceId, OpenTrace>,
    /// Recently closed trace ids, and whether each held a parentless root.
    recently_closed: LinkedHashMap<TraceId, bool>,
    recent_capacity: usize,
    buffered: usize,
    idle: Duration,
    /// Whether `peer.service` values are kept (`[privacy] attribute_allow_list`).
    pub keep_peer_service: bool,
}

impl Assembler {
    /// `recent_capacity`: how many closed trace ids are remembered to recognise late spans.
    pub fn new(idle: Duration, recent_capacity: usize) -> Self {
        Assembler {
            open: LinkedHashMap::new(),
            recently_closed: LinkedHashMap::new(),
            recent_capacity: recent_capacity.max(1),
            buffered: 0,
            idle,
            keep_peer_service: true,
        }
    }

    pub fn buffered_spans(&self) -> usize {
        self.buffered
    }

    pub fn open_traces(&self) -> usize {
        self.open.len()
    }

    /// Adds a span. `root` is the fast-path record of a parentless span (its journey, if any);
    /// `candidate` a journey match of a span with a parent.
    pub fn add(&mut self, span: &Span, now: Timestamp, root: Option<RootRef>, candidate: Option<Candidate>) -> Arrival {
        let lag = u64::try_from(now.unix_nanos().saturating_sub(span.end.unix_nanos())).unwrap_or(0);
        if let Some(trace) = self.open.to_back(&span.trace_id) {
            trace.last_seen = now;
            if trace.contains(span.span_id) {
                return Arrival::Duplicate;
            }
            if lag > trace.max_lag_nanos {
                trace.max_lag_nanos = lag;
                trace.max_lag_node = trace.nodes.len() as u32;
            }
            trace.push(span, root, candidate, self.keep_peer_service);
            self.buffered += 1;
            return Arrival::Added;
        }
        if let Some(&had_root) = self.recently_closed.get(&span.trace_id) {
            return Arrival::Late { had_root };
        }
        let mut trace = OpenTrace {
            last_seen: now,
            nodes: Vec::with_capacity(8),
            index: None,
            root: None,
            roots: 0,
            candidate: None,
            max_lag_nanos: lag,
            max_lag_node: 0,
            peers: Vec::new(),
        };
        trace.push(span, root, candidate, self.keep_peer_service);
        self.open.insert(span.trace_id, trace);
        self.buffered += 1;
        Arrival::Added
    }

    /// Closes every trace idle for `trace_idle` at `now`.
    pub fn close_idle(&mut self, now: Timestamp, out: &mut Vec<ClosedTrace>) {
        while let Some((_, t)) = self.open.front() {
            if t.last_seen + self.idle > now {
                break;
            }
            let (id, trace) = self.open.pop_front().expect("front exists");
            out.push(self.finish(id, trace));
        }
    }

    /// Evicts the least recently active traces until at most `max_spans` are buffered; returns how
    /// many traces went, and adds the journey roots they held to `roots`. Evicted traces get no
    /// completeness verdict and no blame; later spans of theirs are late.
    pub fn evict_over(&mut self, max_spans: usize, roots: &mut Vec<RootRef>) -> usize {
        let mut evicted = 0;
        while self.buffered > max_spans {
            let Some((id, trace)) = self.open.pop_front() else {
                break;
            };
            self.buffered -= trace.nodes.len();
            self.remember(id, trace.roots > 0);
            roots.extend(trace.root.filter(|r| r.journey.is_some()));
            evicted += 1;
        }
        evicted
    }

    /// A config reload renumbered the journeys: `map[old]` is a journey's new index, `None` when
    /// it is gone. Open traces keep their spans; a root whose journey is gone closes as
    /// `no_journey` (it was counted on arrival under the old config), and a candidate entry span
    /// of a gone journey is forgotten.
    pub fn remap_journeys(&mut self, map: &[Option<usize>]) {
        let to = |j: usize| map.get(j).copied().flatten();
        for (_, trace) in self.open.iter_mut() {
            if let Some(root) = &mut trace.root {
                root.journey = root.journey.and_then(to);
            }
            match trace.candidate.as_deref_mut().map(|c| (to(c.journey), c)) {
                Some((Some(j), c)) => c.journey = j,
                Some((None, _)) => trace.candidate = None,
                None => {}
            }
        }
    }

    /// Closes everything now (shutdown, end of a replay).
    pub fn close_all(&mut self, out: &mut Vec<ClosedTrace>) {
        while let Some((id, trace)) = self.open.pop_front() {
            out.push(self.finish(id, trace));
        }
    }

    /// Closes now every open trace for which `keep` does not hold.
    pub fn close_unless(&mut self, keep: impl Fn(&TraceId) -> bool, out: &mut Vec<ClosedTrace>) {
        let ids: Vec<TraceId> = self.open.keys().filter(|id| !keep(id)).copied().collect();
        for id in ids {
            let trace = self.open.remove(&id).expect("listed");
            out.push(self.finish(id, trace));
        }
    }

    fn remember(&mut self, id: TraceId, had_root: bool) {
        self.recently_closed.insert(id, had_root);
        while self.recently_closed.len() > self.recent_capacity {
            self.recently_closed.pop_front();
        }
    }

    fn finish(&mut self, trace_id: TraceId, trace: OpenTrace) -> ClosedTrace {
        self.buffered -= trace.nodes.len();
        self.remember(trace_id, trace.roots > 0);
        // Small traces scan their few nodes; large ones already index their span ids.
        let orphans = trace
            .nodes
            .iter()
            .filter(|n| n.parent.is_some_and(|p| !trace.contains(p)))
            .count() as u32;
        let remote_root = match (trace.roots, orphans, trace.candidate.as_deref()) {
            (0, 1, Some(c)) if !trace.contains(c.parent) => Some(*c),
            _ => None,
        };
        let mut services: Vec<Arc<str>> = Vec::with_capacity(4);
        for n in &trace.nodes {
            if !services.iter().any(|s| Arc::ptr_eq(s, &n.service) || **s == *n.service) {
                services.push(n.service.clone());
            }
        }
        ClosedTrace {
            trace_id,
            root: trace.root,
            roots: trace.roots,
            orphans,
            remote_root,
            services,
            nodes: trace.nodes,
            max_lag_nanos: trace.max_lag_nanos,
            max_lag_node: trace.max_lag_node,
            peers: trace.peers,
        }
    }
}

impl OpenTrace {
    fn contains(&self, id: SpanId) -> bool {
        match &self.index {
            Some(index) => index.contains(&id),
            None => self.nodes.iter().any(|n| n.span_id == id),
        }
    }

    fn push(&mut self, span: &Span, root: Option<RootRef>, candidate: Option<Candidate>, keep_peer_service: bool) {
        if span.parent_span_id.is_none() {
            self.roots += 1;
            if self.root.is_none() {
                self.root = root;
            }
        }
        if self.candidate.is_none() {
            self.candidate = candidate.map(Box::new);
        }
        // Only calls name a callee (fragmentation's caller and dangling-call rules).
        if keep_peer_service
            && matches!(span.kind, SpanKind::Client | SpanKind::Producer)
            && let Some(slis::AttrValue::Str(peer)) = span.attribute(slis::PEER_SERVICE)
        {
            self.peers.push((self.nodes.len() as u32, peer.clone()));
        }
        self.nodes.push(SpanNode {
            span_id: span.span_id,
            parent: span.parent_span_id,
            service: span.service.clone(),
            operation: span.name.clone(),
            start_nanos: span.start.unix_nanos(),
            duration_nanos: span.duration_nanos(),
            kind: span.kind,
            error: slis::journey::says_failed(span),
            negative: span.end < span.start,
        });
        if let Some(index) = &mut self.index {
            index.insert(span.span_id);
        } else if self.nodes.len() > INDEX_THRESHOLD {
            self.index = Some(Box::new(self.nodes.iter().map(|n| n.span_id).collect()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slis::StatusCode;

    fn span(trace: u8, id: u8, parent: Option<u8>, service: &str) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.into(),
            name: "op".into(),
            kind: SpanKind::Server,
            start: Timestamp::from_unix_secs(100),
            end: Timestamp::from_unix_secs(101),
            status: StatusCode::Unset,
            attributes: vec![],
            weight: 1,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    const IDLE: Duration = Duration::from_secs(30);

    #[test]
    fn a_trace_closes_idle_after_its_last_span() {
        let mut a = Assembler::new(IDLE, 100);
        let root = RootRef {
            journey: Some(0),
            sample: RootSample {
                at: at(101),
                latency_nanos: 1_000_000_000,
                error: false,
                weight: 1,
            },
        };
        assert_eq!(
            a.add(&span(1, 1, None, "frontend"), at(0), Some(root), None),
            Arrival::Added
        );
        assert_eq!(
            a.add(&span(1, 2, Some(1), "checkout"), at(10), None, None),
            Arrival::Added
        );
        assert_eq!(
            a.add(&span(1, 3, Some(2), "payment"), at(20), None, None),
            Arrival::Added
        );
        assert_eq!((a.buffered_spans(), a.open_traces()), (3, 1));
        let mut out = vec![];
        a.close_idle(at(49), &mut out);
        assert!(out.is_empty(), "idle counts from the last span");
        a.close_idle(at(50), &mut out);
        let services: Vec<&str> = out[0].services.iter().map(|s| &**s).collect();
        assert_eq!(services, ["frontend", "checkout", "payment"]);
        assert_eq!(
            (out[0].root, out[0].roots, out[0].orphans, out[0].nodes.len()),
            (Some(root), 1, 0, 3)
        );
        assert_eq!((a.buffered_spans(), a.open_traces()), (0, 0));
        // A late span is counted as late and never reopens (or recounts) the trace.
        assert_eq!(
            a.add(&span(1, 4, Some(1), "payment"), at(60), None, None),
            Arrival::Late { had_root: true }
        );
        assert_eq!(a.open_traces(), 0);
    }

    #[test]
    fn peer_service_is_kept_only_when_the_allow_list_names_it() {
        for keep in [true, false] {
            let mut a = Assembler::new(IDLE, 100);
            a.keep_peer_service = keep;
            let mut call = span(1, 2, Some(1), "shop");
            call.kind = SpanKind::Client;
            call.attributes = vec![("peer.service".into(), slis::AttrValue::Str("ledger".into()))];
            a.add(&span(1, 1, None, "shop"), at(0), None, None);
            a.add(&call, at(0), None, None);
            let mut out = vec![];
            a.close_all(&mut out);
            let peers: Vec<(u32, &str)> = out[0].peers.iter().map(|(i, p)| (*i, &**p)).collect();
            let want: &[(u32, &str)] = if keep { &[(1, "ledger")] } else { &[] };
            assert_eq!(peers, want, "keep_peer_service = {keep}");
        }
    }

    #[test]
    fn a_snapshot_stores_names_redacted() {
        let mut a = Assembler::new(IDLE, 100);
        let mut root = span(1, 1, None, "shop");
        root.name = "POST /checkout?user=alice@example.com".into();
        let mut call = span(1, 2, Some(1), "bob@example.org");
        call.kind = SpanKind::Client;
        call.attributes = vec![("peer.service".into(), slis::AttrValue::Str("carol@example.net".into()))];
        a.add(&root, at(0), None, None);
        a.add(&call, at(0), None, None);
        let redactor = Arc::new(slis::privacy::Redactor::default());
        let mut writers = [super::SnapshotWriter::new(&[]).redacting(redactor.clone())];
        a.snapshot(|_| Some(0), &mut writers);
        let bytes = String::from_utf8_lossy(&writers[0].data).into_owned();
        assert!(!bytes.contains("example"), "{bytes:?}");
        // Restored, the names are what was stored.
        let mut b = Assembler::new(IDLE, 100);
        b.restore(&writers[0].data, &[], at(0)).unwrap();
        let mut out = vec![];
        b.close_all(&mut out);
        let names: Vec<(&str, &str)> = out[0].nodes.iter().map(|n| (&*n.service, &*n.operation)).collect();
        assert_eq!(names, [("shop", "POST /checkout?user=[email]"), ("[email]", "op")]);
        assert_eq!(&*out[0].peers[0].1, "[email]");
        assert_eq!(redactor.counts(), [("email", 3), ("bearer_token", 0)]);
    }

    #[test]
    fn duplicates_are_ignored_small_and_large() {
        let mut a = Assembler::new(IDLE, 100);
        assert_eq!(a.add(&span(1, 1, None, "f"), at(0), None, None), Arrival::Added);
        assert_eq!(a.add(&span(1, 1, None, "f"), at(1), None, None), Arrival::Duplicate);
        for id in 2..=100u8 {
            assert_eq!(a.add(&span(1, id, Some(1), "f"), at(1), None, None), Arrival::Added);
        }
        assert_eq!(a.add(&span(1, 77, Some(1), "f"), at(1), None, None), Arrival::Duplicate);
        assert_eq!(a.buffered_spans(), 100);
        let mut out = vec![];
        a.close_all(&mut out);
        assert_eq!((out[0].roots, out[0].orphans, out[0].nodes.len()), (1, 0, 100));
    }

    #[test]
    fn orphans_roots_and_remote_parents() {
        let mut a = Assembler::new(IDLE, 100);
        // Trace 1: two parentless roots. Trace 2: a span whose parent never came.
        a.add(&span(1, 1, None, "a"), at(0), None, None);
        a.add(&span(1, 2, None, "b"), at(0), None, None);
        a.add(&span(2, 1, None, "a"), at(0), None, None);
        a.add(&span(2, 3, Some(2), "c"), at(0), None, None);
        // Trace 3: no parentless span; the journey's entry span has a parent outside the trace.
        let sample = RootSample {
            at: at(101),
            latency_nanos: 1_000,
            error: false,
            weight: 1,
        };
        let c = Candidate {
            journey: 0,
            parent: SpanId([9; 8]),
            sample,
        };
        a.add(&span(3, 1, Some(9), "frontend"), at(0), None, Some(c));
        a.add(&span(3, 2, Some(1), "checkout"), at(0), None, None);
        let mut out = vec![];
        a.close_idle(at(30), &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|t| (t.trace_id.0[0], t.roots, t.orphans, t.remote_root.is_some()))
            .collect();
        assert_eq!(got, [(1, 2, 0, false), (2, 1, 1, false), (3, 0, 1, true)]);
    }

    #[test]
    fn eviction_takes_the_least_recently_active_first() {
        let mut a = Assembler::new(IDLE, 100);
        for t in 1..=5u8 {
            a.add(&span(t, 1, None, "f"), at(t as i64), None, None);
            a.add(&span(t, 2, Some(1), "f"), at(t as i64), None, None);
        }
        a.add(&span(1, 3, Some(1), "f"), at(10), None, None); // trace 1 active again
        assert_eq!(a.buffered_spans(), 11);
        let mut roots = vec![];
        assert_eq!(a.evict_over(6, &mut roots), 3); // traces 2, 3, 4
        assert!(roots.is_empty(), "no journey roots among them");
        assert_eq!(a.buffered_spans(), 5);
        assert_eq!(
            a.add(&span(2, 9, Some(1), "f"), at(11), None, None),
            Arrival::Late { had_root: true }
        );
        let mut out = vec![];
        a.close_all(&mut out);
        let left: Vec<u8> = out.iter().map(|t| t.trace_id.0[0]).collect();
        assert_eq!(left, [5, 1]);
    }

    #[test]
    fn recently_closed_memory_is_bounded() {
        let mut a = Assembler::new(IDLE, 2);
        let mut out = vec![];
        for t in 1..=3u8 {
            a.add(&span(t, 1, None, "f"), at(0), None, None);
        }
        a.close_all(&mut out);
        assert_eq!(
            a.add(&span(3, 2, Some(1), "f"), at(1), None, None),
            Arrival::Late { had_root: true }
        );
        // Trace 1 is forgotten: its span starts a new (rootless) trace rather than growing memory.
        assert_eq!(a.add(&span(1, 2, Some(1), "f"), at(1), None, None), Arrival::Added);
    }

    #[test]
    fn a_buffered_span_keeps_what_blame_and_health_need_in_72_bytes() {
        // Was 40 bytes (id, parent, service) before blame, 64 before trace health (start, kind,
        // negative); the flood test in tests/load.rs holds the whole per-span bound.
        assert_eq!(std::mem::size_of::<SpanNode>(), 72);
        let mut a = Assembler::new(IDLE, 100);
        let mut failed = span(1, 2, Some(1), "payment");
        failed.name = "charge".into();
        failed.status = StatusCode::Error;
        failed.end = at(103);
        a.add(&failed, at(0), None, None);
        let mut out = vec![];
        a.close_all(&mut out);
        assert_eq!(
            out[0].nodes,
            [SpanNode {
                span_id: SpanId([2; 8]),
                parent: Some(SpanId([1; 8])),
                service: "payment".into(),
                operation: "charge".into(),
                start_nanos: 100_000_000_000,
                duration_nanos: 3_000_000_000,
                kind: SpanKind::Server,
                error: true,
                negative: false,
            }]
        );
    }
}
