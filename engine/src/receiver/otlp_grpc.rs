//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip accepted.
//! Partially refused batches answer OK with `partial_success`; a full assembler answers
//! RESOURCE_EXHAUSTED with a `RetryInfo` detail, which OTLP exporters treat as "retry later", and
//! so does a request whose body does not fit in `max_body_bytes_in_flight`. A request body not
//! complete within `body_read_timeout` of its head answers DEADLINE_EXCEEDED.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::budget::Hold;
use super::{Intake, RETRY_AFTER, Refused, otlp_response};
use crate::decode::otlp;
use crate::listen::{BodyTimeout, Counted, Listen, TimeoutBody, incoming};
use crate::metrics::EngineMetrics;
use crate::pipeline::Source;
use crate::replay::Request as Raw;

const RECEIVER: &str = "otlp_grpc";

#[derive(Debug)]
struct Receiver {
    intake: Arc<Intake>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let intake = &self.intake;
        let request = request.into_inner();
        let decoded = otlp::from_request(&request, &intake.keys);
        match intake.accept(Source::OtlpGrpc, decoded, Raw::Otlp(&request)) {
            Ok(result) => Ok(Response::new(otlp_response(intake, RECEIVER, result))),
            Err(Refused::Record(e)) => {
                intake.metrics.request(RECEIVER, "record_failed");
                Err(Status::unavailable(format!("cannot record the request: {e}")))
            }
            Err(Refused::Backpressure) => {
                intake.metrics.request(RECEIVER, "backpressure");
                Err(Status::with_error_details(
                    Code::ResourceExhausted,
                    intake.backpressure_message(),
                    ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
                ))
            }
        }
    }
}

/// tonic refuses a message over `max_decoding_message_size` (OUT_OF_RANGE) or one that is not a
/// valid protobuf (INTERNAL) before `export` runs; its trailers-only answer carries the code in the
/// headers. `export` itself never answers with those codes, so each one seen here is such a refusal.
fn count_refused_before_the_handler(metrics: &EngineMetrics, response: &axum::http::Response<tonic::body::Body>) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match code.map(Code::from_i32) {
        Some(Code::OutOfRange) => metrics.request(RECEIVER, "too_large"),
        Some(Code::Internal) => metrics.request(RECEIVER, "malformed"),
        _ => {}
    }
}

/// Without a valid `authorization` token: UNAUTHENTICATED, counted, before the body is decoded.
fn authorize(intake: &Intake, request: Request<()>) -> Result<Request<()>, Status> {
    let authorization = request.metadata().get("authorization").map(|v| v.as_bytes());
    if intake.admits(authorization) {
        Ok(request)
    } else {
        intake.metrics.request(RECEIVER, "unauthorized");
        Err(Status::unauthenticated(
            "this receiver needs the metadata authorization: Bearer <ingest.auth_token>",
        ))
    }
}

/// Gives every request body its deadline and takes its bytes from the shared budget; the bytes
/// stay taken until the answer is ready.
#[derive(Debug, Clone)]
struct Guard<S> {
    inner: S,
    intake: Arc<Intake>,
    timeout: Duration,
    counted: Counted,
}

impl<S, ResBody> tower::Service<axum::http::Request<tonic::body::Body>> for Guard<S>
where
    S: tower::Service<axum::http::Request<tonic::body::Body>, Response = axum::http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        let hold = Arc::new(self.intake.budget.hold());
        let (timeout, counted, intake) = (self.timeout, self.counted.clone(), self.intake.clone());
        let request = request.map(|body| {
            tonic::body::Body::new(GuardedBody {
                inner: TimeoutBody::new(body, timeout, counted),
                hold: hold.clone(),
                intake,
            })
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(hold);
            answer
        })
    }
}

/// A gRPC request body within its deadline and the budget; each refusal is counted once and
/// reaches tonic as the `Status` the client gets.
struct GuardedBody {
    inner: TimeoutBody<tonic::body::Body>,
    hold: Arc<Hold>,
    intake: Arc<Intake>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let Some(timeout) = e.downcast_ref::<BodyTimeout>() else {
                    return Poll::Ready(Some(Err(e)));
                };
                this.intake.metrics.request(RECEIVER, "timeout");
                return Poll::Ready(Some(Err(Box::new(Status::deadline_exceeded(timeout.to_string())))));
            }
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref()
            && let Err(over) = this.hold.take(data.len())
        {
            this.intake.metrics.request(RECEIVER, "in_flight_limit");
            let status = Status::with_error_details(
                Code::ResourceExhausted,
                over.to_string(),
                ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
            );
            return Poll::Ready(Some(Err(Box::new(status))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves the gRPC receiver on `listener` until `shutdown` resolves, through the listener's gate
/// (`max_connections`) and with `listen.tls` over TLS (failed handshakes are counted there); see
/// [`crate::listen::incoming`].
pub async fn serve(
    listener: TcpListener,
    intake: Arc<Intake>,
    listen: Listen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = intake.max_body;
    let metrics = intake.metrics.clone();
    let service = TraceServiceServer::new(Receiver { intake: intake.clone() })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let guard = {
        let intake = intake.clone();
        let (timeout, counted) = (listen.body_read_timeout, listen.metrics.counted(listen.name));
        tower::layer::layer_fn(move |inner| Guard {
            inner,
            intake: intake.clone(),
            timeout,
            counted: counted.clone(),
        })
    };
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(move |response| {
            count_refused_before_the_handler(&metrics, &response);
            response
        }))
        .layer(guard)
        .add_service(InterceptedService::new(service, move |request| {
            authorize(&intake, request)
        }))
        .serve_with_incoming_shutdown(incoming(listener, &listen), shutdown)
        .await
        .map_err(std::io::Error::other)
}
