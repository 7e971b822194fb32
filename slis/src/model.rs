//! The span and trace model: only what journeys, SLIs and completeness need.

use std::fmt;
use std::sync::Arc;

use crate::time::Timestamp;

/// The attribute naming a client span's callee (OpenTelemetry semantic conventions): trace
/// health names the service a call lost, and it is the one value `[privacy]` keeps by default.
pub const PEER_SERVICE: &str = "peer.service";

/// A 16-byte W3C trace id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl $t {
            /// True for the all-zero id, which OTLP and W3C reserve as "invalid / absent".
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }
        }
    };
}
hex_id!(TraceId);
hex_id!(SpanId);

/// The span kind, as OpenTelemetry defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// The span status code, as OpenTelemetry defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

/// An attribute value. Arrays and maps are not kept: no matcher reads them.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(Arc<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl AttrValue {
    /// A numeric view: integers, floats, and strings that parse as numbers (Zipkin tags are strings).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Int(i) => Some(*i as f64),
            AttrValue::Float(f) => Some(*f),
            AttrValue::Str(s) => s.trim().parse().ok(),
            AttrValue::Bool(_) => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One span, decoded from any wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a span that declares no parent.
    pub parent_span_id: Option<SpanId>,
    /// `service.name` of the span's resource.
    pub service: Arc<str>,
    pub name: Arc<str>,
    pub kind: SpanKind,
    pub start: Timestamp,
    pub end: Timestamp,
    pub status: StatusCode,
    /// The attributes a matcher may read (resource attributes are folded in, span ones win).
    pub attributes: Vec<(Arc<str>, AttrValue)>,
    /// Sampling weight: how many requests this span stands for (see [`sampling_weight`]).
    pub weight: u32,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }

    /// `end - start`, zero when the clock went backwards (the engine counts those before they get here).
    pub fn duration_nanos(&self) -> u64 {
        self.end.unix_nanos().saturating_sub(self.start.unix_nanos()).max(0) as u64
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }
}

/// The adjusted count of a sampled span, per DESIGN.md: OpenTelemetry's `tracestate` `ot=th:T`
/// (rejection threshold T, up to 14 hex digits, right-padded with zeros to 56 bits; the span was
/// kept with probability (2^56 − T) / 2^56) or else a `SampleRate` attribute (keep 1 in N);
/// otherwise 1. Rounded to the nearest integer, at least 1. Invalid values count as 1.
pub fn sampling_weight(tracestate: Option<&str>, sample_rate: Option<&AttrValue>) -> u32 {
    if let Some(w) = tracestate.and_then(threshold_weight) {
        return w;
    }
    match sample_rate.and_then(AttrValue::as_f64) {
        Some(n) if n >= 1.0 && n.is_finite() => n.round().min(u32::MAX as f64) as u32,
        _ => 1,
    }
}

fn threshold_weight(tracestate: &str) -> Option<u32> {
    let ot = tracestate
        .split(',')
        .find_map(|member| member.trim().strip_prefix("ot="))?;
    let th = ot.split(';').find_map(|kv| kv.strip_prefix("th:"))?;
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let threshold = u64::from_str_radix(th, 16).ok()? << (4 * (14 - th.len()));
    let kept = (1u64 << 56) - threshold; // threshold < 2^56, so kept ≥ 1
    let weight = (1u64 << 56) as f64 / kept as f64;
    Some(weight.round().clamp(1.0, u32::MAX as f64) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_weights() {
        let rate = |n: i64| AttrValue::Int(n);
        let cases: &[(Option<&str>, Option<AttrValue>, u32)] = &[
            (None, None, 1),
            (Some("ot=th:0"), None, 1),
            (Some("ot=th:8"), None, 2),
            (Some("ot=th:c"), None, 4),
            (Some("ot=th:e"), None, 8),
            (Some("ot=th:fd70a4"), None, 100), // the spec's 1% example
            (Some("vendor=x,ot=rv:abc;th:c"), None, 4),
            (Some("ot=th:c"), Some(rate(10)), 4), // the threshold wins
            (None, Some(rate(10)), 10),
            (None, Some(AttrValue::Str("20".into())), 20),
            (Some("ot=th:zz"), Some(rate(3)), 3), // invalid threshold falls back
            (Some("ot=th:ffffffffffffff"), None, u32::MAX),
            (None, Some(rate(0)), 1),
            (None, Some(rate(-5)), 1),
        ];
        for (ts, sr, want) in cases {
            assert_eq!(sampling_weight(*ts, sr.as_ref()), *want, "{ts:?} {sr:?}");
        }
    }
}
