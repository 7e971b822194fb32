//! The span and trace model: only what journeys, SLIs and completeness need.

use std::fmt;
use std::sync::Arc;

use crate::time::Timestamp;

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
