//! What every wire format shares on the way to a [`Span`]: id checks, attribute filtering, resource
//! folding, the sampling weight, interning, and the count of rejected spans.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use slis::{AttrValue, Span, SpanId, SpanKind, StatusCode, Timestamp, TraceId, sampling_weight};

use super::wire::{WireValue, value_hash};
use super::{AttrKeys, Decoded};

/// `service.name` when the resource (or Zipkin's `localEndpoint`) has none, as the OTel SDKs say.
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";
const SERVICE_NAME: &[u8] = b"service.name";
/// Read for the weight whether or not it is a kept key.
const SAMPLE_RATE: &[u8] = b"SampleRate";
/// The longest service name, span name, attribute key or kept string value the engine holds:
/// longer ones are cut to their first `MAX_STRING_BYTES` (at a character boundary) and counted.
/// Names are kept for as long as the process runs (metrics labels, trace health), so a 10 MB
/// `service.name` must not become 10 MB of memory and of every /metrics scrape.
pub const MAX_STRING_BYTES: usize = 1024;

/// A span's ids, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ids {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
}

/// Everything of a span but its ids and attributes, borrowed from the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head<'a> {
    pub name: &'a [u8],
    pub kind: SpanKind,
    pub start: Timestamp,
    pub end: Timestamp,
    pub status: StatusCode,
    /// W3C `tracestate`, empty when absent.
    pub trace_state: &'a [u8],
}

/// What a resource gives each of its spans.
#[derive(Debug)]
pub(crate) struct Resource {
    service: Arc<str>,
    /// The kept resource attributes; a span attribute of the same key wins.
    attributes: Vec<(Arc<str>, AttrValue)>,
    sample_rate: Option<AttrValue>,
}

/// The spans of one request as they are built.
#[derive(Debug)]
pub(crate) struct Batch<'k, 'a> {
    keys: &'k AttrKeys,
    spans: Vec<Span>,
    rejected: u64,
    first_rejection: Option<String>,
    /// Strings cut to [`MAX_STRING_BYTES`].
    truncated: u64,
    /// Service names, span names and kept string values repeat across a request: one `Arc` each.
    /// (foldhash, through hashlink: a few times faster than SipHash on short strings, and the
    /// strings of one request need no defence against flooding beyond the body limit.)
    strings: HashMap<&'a [u8], Arc<str>, hashlink::DefaultHashBuilder>,
    /// The request's attribute value hashes by service and key, for attribute cardinality;
    /// `None` when `AttrKeys::watch_tags` is off.
    tags: Option<TagCollector<'a>>,
}

/// Collects a request's tags (see [`crate::health::Tag`]).
#[derive(Debug, Default)]
struct TagCollector<'a> {
    /// (service, by the address of its interned name; key) → index in `tags`.
    index: HashMap<(usize, &'a [u8]), usize, foldhash::fast::FixedState>,
    tags: crate::health::Tags,
}

impl<'k, 'a> Batch<'k, 'a> {
    pub fn new(keys: &'k AttrKeys, capacity: usize) -> Self {
        Batch {
            keys,
            spans: Vec::with_capacity(capacity),
            rejected: 0,
            first_rejection: None,
            truncated: 0,
            strings: HashMap::default(),
            tags: keys.watch_tags.then(TagCollector::default),
        }
    }

    /// Notes one attribute of `service` for the cardinality sketches.
    fn tag(&mut self, service: &Arc<str>, key: &'a [u8], value: WireValue<'a>) {
        let Some(collector) = &mut self.tags else { return };
        let Some(value) = value_hash(value) else { return };
        // The service is interned per request: its address names it within the request.
        let id = (Arc::as_ptr(service) as *const u8 as usize, key);
        if let Some(&i) = collector.index.get(&id) {
            collector.tags[i].values.push(value);
            return;
        }
        let key = self.intern(key);
        if let Some(collector) = &mut self.tags {
            collector.index.insert(id, collector.tags.len());
            collector.tags.push(crate::health::Tag {
                service: service.clone(),
                key,
                values: vec![value],
            });
        }
    }

    /// A resource from its attributes: `service.name`, the kept keys and `SampleRate`.
    pub fn resource(&mut self, attributes: impl IntoIterator<Item = (&'a [u8], WireValue<'a>)>) -> Resource {
        let mut service = None;
        let mut kept = Vec::new();
        let mut sample_rate = None;
        let mut all = Vec::new();
        for (key, value) in attributes {
            if key == SERVICE_NAME
                && let WireValue::Str(name) = value.resolve()
            {
                service = Some(self.intern(name));
            }
            if self.tags.is_some() && key != SERVICE_NAME {
                all.push((key, value));
            }
            self.keep(&mut kept, &mut sample_rate, key, value);
        }
        let service = service.unwrap_or_else(|| self.intern(UNKNOWN_SERVICE.as_bytes()));
        for (key, value) in all {
            self.tag(&service, key, value);
        }
        Resource {
            service,
            attributes: kept,
            sample_rate,
        }
    }

    /// A resource that is only a service name (Zipkin's `localEndpoint.serviceName`).
    pub fn service(&mut self, name: Option<&'a [u8]>) -> Resource {
        Resource {
            service: self.intern(name.unwrap_or(UNKNOWN_SERVICE.as_bytes())),
            attributes: Vec::new(),
            sample_rate: None,
        }
    }

    /// Adds a span, or counts it as rejected when its ids were invalid.
    pub fn push(
        &mut self,
        ids: Result<Ids, String>,
        resource: &Resource,
        head: Head<'a>,
        attributes: impl IntoIterator<Item = (&'a [u8], WireValue<'a>)>,
    ) {
        let ids = match ids {
            Ok(ids) => ids,
            Err(why) => {
                self.reject(|| format!("span {:?}: {why}", String::from_utf8_lossy(head.name)));
                return;
            }
        };
        let mut kept = Vec::new();
        let mut sample_rate = None;
        for (key, value) in attributes {
            self.tag(&resource.service, key, value);
            self.keep(&mut kept, &mut sample_rate, key, value);
        }
        for (key, value) in &resource.attributes {
            if !kept.iter().any(|(k, _)| Arc::ptr_eq(k, key)) {
                kept.push((key.clone(), value.clone()));
            }
        }
        let trace_state = std::str::from_utf8(head.trace_state).ok().filter(|s| !s.is_empty());
        let weight = sampling_weight(trace_state, sample_rate.as_ref().or(resource.sample_rate.as_ref()));
        let name = self.intern(head.name);
        self.spans.push(Span {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            parent_span_id: ids.parent_span_id,
            service: resource.service.clone(),
            name,
            kind: head.kind,
            start: head.start,
            end: head.end,
            status: head.status,
            attributes: kept,
            weight,
        });
    }

    pub fn finish(self) -> Decoded {
        Decoded {
            spans: self.spans,
            rejected: self.rejected,
            first_rejection: self.first_rejection,
            truncated: self.truncated,
            tags: self.tags.map(|c| c.tags).unwrap_or_default(),
        }
    }

    fn reject(&mut self, why: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(why());
        }
    }

    /// Keeps one attribute if its key is kept (a repeated key: the last one wins) and notes `SampleRate`.
    fn keep(
        &mut self,
        kept: &mut Vec<(Arc<str>, AttrValue)>,
        sample_rate: &mut Option<AttrValue>,
        key: &[u8],
        value: WireValue<'a>,
    ) {
        let keys = self.keys;
        let kept_key = keys.get(key);
        let is_rate = key == SAMPLE_RATE;
        if kept_key.is_none() && !is_rate {
            return;
        }
        let value = self.value(value.resolve());
        if is_rate {
            sample_rate.clone_from(&value);
        }
        if let (Some(key), Some(value)) = (kept_key, value) {
            match kept.iter_mut().find(|(k, _)| Arc::ptr_eq(k, key)) {
                Some(slot) => slot.1 = value,
                None => kept.push((key.clone(), value)),
            }
        }
    }

    fn value(&mut self, value: WireValue<'a>) -> Option<AttrValue> {
        Some(match value {
            WireValue::Str(s) => AttrValue::Str(self.intern(s)),
            WireValue::Int(i) => AttrValue::Int(i),
            WireValue::Double(d) => AttrValue::Float(d),
            WireValue::Bool(b) => AttrValue::Bool(b),
            WireValue::Other | WireValue::Encoded(_) => return None,
        })
    }

    /// One `Arc<str>` per distinct string in the request; invalid UTF-8 is replaced, not fatal;
    /// at most [`MAX_STRING_BYTES`] kept.
    fn intern(&mut self, bytes: &'a [u8]) -> Arc<str> {
        if let Some(s) = self.strings.get(bytes) {
            return s.clone();
        }
        let kept = if bytes.len() > MAX_STRING_BYTES {
            self.truncated += 1;
            &bytes[..utf8_prefix(bytes, MAX_STRING_BYTES)]
        } else {
            bytes
        };
        let s: Arc<str> = Arc::from(String::from_utf8_lossy(kept).as_ref());
        self.strings.insert(bytes, s.clone());
        s
    }
}

/// The length of the longest prefix of `bytes` within `max` that does not end inside a UTF-8
/// character (an invalid byte earlier on is left for the lossy conversion to replace).
fn utf8_prefix(bytes: &[u8], max: usize) -> usize {
    let head = &bytes[..max.min(bytes.len())];
    match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => head.len(),
    }
}

/// OTLP ids: 16 and 8 bytes, not all zero; an empty or all-zero parent means none.
pub(crate) fn otlp_ids(trace_id: &[u8], span_id: &[u8], parent_span_id: &[u8]) -> Result<Ids, String> {
    let trace_id = TraceId(fixed("trace id", trace_id)?);
    let span_id = SpanId(fixed("span id", span_id)?);
    let parent_span_id = match parent_span_id {
        p if p.iter().all(|b| *b == 0) => None,
        p => Some(SpanId(fixed("parent span id", p)?)),
    };
    Ok(Ids {
        trace_id,
        span_id,
        parent_span_id,
    })
}

fn fixed<const N: usize>(what: &str, bytes: &[u8]) -> Result<[u8; N], String> {
    if bytes.is_empty() {
        return Err(format!("missing {what}"));
    }
    let id: [u8; N] = bytes
        .try_into()
        .map_err(|_| format!("invalid {what} {}: {} bytes, want {N}", hex(bytes), bytes.len()))?;
    if id.iter().all(|b| *b == 0) {
        return Err(format!("invalid {what} {}: all zero", hex(bytes)));
    }
    Ok(id)
}

/// At most 32 bytes of an id in hex, for messages (an id can be any length on the wire).
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len().min(32) + 3);
    for b in bytes.iter().take(32) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > 32 {
        s.push('…');
    }
    s
}

/// Zipkin ids: a 16- or 32-hex-digit trace id (64-bit ones padded on the left with zeros), 16-hex-digit
/// span and parent ids, not all zero; an absent, empty or all-zero parent means none.
pub(crate) fn zipkin_ids(trace_id: &str, span_id: &str, parent_id: Option<&str>) -> Result<Ids, String> {
    let trace = match trace_id.len() {
        16 => hex_u64("trace id", trace_id).map(u128::from),
        32 => hex_digits("trace id", trace_id).and_then(|d| u128::from_str_radix(d, 16).map_err(|e| e.to_string())),
        0 => Err("missing trace id".to_owned()),
        n => Err(format!("invalid trace id {trace_id:?}: {n} hex digits, want 16 or 32")),
    }?;
    if trace == 0 {
        return Err(format!("invalid trace id {trace_id:?}: all zero"));
    }
    let span = zipkin_span_id("span id", span_id)?.ok_or_else(|| format!("invalid span id {span_id:?}: all zero"))?;
    let parent = match parent_id {
        None | Some("") => None,
        Some(p) => zipkin_span_id("parent id", p)?,
    };
    Ok(Ids {
        trace_id: TraceId(trace.to_be_bytes()),
        span_id: span,
        parent_span_id: parent,
    })
}

/// A 16-hex-digit id; `None` when all zero.
fn zipkin_span_id(what: &str, id: &str) -> Result<Option<SpanId>, String> {
    match id.len() {
        0 => Err(format!("missing {what}")),
        16 => Ok(Some(hex_u64(what, id)?)
            .filter(|v| *v != 0)
            .map(|v| SpanId(v.to_be_bytes()))),
        n => Err(format!("invalid {what} {id:?}: {n} hex digits, want 16")),
    }
}

fn hex_u64(what: &str, id: &str) -> Result<u64, String> {
    hex_digits(what, id).and_then(|d| u64::from_str_radix(d, 16).map_err(|e| e.to_string()))
}

/// `from_str_radix` also takes a sign: only hex digits are an id.
fn hex_digits<'s>(what: &str, id: &'s str) -> Result<&'s str, String> {
    match id.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(id),
        false => Err(format!("invalid {what} {id:?}: not hex")),
    }
}

/// Wire timestamps are unsigned; past `i64::MAX` ns (year 2262) they saturate and the pipeline's
/// clock checks reject them.
pub(crate) fn unix_nanos(nanos: u64) -> Timestamp {
    Timestamp::from_unix_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}
