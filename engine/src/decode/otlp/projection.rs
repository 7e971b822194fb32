//! A prost projection of `ExportTraceServiceRequest`: only the fields the engine reads, with the tags
//! of opentelemetry-proto's `trace.proto`, `common.proto` and `resource.proto`. prost skips every
//! other field (scopes, events, links, flags, dropped counts, array/map/bytes values) without
//! allocating for it.
//!
//! Strings and ids are `Bytes` slices of the request body (proto `string` and `bytes` share the wire
//! type): decoding copies nothing, and only what a span keeps becomes an `Arc<str>`.

use bytes::Bytes;

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `opentelemetry.proto.trace.v1.ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Resource {
    /// Each `KeyValue` still encoded (see [`key_value`]).
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub attributes: Vec<Bytes>,
}

/// `opentelemetry.proto.trace.v1.ScopeSpans` (the scope itself, tag 1, is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

/// `opentelemetry.proto.trace.v1.Span`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Span {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    /// `string trace_state`.
    #[prost(bytes = "bytes", tag = "3")]
    pub trace_state: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub parent_span_id: Bytes,
    /// `string name`.
    #[prost(bytes = "bytes", tag = "5")]
    pub name: Bytes,
    /// `SpanKind kind` (an open enum: kept as the number).
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// Each `KeyValue` still encoded (see [`key_value`]).
    #[prost(bytes = "bytes", repeated, tag = "9")]
    pub attributes: Vec<Bytes>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `opentelemetry.proto.trace.v1.Status` (the message, tag 2, is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Status {
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `opentelemetry.proto.common.v1.KeyValue`, kept encoded as one `Bytes` per attribute (a
/// message is length-delimited, as `bytes` are): decoding a span costs one reference count per
/// attribute instead of two (key and value), and no message walk. This splits one into its
/// `string key` (tag 1) and its still-encoded `AnyValue value` (tag 2) with prost's own wire
/// primitives, skipping any other field; most attributes are dropped by their key, so their
/// values are never parsed (`decode::wire` parses the few that are kept).
/// `None` when the message is malformed (the attribute is then ignored).
pub(crate) fn key_value(mut buf: &[u8]) -> Option<(&[u8], &[u8])> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).ok()?;
        match (tag, wire) {
            (1 | 2, WireType::LengthDelimited) => {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                if len > buf.len() {
                    return None;
                }
                let (field, rest) = buf.split_at(len);
                if tag == 1 {
                    key = field;
                } else {
                    value = field;
                }
                buf = rest;
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default()).ok()?,
        }
    }
    Some((key, value))
}

/// `opentelemetry.proto.common.v1.AnyValue`: the scalar cases; arrays (5), maps (6), bytes (7) and
/// dictionary indices (8) are skipped and leave the value empty.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Value {
    /// `string string_value`.
    #[prost(bytes = "bytes", tag = "1")]
    Str(Bytes),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}
