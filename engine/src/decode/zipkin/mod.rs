//! Zipkin v2 JSON (`POST /api/v2/spans`): an array of spans, read with our own serde structs.
//!
//! `timestamp` and `duration` are microseconds; `kind` is CLIENT/SERVER/PRODUCER/CONSUMER (absent
//! or anything else: unspecified); the service is `localEndpoint.serviceName`; `tags` are strings and
//! kept per [`AttrKeys`]; an `error` tag, whatever its value, makes the status ERROR.

use std::collections::BTreeMap;

use serde::Deserialize;
use slis::{SpanKind, StatusCode, Timestamp};

use super::spans::{Batch, Head, zipkin_ids};
use super::wire::WireValue;
use super::{AttrKeys, DecodeError, Decoded};

#[cfg(test)]
mod tests;

/// Zipkin v2 JSON: an array of spans (POST /api/v2/spans).
pub fn decode_json(body: &[u8], keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    if body.trim_ascii().is_empty() {
        return Err(DecodeError::Empty {
            expected: "a json array of zipkin v2 spans",
        });
    }
    let spans: Vec<ZipkinSpan> = serde_json::from_slice(body)?;
    let mut batch = Batch::new(keys, spans.len());
    for span in &spans {
        let service = span.local_endpoint.as_ref().and_then(|e| e.service_name.as_deref());
        let resource = batch.service(service.filter(|s| !s.is_empty()).map(str::as_bytes));
        let start = micros(span.timestamp.unwrap_or(0));
        let head = Head {
            name: span.name.as_deref().unwrap_or("").as_bytes(),
            kind: kind(span.kind.as_deref()),
            start,
            end: Timestamp::from_unix_nanos(
                start
                    .unix_nanos()
                    .saturating_add(micros(span.duration.unwrap_or(0)).unix_nanos()),
            ),
            status: match span.tags.contains_key("error") {
                true => StatusCode::Error,
                false => StatusCode::Unset,
            },
            trace_state: b"",
        };
        let ids = zipkin_ids(&span.trace_id, &span.id, span.parent_id.as_deref());
        let tags = span
            .tags
            .iter()
            .map(|(k, v)| (k.as_bytes(), WireValue::Str(v.as_bytes())));
        batch.push(ids, &resource, head, tags);
    }
    Ok(batch.finish())
}

/// One Zipkin v2 span: only the fields the engine reads (serde skips the rest: annotations,
/// remoteEndpoint, debug, shared). Missing ids are a per-span rejection, not a malformed request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    /// Microseconds since the epoch.
    timestamp: Option<u64>,
    /// Microseconds.
    duration: Option<u64>,
    local_endpoint: Option<Endpoint>,
    /// Sorted by key, so the kept attributes come out in a stable order.
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    service_name: Option<String>,
}

fn kind(kind: Option<&str>) -> SpanKind {
    match kind {
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

fn micros(us: u64) -> Timestamp {
    Timestamp::from_unix_nanos(i64::try_from(us.saturating_mul(1000)).unwrap_or(i64::MAX))
}
