//! The span receivers: OTLP/gRPC, OTLP/HTTP (protobuf and JSON) and Zipkin v2 JSON.
//!
//! Each decodes outside the pipeline lock, then hands the batch to the shared [`Pipeline`].
//! Every outcome of a request is counted (`tracebudget_requests_total{receiver,outcome}`), every
//! refused span too (`tracebudget_spans_rejected_total{receiver,reason}`).
//!
//! Bodies are bounded three ways: a body announced (`Content-Length`) or grown past
//! `max_body_size` is refused with 413 before or as soon as it crosses the limit, never read
//! to the end; all bodies in flight together stay within `max_body_bytes_in_flight` ([`budget`]);
//! and each body has its deadline (`body_read_timeout`, see [`crate::listen`]).

pub mod budget;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod zipkin;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use slis::{Span, Timestamp};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};

use crate::config::{AuthTokens, IngestConfig};
use crate::decode::{AttrKeys, Decoded};
use crate::health::Tag;
use crate::listen::{Listen, ListenMetrics, serve_http};
use crate::metrics::EngineMetrics;
use crate::pipeline::{Backpressure, Ingested, Pipeline, Source};
use budget::{BodyBudget, Hold};

/// How long a refused client should wait before retrying (`Retry-After`, gRPC `RetryInfo`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What every receiver shares.
#[derive(Debug)]
pub struct Intake {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub metrics: Arc<EngineMetrics>,
    pub keys: AttrKeys,
    /// Largest body accepted, before and after decompression.
    pub max_body: usize,
    pub max_buffered_spans: usize,
    /// `tracebudget record`: accepted requests are written here instead of entering the pipeline.
    pub record: Option<Arc<crate::replay::Writer>>,
    /// `[ingest] auth_token`: the bearer tokens a request must carry one of; `None`: no token.
    pub auth: Option<AuthTokens>,
    /// `[ingest] max_body_bytes_in_flight`, shared by every receiver.
    pub budget: Arc<BodyBudget>,
}

/// Why a decoded request was not taken.
#[derive(Debug)]
pub enum Refused {
    Backpressure,
    /// `tracebudget record` could not write it: the client should retry.
    Record(std::io::Error),
}

impl From<Backpressure> for Refused {
    fn from(_: Backpressure) -> Refused {
        Refused::Backpressure
    }
}

impl Intake {
    /// Counts decode-level rejections, then runs the batch through the pipeline at the wall clock.
    pub fn ingest(&self, source: Source, decoded: Decoded) -> Result<Ingested, Backpressure> {
        self.metrics.decoded(source.as_str(), &decoded);
        let mut result = self.ingest_spans(source, decoded.spans, &decoded.tags)?;
        result.rejected += decoded.rejected;
        if result.first_rejection.is_none() {
            result.first_rejection = decoded.first_rejection;
        }
        Ok(result)
    }

    /// Where a decoded request goes: the pipeline, or with `record` the recording file (as it
    /// was received, so a replay reads what a live server would have).
    pub fn accept(
        &self,
        source: Source,
        decoded: Decoded,
        raw: crate::replay::Request<'_>,
    ) -> Result<Ingested, Refused> {
        let Some(writer) = &self.record else {
            return Ok(self.ingest(source, decoded)?);
        };
        writer.write(raw).map_err(Refused::Record)?;
        self.metrics.decoded(source.as_str(), &decoded);
        Ok(Ingested {
            accepted: decoded.spans.len() as u64,
            rejected: decoded.rejected,
            first_rejection: decoded.first_rejection,
        })
    }

    fn ingest_spans(&self, source: Source, spans: Vec<Span>, tags: &[Tag]) -> Result<Ingested, Backpressure> {
        let now = wall_clock();
        let mut p = self.pipeline.lock().expect("pipeline lock poisoned");
        let result = p.ingest(source, spans, now)?;
        p.ingest_tags(tags, now);
        Ok(result)
    }

    /// Whether a request with this `Authorization` value may send spans.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        self.auth.as_ref().is_none_or(|tokens| tokens.admit(authorization))
    }

    /// An HTTP receiver's answer to a request without a valid token, or `None` when it may pass.
    pub fn authorize(&self, headers: &axum::http::HeaderMap) -> Option<Refusal> {
        let authorization = headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes());
        (!self.admits(authorization)).then(|| Refusal {
            status: axum::http::StatusCode::UNAUTHORIZED,
            outcome: "unauthorized",
            message: "this receiver needs Authorization: Bearer <ingest.auth_token>".to_owned(),
        })
    }

    pub fn backpressure_message(&self) -> String {
        format!(
            "trace assembler is full (max_buffered_spans = {}): retry after {}s",
            self.max_buffered_spans,
            RETRY_AFTER.as_secs()
        )
    }

    /// Reads an HTTP body within `max_body` and the shared budget, then undoes its
    /// Content-Encoding within `max_body`. A body announced larger than `max_body` is refused
    /// before any of it is read. The bytes stay taken from the budget until the [`Hold`] is
    /// dropped, when the request has been answered.
    pub async fn read_body(
        &self,
        headers: &axum::http::HeaderMap,
        body: axum::body::Body,
    ) -> Result<(bytes::Bytes, Hold), Refusal> {
        use crate::decode::body::{BodyError, inflate};
        use http_body_util::BodyExt;
        let too_large = || Refusal {
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            outcome: "too_large",
            message: format!("request body exceeds max_body_size ({} bytes)", self.max_body),
        };
        let announced = hyper::body::Body::size_hint(&body).lower();
        if announced > self.max_body as u64 {
            return Err(Refusal {
                message: format!(
                    "content-length {announced} exceeds max_body_size ({} bytes)",
                    self.max_body
                ),
                ..too_large()
            });
        }
        let hold = self.budget.hold();
        let mut body = body;
        // The frames as they came, joined once at the end: what is held is what the budget
        // counts, with no buffer doubling as it grows.
        let mut frames: Vec<bytes::Bytes> = Vec::new();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| match body_timeout(&e) {
                Some(timeout) => Refusal {
                    status: axum::http::StatusCode::REQUEST_TIMEOUT,
                    outcome: "timeout",
                    message: timeout.to_string(),
                },
                None => Refusal::bad_request(format!("cannot read request body: {e}")),
            })?;
            let Ok(data) = frame.into_data() else { continue };
            if len + data.len() > self.max_body {
                return Err(too_large());
            }
            hold.take(data.len()).map_err(|over| Refusal {
                status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                outcome: "in_flight_limit",
                message: over.to_string(),
            })?;
            len += data.len();
            frames.push(data);
        }
        let raw = match frames.len() {
            1 => frames.pop().expect("one frame"),
            _ => {
                let mut raw = bytes::BytesMut::with_capacity(len);
                frames.drain(..).for_each(|f| raw.extend_from_slice(&f));
                raw.freeze()
            }
        };
        let encoding = headers
            .get(axum::http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let body = inflate(raw, encoding, self.max_body).map_err(|e| match e {
            BodyError::TooLarge { .. } => too_large(),
            BodyError::Corrupt(m) => {
                Refusal::bad_request(format!("corrupt {} body: {m}", encoding.unwrap_or("encoded")))
            }
            BodyError::Unsupported(m) => Refusal {
                status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                outcome: "unsupported_encoding",
                message: m,
            },
        })?;
        Ok((body, hold))
    }
}

/// The body missed its deadline (see [`crate::listen::TimeoutBody`]).
fn body_timeout(e: &axum::Error) -> Option<&crate::listen::BodyTimeout> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<crate::listen::BodyTimeout>() {
            return Some(t);
        }
        source = s.source();
    }
    None
}

/// A request refused as a whole: its HTTP status, the `outcome` label and a message for the client.
#[derive(Debug)]
pub struct Refusal {
    pub status: axum::http::StatusCode,
    pub outcome: &'static str,
    pub message: String,
}

/// Counts an accepted batch's outcome and builds the OTLP answer: `partial_success` when spans
/// were refused. Shared by the gRPC and HTTP receivers.
pub fn otlp_response(intake: &Intake, receiver: &'static str, result: Ingested) -> ExportTraceServiceResponse {
    intake
        .metrics
        .request(receiver, if result.rejected == 0 { "ok" } else { "partial" });
    let partial_success = (result.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(result.rejected).unwrap_or(i64::MAX),
        error_message: result.first_rejection.unwrap_or_default(),
    });
    ExportTraceServiceResponse { partial_success }
}

/// Adds `Retry-After` to a 429 answer.
pub fn with_retry_after(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(RETRY_AFTER.as_secs()),
    );
    response
}

/// Adds `WWW-Authenticate: Bearer` to a 401 answer.
pub fn with_www_authenticate(response: &mut axum::response::Response) {
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
}

impl Refusal {
    /// The assembler is full: 429, to be sent with [`with_retry_after`].
    pub fn backpressure(intake: &Intake) -> Self {
        Refusal {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            outcome: "backpressure",
            message: intake.backpressure_message(),
        }
    }

    /// `tracebudget record` could not write the request: 503, retryable.
    pub fn record_failed(e: &std::io::Error) -> Self {
        Refusal {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            outcome: "record_failed",
            message: format!("cannot record the request: {e}"),
        }
    }

    pub fn bad_request(message: String) -> Self {
        Refusal {
            status: axum::http::StatusCode::BAD_REQUEST,
            outcome: "malformed",
            message,
        }
    }
}

/// The system clock as a `Timestamp`; receivers are the edge where wall time enters.
pub fn wall_clock() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_unix_nanos(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

/// Binds every configured receiver (so a taken port fails start-up, not later) and serves them
/// until `stop` is cancelled, over TLS with `[ingest.tls]`. Returns the bound addresses (a port 0
/// in config gets a real one).
pub async fn start(
    config: &IngestConfig,
    intake: Arc<Intake>,
    listen_metrics: Arc<ListenMetrics>,
    stop: CancellationToken,
    tasks: &mut JoinSet<std::io::Result<()>>,
) -> std::io::Result<Vec<(Source, SocketAddr)>> {
    let tls = match &config.tls {
        Some(tls) => Some(tls.load("ingest").map_err(|e| {
            let messages: Vec<String> = e.into_iter().map(|e| e.message).collect();
            std::io::Error::new(std::io::ErrorKind::InvalidInput, messages.join("; "))
        })?),
        None => None,
    };
    let listen = |name: &'static str| Listen {
        name,
        tls: tls.clone(),
        header_read_timeout: config.header_read_timeout.0,
        body_read_timeout: config.body_read_timeout.0,
        max_connections: config.max_connections.get(),
        metrics: listen_metrics.clone(),
    };
    let mut bound = Vec::new();
    if let Some(addr) = config.otlp_grpc {
        let listener = bind(addr, "otlp_grpc").await?;
        bound.push((Source::OtlpGrpc, listener.local_addr()?));
        listen_metrics.initialise("otlp_grpc", &["body"], tls.is_some());
        tasks.spawn(otlp_grpc::serve(
            listener,
            intake.clone(),
            listen("otlp_grpc"),
            stop.clone().cancelled_owned(),
        ));
    }
    if let Some(addr) = config.otlp_http {
        let listener = bind(addr, "otlp_http").await?;
        bound.push((Source::OtlpHttp, listener.local_addr()?));
        listen_metrics.initialise("otlp_http", &["header", "body"], tls.is_some());
        let app = otlp_http::router(intake.clone());
        tasks.spawn(serve_http(
            listener,
            app,
            listen("otlp_http"),
            stop.clone().cancelled_owned(),
        ));
    }
    if let Some(addr) = config.zipkin {
        let listener = bind(addr, "zipkin").await?;
        bound.push((Source::Zipkin, listener.local_addr()?));
        listen_metrics.initialise("zipkin", &["header", "body"], tls.is_some());
        let app = zipkin::router(intake.clone());
        tasks.spawn(serve_http(
            listener,
            app,
            listen("zipkin"),
            stop.clone().cancelled_owned(),
        ));
    }
    Ok(bound)
}

async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen for {what} on {addr}: {e}")))
}

/// Media types of OTLP/HTTP and Zipkin bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

/// The request's media type, ignoring parameters such as `charset`.
pub fn content_type(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim())
}
