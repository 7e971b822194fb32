//! Open traces as bytes: what a JetStream partition's consumer stores with each checkpoint
//! (`jetstream_open_traces`), so that after a crash or a takeover the traces open at the
//! checkpoint are open again, holding the same spans, roots and candidates, and are judged (and
//! blamed) exactly as they would have been. The ids of recently closed traces go along, so a late
//! span is still recognised as late.
//!
//! Format 2 (format 1, written before trace health, is still read: its spans restore with start
//! 0, kind unspecified, no export lag and no `peer.service`, so they are never judged skewed),
//! LEB128 varints throughout:
//! `1, n, n × journey name` then records: `1` an open trace (id, roots, root, candidate, spans),
//! `2` a recently closed trace (id, had a root). Names are strings (`len, bytes`); a span's
//! service and operation are interned per snapshot (`index << 1`, or `len << 1 | 1, bytes` the
//! first time); format 2 adds per span its kind (a byte), start (8 bytes LE) and a `negative`
//! flag bit, and per trace its largest export lag, the span that had it, and its `peer.service` list. Journeys are stored by name and mapped to the current config's indices on
//! restore: a journey that is gone reads as none (like a reload, see
//! [`Assembler::remap_journeys`]). A restored trace's idle time starts again at the restore.

use std::collections::HashMap;
use std::sync::Arc;

use slis::window::RootSample;
use slis::{SpanId, SpanKind, Timestamp, TraceId};

use super::{Assembler, Candidate, INDEX_THRESHOLD, OpenTrace, RootRef, SpanNode};
use crate::store::block::{Reader, put};

const FORMAT: u64 = 2;
/// Written before trace health: still read.
const FORMAT_1: u64 = 1;
const OPEN: u64 = 1;
const CLOSED: u64 = 2;

/// One snapshot being written: its bytes and the strings it has interned.
#[derive(Debug)]
pub struct SnapshotWriter {
    pub data: Vec<u8>,
    /// Interned names by the address of their shared `Arc<str>` (the decoder shares one per name).
    strings: HashMap<usize, u64>,
    /// Applied to each name before it is written: a snapshot is stored in the database.
    redactor: Option<Arc<slis::privacy::Redactor>>,
}

impl SnapshotWriter {
    /// Starts a snapshot; `journeys` names the journeys by index.
    pub fn new(journeys: &[String]) -> Self {
        let mut data = Vec::with_capacity(64);
        put(&mut data, FORMAT);
        put(&mut data, journeys.len() as u64);
        for j in journeys {
            put_str(&mut data, j);
        }
        SnapshotWriter {
            data,
            strings: HashMap::new(),
            redactor: None,
        }
    }

    /// Writes every service, operation and `peer.service` name as `redactor` shows it (`[privacy]`).
    pub fn redacting(mut self, redactor: Arc<slis::privacy::Redactor>) -> Self {
        self.redactor = Some(redactor);
        self
    }

    fn name(&mut self, s: &Arc<str>) {
        let key = Arc::as_ptr(s) as *const u8 as usize;
        match self.strings.get(&key) {
            Some(&i) => put(&mut self.data, i << 1),
            None => {
                let i = self.strings.len() as u64;
                self.strings.insert(key, i);
                let shown = match &self.redactor {
                    Some(r) => std::borrow::Cow::Owned(r.shown(s)),
                    None => std::borrow::Cow::Borrowed(&**s),
                };
                put(&mut self.data, (shown.len() as u64) << 1 | 1);
                self.data.extend_from_slice(shown.as_bytes());
            }
        }
    }

    fn open(&mut self, id: &TraceId, t: &OpenTrace) {
        put(&mut self.data, OPEN);
        self.data.extend_from_slice(&id.0);
        put(&mut self.data, u64::from(t.roots));
        match &t.root {
            None => self.data.push(0),
            Some(r) => {
                self.data.push(1);
                put(&mut self.data, r.journey.map_or(0, |j| j as u64 + 1));
                put_sample(&mut self.data, &r.sample);
            }
        }
        match t.candidate.as_deref() {
            None => self.data.push(0),
            Some(c) => {
                self.data.push(1);
                put(&mut self.data, c.journey as u64);
                self.data.extend_from_slice(&c.parent.0);
                put_sample(&mut self.data, &c.sample);
            }
        }
        put(&mut self.data, t.nodes.len() as u64);
        for n in &t.nodes {
            self.data.extend_from_slice(&n.span_id.0);
            self.data
                .push(u8::from(n.parent.is_some()) | u8::from(n.error) << 1 | u8::from(n.negative) << 2);
            if let Some(p) = n.parent {
                self.data.extend_from_slice(&p.0);
            }
            self.name(&n.service);
            self.name(&n.operation);
            put(&mut self.data, n.duration_nanos);
            self.data.push(kind_byte(n.kind));
            self.data.extend_from_slice(&n.start_nanos.to_le_bytes());
        }
        put(&mut self.data, t.max_lag_nanos);
        put(&mut self.data, u64::from(t.max_lag_node));
        put(&mut self.data, t.peers.len() as u64);
        for (i, peer) in &t.peers {
            put(&mut self.data, u64::from(*i));
            self.name(peer);
        }
    }

    fn closed(&mut self, id: &TraceId, had_root: bool) {
        put(&mut self.data, CLOSED);
        self.data.extend_from_slice(&id.0);
        self.data.push(u8::from(had_root));
    }
}

/// What a restore put back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRestored {
    pub open_traces: u64,
    pub spans: u64,
    pub closed_ids: u64,
    /// Open traces already open here (kept as they are).
    pub already_open: u64,
}

impl Assembler {
    /// Writes the open traces, then the recently closed ids, to `out[which(trace id)]` (none:
    /// left out), each kind in its current order.
    pub fn snapshot(&self, which: impl Fn(&TraceId) -> Option<usize>, out: &mut [SnapshotWriter]) {
        for (id, t) in self.open.iter() {
            if let Some(w) = which(id).and_then(|i| out.get_mut(i)) {
                w.open(id, t);
            }
        }
        for (id, &had_root) in self.recently_closed.iter() {
            if let Some(w) = which(id).and_then(|i| out.get_mut(i)) {
                w.closed(id, had_root);
            }
        }
    }

    /// Puts back the traces of a snapshot, open as of `now`; `journeys` is the current config's
    /// journey names by index. Nothing is restored from a snapshot that does not decode.
    pub fn restore(&mut self, data: &[u8], journeys: &[String], now: Timestamp) -> Result<SnapshotRestored, String> {
        let (open, closed) = decode(data, journeys)?;
        let mut out = SnapshotRestored::default();
        for (id, trace) in open {
            if self.open.contains_key(&id) {
                out.already_open += 1;
                continue;
            }
            out.open_traces += 1;
            out.spans += trace.nodes.len() as u64;
            self.buffered += trace.nodes.len();
            self.open.insert(
                id,
                OpenTrace {
                    last_seen: now,
                    ..trace
                },
            );
        }
        for (id, had_root) in closed {
            if !self.open.contains_key(&id) {
                out.closed_ids += 1;
                self.remember(id, had_root);
            }
        }
        Ok(out)
    }

    /// Forgets, without a verdict, every open trace and closed id for which `gone` holds (a
    /// partition handed to another instance, which restores them from its snapshot). Returns the
    /// open traces forgotten.
    pub fn forget(&mut self, gone: impl Fn(&TraceId) -> bool) -> usize {
        let ids: Vec<TraceId> = self.open.keys().filter(|id| gone(id)).copied().collect();
        for id in &ids {
            if let Some(t) = self.open.remove(id) {
                self.buffered -= t.nodes.len();
            }
        }
        self.recently_closed.retain(|id, _| !gone(id));
        ids.len()
    }
}

type Decoded = (Vec<(TraceId, OpenTrace)>, Vec<(TraceId, bool)>);

fn decode(data: &[u8], journeys: &[String]) -> Result<Decoded, String> {
    let mut r = Reader::new(data);
    let format = r.varint()?;
    if format != FORMAT && format != FORMAT_1 {
        return Err(format!("unknown open-trace snapshot format {format}"));
    }
    let n = r.varint()?;
    let mut map = Vec::new();
    for _ in 0..n {
        let name = get_str(&mut r)?;
        map.push(journeys.iter().position(|j| *j == name));
    }
    let journey = |i: u64| -> Result<Option<usize>, String> {
        map.get(i as usize)
            .copied()
            .ok_or_else(|| format!("journey {i} of {} in the snapshot", map.len()))
    };
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut open = Vec::new();
    let mut closed = Vec::new();
    while !r.done() {
        match r.varint()? {
            OPEN => {
                let id = trace_id(&mut r)?;
                let roots = u32::try_from(r.varint()?).map_err(|e| e.to_string())?;
                let root = match flag(&mut r)? {
                    false => None,
                    true => {
                        let j = r.varint()?;
                        let journey = if j == 0 { None } else { journey(j - 1)? };
                        Some(RootRef {
                            journey,
                            sample: get_sample(&mut r)?,
                        })
                    }
                };
                let candidate = match flag(&mut r)? {
                    false => None,
                    true => {
                        let j = journey(r.varint()?)?;
                        let parent = span_id(&mut r)?;
                        let sample = get_sample(&mut r)?;
                        j.map(|journey| {
                            Box::new(Candidate {
                                journey,
                                parent,
                                sample,
                            })
                        })
                    }
                };
                let count = r.varint()? as usize;
                let mut nodes = Vec::with_capacity(count.min(1 << 16));
                for _ in 0..count {
                    let id = span_id(&mut r)?;
                    let flags = r.bytes(1)?[0];
                    let parent = if flags & 1 == 1 { Some(span_id(&mut r)?) } else { None };
                    let service = get_name(&mut r, &mut names)?;
                    let operation = get_name(&mut r, &mut names)?;
                    let duration_nanos = r.varint()?;
                    let (kind, start_nanos) = if format == FORMAT_1 {
                        (SpanKind::Unspecified, 0)
                    } else {
                        let kind = span_kind(r.bytes(1)?[0])?;
                        (kind, i64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes")))
                    };
                    nodes.push(SpanNode {
                        span_id: id,
                        parent,
                        service,
                        operation,
                        start_nanos,
                        duration_nanos,
                        kind,
                        error: flags & 2 == 2,
                        negative: flags & 4 == 4,
                    });
                }
                let (mut max_lag_nanos, mut max_lag_node, mut peers) = (0, 0, Vec::new());
                if format != FORMAT_1 {
                    max_lag_nanos = r.varint()?;
                    max_lag_node = u32::try_from(r.varint()?).map_err(|e| e.to_string())?;
                    for _ in 0..r.varint()? {
                        let i = u32::try_from(r.varint()?).map_err(|e| e.to_string())?;
                        if i as usize >= nodes.len() {
                            return Err(format!("peer of span {i} of {}", nodes.len()));
                        }
                        peers.push((i, get_name(&mut r, &mut names)?));
                    }
                }
                let index =
                    (nodes.len() > INDEX_THRESHOLD).then(|| Box::new(nodes.iter().map(|n| n.span_id).collect()));
                open.push((
                    id,
                    OpenTrace {
                        last_seen: Timestamp::EPOCH,
                        nodes,
                        index,
                        root,
                        roots,
                        candidate,
                        max_lag_nanos,
                        max_lag_node,
                        peers,
                    },
                ));
            }
            CLOSED => {
                let id = trace_id(&mut r)?;
                closed.push((id, flag(&mut r)?));
            }
            other => return Err(format!("unknown record {other} in an open-trace snapshot")),
        }
    }
    Ok((open, closed))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> Result<String, String> {
    let len = r.varint()? as usize;
    let bytes = r.bytes(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("a name that is not UTF-8: {e}"))
}

fn get_name(r: &mut Reader<'_>, names: &mut Vec<Arc<str>>) -> Result<Arc<str>, String> {
    let v = r.varint()?;
    if v & 1 == 0 {
        return names
            .get((v >> 1) as usize)
            .cloned()
            .ok_or_else(|| format!("name {} of {} in the snapshot", v >> 1, names.len()));
    }
    let bytes = r.bytes((v >> 1) as usize)?;
    let s: Arc<str> = std::str::from_utf8(bytes)
        .map_err(|e| format!("a name that is not UTF-8: {e}"))?
        .into();
    names.push(s.clone());
    Ok(s)
}

fn put_sample(out: &mut Vec<u8>, s: &RootSample) {
    out.extend_from_slice(&s.at.unix_nanos().to_le_bytes());
    put(out, s.latency_nanos);
    out.push(u8::from(s.error));
    put(out, u64::from(s.weight));
}

fn get_sample(r: &mut Reader<'_>) -> Result<RootSample, String> {
    let at = i64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes"));
    Ok(RootSample {
        at: Timestamp::from_unix_nanos(at),
        latency_nanos: r.varint()?,
        error: flag(r)?,
        weight: u32::try_from(r.varint()?).map_err(|e| format!("a weight over u32: {e}"))?,
    })
}

fn kind_byte(kind: SpanKind) -> u8 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn span_kind(b: u8) -> Result<SpanKind, String> {
    Ok(match b {
        0 => SpanKind::Unspecified,
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        b => return Err(format!("a span kind byte {b}")),
    })
}

fn flag(r: &mut Reader<'_>) -> Result<bool, String> {
    match r.bytes(1)?[0] {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(format!("a flag byte {b}")),
    }
}

fn trace_id(r: &mut Reader<'_>) -> Result<TraceId, String> {
    Ok(TraceId(r.bytes(16)?.try_into().expect("16 bytes")))
}

fn span_id(r: &mut Reader<'_>) -> Result<SpanId, String> {
    Ok(SpanId(r.bytes(8)?.try_into().expect("8 bytes")))
}
