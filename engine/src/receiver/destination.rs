//! Where the front-ends hand a request once it is read: a [`Destination`]. `serve` ingests into
//! the pipeline ([`super::Ingest`]), `tracebudget record` appends the request to a capture file,
//! `tracebudget publish` splits it by partition into JetStream. A front-end is generic over its
//! destination: one call per request, no dynamic dispatch.

use std::future::Future;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::refusal::Refusal;
use crate::decode::{AttrKeys, Decoded, otlp, zipkin};

/// What a front-end's requests go to.
pub trait Destination: Send + Sync + 'static {
    /// Takes one request, or refuses it as a whole (nothing of it taken). The front-end holds the
    /// request's body bytes in `max_body_bytes_in_flight` until this returns.
    fn accept(&self, payload: Payload) -> impl Future<Output = Result<Accepted, Refusal>> + Send;

    /// Counts a request's outcome (`ok`, `partial`, or a refusal's [`super::Reason::outcome`])
    /// for the front-end that took it.
    fn count(&self, protocol: Protocol, outcome: &'static str);
}

/// The encoding of an OTLP/HTTP body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

/// Which front-end took a request; for OTLP/HTTP, in which encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    OtlpGrpc,
    OtlpHttp(Format),
    Zipkin,
}

impl Protocol {
    /// The front-end's name: the `receiver` label and its listener's name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OtlpGrpc => "otlp_grpc",
            Protocol::OtlpHttp(_) => "otlp_http",
            Protocol::Zipkin => "zipkin",
        }
    }
}

/// A request's body as its front-end received it: read within the limits, inflated, not decoded
/// (but for gRPC, which tonic decodes).
#[derive(Clone, Debug)]
pub enum Payload {
    /// OTLP/gRPC: the message tonic decoded.
    Otlp(ExportTraceServiceRequest),
    /// OTLP/HTTP `application/x-protobuf`.
    OtlpProtobuf(Bytes),
    /// OTLP/HTTP `application/json`.
    OtlpJson(Bytes),
    /// Zipkin v2 JSON: an array of spans.
    ZipkinJson(Bytes),
}

impl Payload {
    /// The front-end that received it.
    pub fn protocol(&self) -> Protocol {
        match self {
            Payload::Otlp(_) => Protocol::OtlpGrpc,
            Payload::OtlpProtobuf(_) => Protocol::OtlpHttp(Format::Protobuf),
            Payload::OtlpJson(_) => Protocol::OtlpHttp(Format::Json),
            Payload::ZipkinJson(_) => Protocol::Zipkin,
        }
    }

    /// Decodes the spans the engine reads (attributes filtered by `keys`); a body that does not
    /// decode is [`super::Reason::Malformed`].
    pub fn decode(&self, keys: &AttrKeys) -> Result<Decoded, Refusal> {
        let decoded = match self {
            Payload::Otlp(request) => Ok(otlp::from_request(request, keys)),
            Payload::OtlpProtobuf(bytes) => otlp::decode_protobuf(bytes.clone(), keys),
            Payload::OtlpJson(bytes) => otlp::decode_json(bytes, keys),
            Payload::ZipkinJson(bytes) => zipkin::decode_json(bytes, keys),
        };
        decoded.map_err(|e| Refusal::malformed(e.to_string()))
    }
}

/// A request taken, with the spans in it that were refused one by one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Spans refused (each counted with its reason).
    pub rejected: u64,
    /// Why the first refused span was refused, for the OTLP `partial_success.error_message`.
    pub first_rejection: Option<String>,
}

impl Accepted {
    /// The `outcome` label of the request: `ok`, or `partial` when spans were refused.
    pub fn outcome(&self) -> &'static str {
        if self.rejected == 0 { "ok" } else { "partial" }
    }

    /// The OTLP answer (gRPC and HTTP): `partial_success` when spans were refused.
    pub fn into_otlp(self) -> ExportTraceServiceResponse {
        let partial_success = (self.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(self.rejected).unwrap_or(i64::MAX),
            error_message: self.first_rejection.unwrap_or_default(),
        });
        ExportTraceServiceResponse { partial_success }
    }
}
