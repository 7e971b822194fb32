//! Zipkin v2: `POST /api/v2/spans` with a JSON array of spans, gzip accepted. 202 Accepted as
//! Zipkin answers; every refusal with its status from [`super::Reason::answer`] (400 malformed, 413
//! too large, 415 not JSON, 429 with `Retry-After` when the assembler is full or the bodies in
//! flight fill `max_body_bytes_in_flight`, 408 when the body misses its deadline). Error bodies are
//! plain text.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::destination::{Destination, Payload, Protocol};
use super::http::{authorize, content_type, read_body};
use super::intake::Intake;
use super::refusal::{Reason, Refusal};

/// The `/api/v2/spans` route in front of `intake`'s destination.
pub fn router<D: Destination>(intake: Arc<Intake<D>>) -> Router {
    Router::new()
        .route("/api/v2/spans", post(spans::<D>))
        .with_state(intake)
}

async fn spans<D: Destination>(State(intake): State<Arc<Intake<D>>>, headers: HeaderMap, body: Body) -> Response {
    if let Some(refusal) = authorize(&intake, &headers) {
        return refuse(&intake, refusal);
    }
    match content_type(&headers) {
        Some("application/json") | None => {}
        Some(other) => {
            let message = format!("unsupported content type {other:?}: send Zipkin v2 JSON (application/json)");
            return refuse(&intake, Refusal::new(Reason::UnsupportedMediaType, message));
        }
    }
    // The body's bytes stay taken from the budget until the request is answered.
    let (bytes, _hold) = match read_body(&intake, &headers, body).await {
        Ok(b) => b,
        Err(refusal) => return refuse(&intake, refusal),
    };
    match intake.destination.accept(Payload::ZipkinJson(bytes)).await {
        Ok(accepted) => {
            intake.destination.count(Protocol::Zipkin, accepted.outcome());
            StatusCode::ACCEPTED.into_response()
        }
        Err(refusal) => refuse(&intake, refusal),
    }
}

/// Counts a refusal and answers it: its status, the message as plain text.
fn refuse<D: Destination>(intake: &Intake<D>, refusal: Refusal) -> Response {
    let Refusal { reason, message } = intake.refused(Protocol::Zipkin, refusal);
    reason.http_response(message)
}
