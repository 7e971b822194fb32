//! Zipkin v2: `POST /api/v2/spans` with a JSON array of spans, gzip accepted. 202 Accepted as
//! Zipkin answers; 400 malformed, 413 too large, 415 not JSON, 429 with `Retry-After` when the
//! assembler is full or the bodies in flight fill `max_body_bytes_in_flight`, 408 when the body
//! misses its deadline. Error bodies are plain text.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{Intake, Refusal, Refused, content_type, with_retry_after};
use crate::decode::zipkin;
use crate::pipeline::Source;
use crate::replay::Request;

const RECEIVER: &str = "zipkin";

pub fn router(intake: Arc<Intake>) -> Router {
    Router::new().route("/api/v2/spans", post(spans)).with_state(intake)
}

async fn spans(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    if let Some(refusal) = intake.authorize(&headers) {
        let mut response = refuse(&intake, refusal);
        super::with_www_authenticate(&mut response);
        return response;
    }
    match content_type(&headers) {
        Some("application/json") | None => {}
        Some(other) => {
            return refuse(
                &intake,
                Refusal {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    outcome: "unsupported_media_type",
                    message: format!("unsupported content type {other:?}: send Zipkin v2 JSON (application/json)"),
                },
            );
        }
    }
    // The body's bytes stay taken from the budget until the request is answered.
    let (bytes, _hold) = match intake.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) if refusal.status == StatusCode::TOO_MANY_REQUESTS => {
            return with_retry_after(refuse(&intake, refusal));
        }
        Err(refusal) => return refuse(&intake, refusal),
    };
    let decoded = match zipkin::decode_json(&bytes, &intake.keys) {
        Ok(d) => d,
        Err(e) => return refuse(&intake, Refusal::bad_request(e.to_string())),
    };
    match intake.accept(Source::Zipkin, decoded, Request::ZipkinJson(&bytes)) {
        Ok(result) => {
            intake.metrics.request(RECEIVER, result.outcome());
            StatusCode::ACCEPTED.into_response()
        }
        Err(Refused::Backpressure) => with_retry_after(refuse(&intake, Refusal::backpressure(&intake))),
        Err(Refused::Record(e)) => refuse(&intake, Refusal::record_failed(&e)),
    }
}

fn refuse(intake: &Intake, refusal: Refusal) -> Response {
    intake.metrics.request(RECEIVER, refusal.outcome);
    (refusal.status, refusal.message).into_response()
}
