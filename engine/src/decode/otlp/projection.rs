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
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
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
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `opentelemetry.proto.trace.v1.Status` (the message, tag 2, is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Status {
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `opentelemetry.proto.common.v1.KeyValue`. The value stays encoded (an `AnyValue` message is
/// length-delimited, as `bytes` are): most attributes are dropped by their key, so their values
/// are never parsed. [`super::parse_any_value`] parses the few that are kept.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValue {
    /// `string key`.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// `AnyValue value`, still encoded.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
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
