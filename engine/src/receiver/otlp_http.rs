//! OTLP/HTTP: `POST /v1/traces` with `application/x-protobuf` or `application/json` bodies,
//! gzip accepted. Answers as the OTLP specification says: 200 with `partial_success` when some
//! spans were refused, 400 for a malformed body, 413 over the size limit, 415 for an unknown
//! content type, 429 with `Retry-After` when the assembler is full or the bodies in flight fill
//! `max_body_bytes_in_flight`, 408 when the body misses its deadline. Error bodies are a
//! `google.rpc.Status` in the request's encoding.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::{Format, Intake, Refusal, Refused, content_type, otlp_response, with_retry_after};
use crate::decode::otlp;
use crate::pipeline::Source;
use crate::replay::Request;

const RECEIVER: &str = "otlp_http";

pub fn router(intake: Arc<Intake>) -> Router {
    Router::new().route("/v1/traces", post(export)).with_state(intake)
}

async fn export(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    if let Some(refusal) = intake.authorize(&headers) {
        return refuse(&intake, Format::Json, refusal);
    }
    let format = match content_type(&headers) {
        Some("application/x-protobuf") => Format::Protobuf,
        Some("application/json") => Format::Json,
        other => {
            let refusal = Refusal {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                outcome: "unsupported_media_type",
                message: format!(
                    "unsupported content type {:?}: send application/x-protobuf or application/json",
                    other.unwrap_or("")
                ),
            };
            return refuse(&intake, Format::Json, refusal);
        }
    };
    // The body's bytes stay taken from the budget until the request is answered.
    let (bytes, _hold) = match intake.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) if refusal.status == StatusCode::TOO_MANY_REQUESTS => {
            return with_retry_after(refuse(&intake, format, refusal));
        }
        Err(refusal) => return refuse(&intake, format, refusal),
    };
    let decoded = match format {
        Format::Protobuf => otlp::decode_protobuf(bytes.clone(), &intake.keys),
        Format::Json => otlp::decode_json(&bytes, &intake.keys),
    };
    let raw = match format {
        Format::Protobuf => Request::OtlpProtobuf(&bytes),
        Format::Json => Request::OtlpJson(&bytes),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return refuse(&intake, format, Refusal::bad_request(e.to_string())),
    };
    match intake.accept(Source::OtlpHttp, decoded, raw) {
        Ok(result) => {
            let response = otlp_response(&intake, RECEIVER, result);
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
        Err(Refused::Backpressure) => with_retry_after(refuse(&intake, format, Refusal::backpressure(&intake))),
        Err(Refused::Record(e)) => refuse(&intake, format, Refusal::record_failed(&e)),
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

fn refuse(intake: &Intake, format: Format, refusal: Refusal) -> Response {
    intake.metrics.request(RECEIVER, refusal.outcome);
    let unauthorized = refusal.status == StatusCode::UNAUTHORIZED;
    let code = match refusal.status {
        StatusCode::UNAUTHORIZED => 16,        // UNAUTHENTICATED
        StatusCode::REQUEST_TIMEOUT => 4,      // DEADLINE_EXCEEDED
        StatusCode::TOO_MANY_REQUESTS => 8,    // RESOURCE_EXHAUSTED
        StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
        _ => 3,                                // INVALID_ARGUMENT
    };
    let status = RpcStatus {
        code,
        message: refusal.message,
    };
    let mut response = match format {
        Format::Protobuf => (
            refusal.status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            status.encode_to_vec(),
        )
            .into_response(),
        Format::Json => {
            let body = serde_json::json!({ "code": status.code, "message": status.message }).to_string();
            (refusal.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    if unauthorized {
        super::with_www_authenticate(&mut response);
    }
    response
}
