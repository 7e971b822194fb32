//! OTLP traces: protobuf (the hot path, through the projection), the official OTLP/JSON encoding
//! (opentelemetry-proto's serde types) and the gRPC path (tonic's generated types). All three walk
//! the same resource → scope → span tree through [`OtlpResourceSpans`] and [`OtlpSpan`].

use std::fmt;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as gen_trace;
use prost::Message as _;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use slis::{SpanKind, StatusCode};

use super::spans::{Batch, Head, otlp_ids, unix_nanos};
use super::wire::WireValue;
use super::{AttrKeys, DecodeError, Decoded};

pub(super) mod projection;
#[cfg(test)]
mod tests;

/// The only top-level key of an `ExportTraceServiceRequest`.
const RESOURCE_SPANS: &str = "resourceSpans";

/// `application/x-protobuf` body of `ExportTraceServiceRequest`.
pub fn decode_protobuf(body: Bytes, keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    let request = projection::ExportTraceServiceRequest::decode(body)?;
    Ok(convert(&request.resource_spans, keys))
}

/// The official OTLP/JSON encoding (hex ids, camelCase, int64 as strings or numbers, enums as ints).
/// An empty body, or a JSON object with none of the known top-level keys, is an error (not zero
/// spans); `{"resourceSpans": []}` is a valid empty request.
pub fn decode_json(body: &[u8], keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    const EXPECTED: &str = "a json object with \"resourceSpans\"";
    if body.trim_ascii().is_empty() {
        return Err(DecodeError::Empty { expected: EXPECTED });
    }
    let JsonRequest(resource_spans) = serde_json::from_slice(body)?;
    let resource_spans = resource_spans.ok_or(DecodeError::NoKnownKeys { expected: EXPECTED })?;
    Ok(convert(&resource_spans, keys))
}

/// The official OTLP/JSON encoding into the full generated types (for `tracebudget publish`,
/// which re-encodes it), with the same errors as [`decode_json`].
pub fn parse_json(body: &[u8]) -> Result<ExportTraceServiceRequest, DecodeError> {
    const EXPECTED: &str = "a json object with \"resourceSpans\"";
    if body.trim_ascii().is_empty() {
        return Err(DecodeError::Empty { expected: EXPECTED });
    }
    let JsonRequest(resource_spans) = serde_json::from_slice(body)?;
    let resource_spans = resource_spans.ok_or(DecodeError::NoKnownKeys { expected: EXPECTED })?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

/// The gRPC path: tonic has already decoded the full generated types.
pub fn from_request(req: &ExportTraceServiceRequest, keys: &AttrKeys) -> Decoded {
    convert(&req.resource_spans, keys)
}

/// `ExportTraceServiceRequest` as JSON: `None` when the object has no `resourceSpans` key.
/// (A derived struct would also take a JSON array, and could not tell an absent key from `[]`.)
struct JsonRequest(Option<Vec<gen_trace::ResourceSpans>>);

impl<'de> serde::Deserialize<'de> for JsonRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RequestVisitor;
        impl<'de> Visitor<'de> for RequestVisitor {
            type Value = JsonRequest;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ExportTraceServiceRequest json object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonRequest, A::Error> {
                let mut resource_spans = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == RESOURCE_SPANS {
                        let value: Option<Vec<gen_trace::ResourceSpans>> = map.next_value()?;
                        resource_spans = Some(value.unwrap_or_default());
                    } else {
                        map.next_value::<IgnoredAny>()?; // unknown fields are ignored, per OTLP/JSON
                    }
                }
                Ok(JsonRequest(resource_spans))
            }
        }
        deserializer.deserialize_map(RequestVisitor)
    }
}

/// A `ResourceSpans`, from the projection or from the generated types.
trait OtlpResourceSpans {
    type Span: OtlpSpan;
    fn resource_attributes(&self) -> impl Iterator<Item = (&[u8], WireValue<'_>)>;
    fn spans(&self) -> impl Iterator<Item = &Self::Span>;
}

/// A `Span`, from the projection or from the generated types.
trait OtlpSpan {
    /// Trace, span and parent span id as on the wire.
    fn ids(&self) -> [&[u8]; 3];
    fn head(&self) -> Head<'_>;
    fn attributes(&self) -> impl Iterator<Item = (&[u8], WireValue<'_>)>;
}

fn convert<R: OtlpResourceSpans>(resource_spans: &[R], keys: &AttrKeys) -> Decoded {
    let count = resource_spans.iter().map(|r| r.spans().count()).sum();
    let mut batch = Batch::new(keys, count);
    for rs in resource_spans {
        let resource = batch.resource(rs.resource_attributes());
        for span in rs.spans() {
            let [trace_id, span_id, parent_span_id] = span.ids();
            batch.push(
                otlp_ids(trace_id, span_id, parent_span_id),
                &resource,
                span.head(),
                span.attributes(),
            );
        }
    }
    batch.finish()
}

fn kind(kind: i32) -> SpanKind {
    match kind {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

fn status(code: Option<i32>) -> StatusCode {
    match code {
        Some(1) => StatusCode::Ok,
        Some(2) => StatusCode::Error,
        _ => StatusCode::Unset,
    }
}

impl OtlpResourceSpans for projection::ResourceSpans {
    type Span = projection::Span;

    fn resource_attributes(&self) -> impl Iterator<Item = (&[u8], WireValue<'_>)> {
        self.resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(projected_attribute)
    }

    fn spans(&self) -> impl Iterator<Item = &projection::Span> {
        self.scope_spans.iter().flat_map(|s| &s.spans)
    }
}

impl OtlpSpan for projection::Span {
    fn ids(&self) -> [&[u8]; 3] {
        [&self.trace_id, &self.span_id, &self.parent_span_id]
    }

    fn head(&self) -> Head<'_> {
        Head {
            name: &self.name,
            kind: kind(self.kind),
            start: unix_nanos(self.start_time_unix_nano),
            end: unix_nanos(self.end_time_unix_nano),
            status: status(self.status.as_ref().map(|s| s.code)),
            trace_state: &self.trace_state,
        }
    }

    fn attributes(&self) -> impl Iterator<Item = (&[u8], WireValue<'_>)> {
        self.attributes.iter().map(projected_attribute)
    }
}

fn projected_attribute(kv: &Bytes) -> (&[u8], WireValue<'_>) {
    match projection::key_value(kv) {
        Some((key, _)) => (key, WireValue::Encoded(kv)),
        None => (&[], WireValue::Other),
    }
}

impl OtlpResourceSpans for gen_trace::ResourceSpans {
    type Span = gen_trace::Span;

    fn resource_attributes(&self) -> impl Iterator<Item = (&[u8], WireValue<'_>)> {
        self.resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(generated_attribute)
    }

    fn spans(&self) -> impl Iterator<Item = &gen_trace::Span> {
        self.scope_spans.iter().flat_map(|s| &s.spans)
    }
}

impl OtlpSpan for gen_trace::Span {
    fn ids(&self) -> [&[u8]; 3] {
        [&self.trace_id, &self.span_id, &self.parent_span_id]
    }

    fn head(&self) -> Head<'_> {
        Head {
            name: self.name.as_bytes(),
            kind: kind(self.kind),
            start: unix_nanos(self.start_time_unix_nano),
            end: unix_nanos(self.end_time_unix_nano),
            status: status(self.status.as_ref().map(|s| s.code)),
            trace_state: self.trace_state.as_bytes(),
        }
    }

    fn attributes(&self) -> impl Iterator<Item = (&[u8], WireValue<'_>)> {
        self.attributes.iter().map(generated_attribute)
    }
}

fn generated_attribute(kv: &KeyValue) -> (&[u8], WireValue<'_>) {
    use any_value::Value;
    let value = match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(Value::StringValue(s)) => WireValue::Str(s.as_bytes()),
        Some(Value::IntValue(i)) => WireValue::Int(*i),
        Some(Value::DoubleValue(d)) => WireValue::Double(*d),
        Some(Value::BoolValue(b)) => WireValue::Bool(*b),
        _ => WireValue::Other,
    };
    (kv.key.as_bytes(), value)
}
