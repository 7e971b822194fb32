//! What the HTTP front-ends (OTLP/HTTP, Zipkin) share: the bearer token check, the media type,
//! and reading a body within `max_body_size`, the shared budget and its deadline, inflated.

use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::budget::Hold;
use super::destination::Destination;
use super::intake::Intake;
use super::refusal::{Reason, Refusal};
use crate::decode::body::{BodyError, inflate};
use crate::listen::BodyTimeout;

/// The request's media type, ignoring parameters such as `charset`.
pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim())
}

/// The refusal of a request without a valid token, or `None` when it may pass.
pub fn authorize<D: Destination>(intake: &Intake<D>, headers: &HeaderMap) -> Option<Refusal> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    (!intake.admits(authorization)).then(|| {
        Refusal::new(
            Reason::Unauthorized,
            "this receiver needs Authorization: Bearer <ingest.auth_token>",
        )
    })
}

/// Reads an HTTP body within `max_body` and the shared budget, then undoes its
/// Content-Encoding within `max_body`. A body announced larger than `max_body` is refused
/// before any of it is read. The bytes stay taken from the budget until the [`Hold`] is
/// dropped, when the request has been answered.
pub async fn read_body<D: Destination>(
    intake: &Intake<D>,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Bytes, Hold), Refusal> {
    let max_body = intake.max_body;
    let too_large = || {
        Refusal::new(
            Reason::TooLarge,
            format!("request body exceeds max_body_size ({max_body} bytes)"),
        )
    };
    let announced = hyper::body::Body::size_hint(&body).lower();
    if announced > max_body as u64 {
        return Err(Refusal::new(
            Reason::TooLarge,
            format!("content-length {announced} exceeds max_body_size ({max_body} bytes)"),
        ));
    }
    let hold = intake.budget.hold();
    let mut body = body;
    // The frames as they came, joined once at the end: what is held is what the budget
    // counts, with no buffer doubling as it grows.
    let mut frames: Vec<Bytes> = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match body_timeout(&e) {
            Some(timeout) => Refusal::new(Reason::Timeout, timeout.to_string()),
            None => Refusal::malformed(format!("cannot read request body: {e}")),
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if len + data.len() > max_body {
            return Err(too_large());
        }
        hold.take(data.len())
            .map_err(|over| Refusal::new(Reason::InFlightLimit, over.to_string()))?;
        len += data.len();
        frames.push(data);
    }
    let raw = match frames.len() {
        1 => frames.pop().expect("one frame"),
        _ => {
            let mut raw = BytesMut::with_capacity(len);
            frames.drain(..).for_each(|f| raw.extend_from_slice(&f));
            raw.freeze()
        }
    };
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    let body = inflate(raw, encoding, max_body).map_err(|e| match e {
        BodyError::TooLarge { .. } => too_large(),
        BodyError::Corrupt(m) => Refusal::malformed(format!("corrupt {} body: {m}", encoding.unwrap_or("encoded"))),
        BodyError::Unsupported(m) => Refusal::new(Reason::UnsupportedEncoding, m),
    })?;
    Ok((body, hold))
}

/// The body missed its deadline (see [`crate::listen::TimeoutBody`]).
fn body_timeout(e: &axum::Error) -> Option<&BodyTimeout> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<BodyTimeout>() {
            return Some(t);
        }
        source = s.source();
    }
    None
}
