//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip accepted.
//! Partially refused batches answer OK with `partial_success`; every refusal answers its code from
//! [`super::Reason::answer`]: a full assembler, or a body that does not fit in
//! `max_body_bytes_in_flight`, RESOURCE_EXHAUSTED with a `RetryInfo` detail, which OTLP exporters
//! treat as "retry later"; a body not complete within `body_read_timeout` of its head
//! DEADLINE_EXCEEDED.

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

use super::budget::Hold;
use super::destination::{Destination, Payload, Protocol};
use super::intake::Intake;
use super::refusal::{Reason, Refusal};
use crate::listen::{BodyTimeout, Counted, Listen, TimeoutBody, incoming};

const PROTOCOL: Protocol = Protocol::OtlpGrpc;

struct Receiver<D> {
    intake: Arc<Intake<D>>,
}

#[tonic::async_trait]
impl<D: Destination> TraceService for Receiver<D> {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let intake = &self.intake;
        match intake.destination.accept(Payload::Otlp(request.into_inner())).await {
            Ok(accepted) => {
                intake.destination.count(PROTOCOL, accepted.outcome());
                Ok(Response::new(accepted.into_otlp()))
            }
            Err(refusal) => Err(intake.refused(PROTOCOL, refusal).into_status()),
        }
    }
}

/// tonic refuses a message over `max_decoding_message_size` or one that is not valid protobuf
/// before `export` runs ([`Reason::refused_by_tonic`]); its trailers-only answer carries the code
/// in the headers. No refusal of `export` has those codes, so each one seen here is tonic's.
fn count_refused_before_the_handler<D: Destination>(
    intake: &Intake<D>,
    response: &axum::http::Response<tonic::body::Body>,
) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(reason) = code.map(Code::from_i32).and_then(Reason::refused_by_tonic) {
        intake.destination.count(PROTOCOL, reason.outcome());
    }
}

/// Without a valid `authorization` token: UNAUTHENTICATED, counted, before the body is decoded.
fn authorize<D: Destination>(intake: &Intake<D>, request: Request<()>) -> Result<Request<()>, Status> {
    let authorization = request.metadata().get("authorization").map(|v| v.as_bytes());
    if intake.admits(authorization) {
        return Ok(request);
    }
    let refusal = Refusal::new(
        Reason::Unauthorized,
        "this receiver needs the metadata authorization: Bearer <ingest.auth_token>",
    );
    Err(intake.refused(PROTOCOL, refusal).into_status())
}

/// Gives every request body its deadline and takes its bytes from the shared budget; the bytes
/// stay taken until the answer is ready.
struct Guard<S, D> {
    inner: S,
    intake: Arc<Intake<D>>,
    timeout: Duration,
    counted: Counted,
}

impl<S: Clone, D> Clone for Guard<S, D> {
    fn clone(&self) -> Self {
        Guard {
            inner: self.inner.clone(),
            intake: self.intake.clone(),
            timeout: self.timeout,
            counted: self.counted.clone(),
        }
    }
}

impl<S, D: Destination, ResBody> tower::Service<axum::http::Request<tonic::body::Body>> for Guard<S, D>
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
struct GuardedBody<D> {
    inner: TimeoutBody<tonic::body::Body>,
    hold: Arc<Hold>,
    intake: Arc<Intake<D>>,
}

impl<D: Destination> GuardedBody<D> {
    /// Counts a refusal and hands it to tonic as the client's `Status`.
    fn refuse(&self, reason: Reason, message: String) -> Box<dyn std::error::Error + Send + Sync> {
        let refusal = self.intake.refused(PROTOCOL, Refusal::new(reason, message));
        Box::new(refusal.into_status())
    }
}

impl<D: Destination> Body for GuardedBody<D> {
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
                return Poll::Ready(Some(Err(this.refuse(Reason::Timeout, timeout.to_string()))));
            }
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref()
            && let Err(over) = this.hold.take(data.len())
        {
            return Poll::Ready(Some(Err(this.refuse(Reason::InFlightLimit, over.to_string()))));
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

/// Serves the gRPC front-end on `listener` until `shutdown` resolves, through the listener's gate
/// (`max_connections`) and with `listen.tls` over TLS (failed handshakes are counted there); see
/// [`crate::listen::incoming`].
pub async fn serve<D: Destination>(
    listener: TcpListener,
    intake: Arc<Intake<D>>,
    listen: Listen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = intake.max_body;
    let counting = intake.clone();
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
            count_refused_before_the_handler(&counting, &response);
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
