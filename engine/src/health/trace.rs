//! What a closed trace says about the tracing pipeline: fragmentation (and which service boundary
//! lost the context) and clock skew. Pure functions over the assembler's [`SpanNode`]s.
//!
//! # Fragmentation
//!
//! The **primary root** is the earliest-starting parentless span (ties: the first to arrive); a
//! trace without a parentless span takes its earliest-starting orphan as its root (its parent
//! lies outside the trace: an uninstrumented caller in front, as completeness assumes). Every
//! other parentless span (an **extra root**) and every other span whose parent id is not in the
//! trace (an **orphan**) lost its context. Each is attributed to a boundary `caller → callee`:
//! the callee is its own service; the caller is the service of a CLIENT or PRODUCER span of the
//! trace that has no child and whose `peer.service` names the callee (the one whose interval
//! holds the lost span's start, else the first to arrive), or `unknown` when no span says so.
//!
//! A CLIENT or PRODUCER span without a child whose `peer.service` names another service that
//! reports spans to this engine (a **dangling call**) also lost the context — the callee started
//! a trace of its own (a service that drops `traceparent`): boundary `span's service →
//! peer.service`.
//!
//! A trace is **fragmented** when it has an extra root, an orphan or a dangling call. Each
//! boundary is counted once per trace.
//!
//! # Clock skew
//!
//! A span whose parent is in the trace is skewed when it starts more than the tolerance before
//! its parent (`starts_before_parent`), or ends more than the tolerance after it
//! (`ends_after_parent`; not checked under a PRODUCER parent or for a CONSUMER child, whose work
//! is asynchronous by nature). A span ending before it starts is skewed too
//! (`negative_duration`; its parent's service is `none` when it has no parent in the trace).
//! Each (parent service, child service, kind) is counted per span; a trace is skewed when any
//! span is.

use std::sync::Arc;

use slis::SpanKind;

use crate::assembler::SpanNode;

/// Up to this many spans a trace's parents are found by a scan.
const SCAN_LIMIT: usize = 32;

/// The caller of a lost context that no span names.
pub const UNKNOWN: &str = "unknown";
/// The "parent service" of a span without a parent in the trace.
pub const NONE: &str = "none";

/// A service boundary where the trace context was lost.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Boundary {
    /// The caller's service, or [`UNKNOWN`].
    pub from: Arc<str>,
    pub to: Arc<str>,
}

/// How a span's clock disagrees with its parent's (or its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkewKind {
    StartsBeforeParent,
    EndsAfterParent,
    NegativeDuration,
}

impl SkewKind {
    pub const ALL: [SkewKind; 3] = [
        SkewKind::StartsBeforeParent,
        SkewKind::EndsAfterParent,
        SkewKind::NegativeDuration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkewKind::StartsBeforeParent => "starts_before_parent",
            SkewKind::EndsAfterParent => "ends_after_parent",
            SkewKind::NegativeDuration => "negative_duration",
        }
    }
}

/// One skewed span: (parent service or [`NONE`], its service, how).
pub type Skew = (Arc<str>, Arc<str>, SkewKind);

/// What [`analyze`] found in one closed trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Extra roots and orphans (the primary root not included).
    pub lost_spans: u32,
    /// Dangling calls.
    pub dangling: u32,
    /// Each boundary once, sorted.
    pub boundaries: Vec<Boundary>,
    /// One entry per skewed span and kind.
    pub skews: Vec<Skew>,
}

impl Findings {
    pub fn fragmented(&self) -> bool {
        self.lost_spans > 0 || self.dangling > 0
    }

    pub fn skewed(&self) -> bool {
        !self.skews.is_empty()
    }
}

/// Buffers [`analyze_with`] reuses from one trace to the next (the hot path allocates nothing
/// for a healthy trace).
#[derive(Debug, Default)]
pub struct Scratch {
    ids: Vec<(slis::SpanId, u32)>,
    parent: Vec<Option<usize>>,
    has_child: Vec<bool>,
    used: Vec<bool>,
}

/// Analyzes a closed trace. `peers[k] = (node index, peer.service)` for the spans that carry
/// one; `reports(service)` says whether a service sends spans to this engine.
pub fn analyze(
    nodes: &[SpanNode],
    peers: &[(u32, Arc<str>)],
    tolerance_nanos: i64,
    reports: impl Fn(&str) -> bool,
) -> Findings {
    analyze_with(nodes, peers, tolerance_nanos, reports, &mut Scratch::default())
}

/// [`analyze`] with buffers kept across calls.
pub fn analyze_with(
    nodes: &[SpanNode],
    peers: &[(u32, Arc<str>)],
    tolerance_nanos: i64,
    reports: impl Fn(&str) -> bool,
    scratch: &mut Scratch,
) -> Findings {
    let mut out = Findings::default();
    let Scratch {
        ids,
        parent,
        has_child,
        used,
    } = scratch;
    // Span id → node index: a scan for small traces, a sorted index for large ones.
    ids.clear();
    if nodes.len() > SCAN_LIMIT {
        ids.extend(nodes.iter().enumerate().map(|(i, n)| (n.span_id, i as u32)));
        ids.sort_unstable();
    }
    let ids = &*ids;
    let find = |id: slis::SpanId| {
        if nodes.len() > SCAN_LIMIT {
            ids.binary_search_by(|(k, _)| k.cmp(&id))
                .ok()
                .map(|k| ids[k].1 as usize)
        } else {
            nodes.iter().position(|n| n.span_id == id)
        }
    };
    parent.clear();
    parent.extend(nodes.iter().map(|n| n.parent.and_then(find)));
    has_child.clear();
    has_child.resize(nodes.len(), false);
    for p in parent.iter().flatten() {
        has_child[*p] = true;
    }
    let end = |n: &SpanNode| n.start_nanos.saturating_add(n.duration_nanos as i64);
    let earliest = |pick: &dyn Fn(usize) -> bool| {
        (0..nodes.len())
            .filter(|&i| pick(i))
            .min_by_key(|&i| (nodes[i].start_nanos, i))
    };
    let primary = earliest(&|i| nodes[i].parent.is_none()).or_else(|| earliest(&|i| parent[i].is_none()));
    let peer_of = |i: usize| peers.iter().find(|(k, _)| *k as usize == i).map(|(_, p)| p);
    let calls = |n: &SpanNode| matches!(n.kind, SpanKind::Client | SpanKind::Producer);
    used.clear();
    used.resize(nodes.len(), false);

    for (i, n) in nodes.iter().enumerate() {
        if parent[i].is_some() || Some(i) == primary {
            continue;
        }
        out.lost_spans += 1;
        let callers = || {
            (0..nodes.len())
                .filter(|&c| calls(&nodes[c]) && !has_child[c] && peer_of(c).is_some_and(|p| **p == *n.service))
        };
        let holds = |c: usize| nodes[c].start_nanos <= n.start_nanos && n.start_nanos <= end(&nodes[c]);
        let caller = callers().find(|&c| holds(c)).or_else(|| callers().next());
        let from = match caller {
            Some(c) => {
                used[c] = true;
                nodes[c].service.clone()
            }
            None => Arc::from(UNKNOWN),
        };
        out.boundaries.push(Boundary {
            from,
            to: n.service.clone(),
        });
    }
    for (i, n) in nodes.iter().enumerate() {
        if used[i] || has_child[i] || !calls(n) {
            continue;
        }
        if let Some(peer) = peer_of(i)
            && **peer != *n.service
            && reports(peer)
        {
            out.dangling += 1;
            out.boundaries.push(Boundary {
                from: n.service.clone(),
                to: peer.clone(),
            });
        }
    }
    out.boundaries.sort();
    out.boundaries.dedup();

    for (i, n) in nodes.iter().enumerate() {
        let parent_service = |p: Option<usize>| p.map_or_else(|| Arc::from(NONE), |p| nodes[p].service.clone());
        if n.negative {
            out.skews
                .push((parent_service(parent[i]), n.service.clone(), SkewKind::NegativeDuration));
        }
        let Some(p) = parent[i] else { continue };
        let pn = &nodes[p];
        if n.start_nanos < pn.start_nanos.saturating_sub(tolerance_nanos) {
            out.skews
                .push((pn.service.clone(), n.service.clone(), SkewKind::StartsBeforeParent));
        }
        let asynchronous = pn.kind == SpanKind::Producer || n.kind == SpanKind::Consumer;
        if !asynchronous && end(n) > end(pn).saturating_add(tolerance_nanos) {
            out.skews
                .push((pn.service.clone(), n.service.clone(), SkewKind::EndsAfterParent));
        }
    }
    out
}
