//! OTLP/HTTP: `POST /v1/traces` with `application/x-protobuf` or `application/json` bodies, gzip
//! accepted. Answers as the OTLP specification says: 200 with `partial_success` when some spans
//! were refused, and every refusal with its status from [`super::Reason::answer`] (400 malformed,
//! 413 too large, 415 unknown content type, 429 with `Retry-After` when the assembler is full or
//! the bodies in flight fill `max_body_bytes_in_flight`, 408 when the body misses its deadline).
//! Error bodies are a `google.rpc.Status` in the request's encoding.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::destination::{Destination, Format, Payload, Protocol};
use super::http::{authorize, content_type, read_body};
use super::intake::Intake;
use super::refusal::{Reason, Refusal};

/// The `/v1/traces` route in front of `intake`'s destination.
pub fn router<D: Destination>(intake: Arc<Intake<D>>) -> Router {
    Router::new().route("/v1/traces", post(export::<D>)).with_state(intake)
}

async fn export<D: Destination>(State(intake): State<Arc<Intake<D>>>, headers: HeaderMap, body: Body) -> Response {
    if let Some(refusal) = authorize(&intake, &headers) {
        return refuse(&intake, Format::Json, refusal);
    }
    let format = match content_type(&headers) {
        Some("application/x-protobuf") => Format::Protobuf,
        Some("application/json") => Format::Json,
        other => {
            let refusal = Refusal::new(
                Reason::UnsupportedMediaType,
                format!(
                    "unsupported content type {:?}: send application/x-protobuf or application/json",
                    other.unwrap_or("")
                ),
            );
            return refuse(&intake, Format::Json, refusal);
        }
    };
    // The body's bytes stay taken from the budget until the request is answered.
    let (bytes, _hold) = match read_body(&intake, &headers, body).await {
        Ok(b) => b,
        Err(refusal) => return refuse(&intake, format, refusal),
    };
    let payload = match format {
        Format::Protobuf => Payload::OtlpProtobuf(bytes),
        Format::Json => Payload::OtlpJson(bytes),
    };
    match intake.destination.accept(payload).await {
        Ok(accepted) => {
            intake.destination.count(Protocol::OtlpHttp(format), accepted.outcome());
            let response = accepted.into_otlp();
            match format {
                Format::Protobuf => (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    response.encode_to_vec(),
                )
                    .into_response(),
                Format::Json => {
                    ([(header::CONTENT_TYPE, "application/json")], response_json(&response)).into_response()
                }
            }
        }
        Err(refusal) => refuse(&intake, format, refusal),
    }
}

/// OTLP/JSON of the response: camelCase, int64 as a string.
fn response_json(r: &ExportTraceServiceResponse) -> String {
    match &r.partial_success {
        None => "{}".to_owned(),
        Some(p) => serde_json::json!({
            "partialSuccess": { "rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message }
        })
        .to_string(),
    }
}

/// `google.rpc.Status`, the body OTLP/HTTP error responses carry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Counts a refusal and answers it: its status, a `google.rpc.Status` with its gRPC code in the
/// request's encoding.
fn refuse<D: Destination>(intake: &Intake<D>, format: Format, refusal: Refusal) -> Response {
    let Refusal { reason, message } = intake.refused(Protocol::OtlpHttp(format), refusal);
    let status = RpcStatus {
        code: reason.answer().code.into(),
        message,
    };
    match format {
        Format::Protobuf => reason.http_response((
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            status.encode_to_vec(),
        )),
        Format::Json => {
            let body = serde_json::json!({ "code": status.code, "message": status.message }).to_string();
            reason.http_response(([(header::CONTENT_TYPE, "application/json")], body))
        }
    }
}
