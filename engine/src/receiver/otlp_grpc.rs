//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip accepted.
//! Partially refused batches answer OK with `partial_success`; a full assembler answers
//! RESOURCE_EXHAUSTED with a `RetryInfo` detail, which OTLP exporters treat as "retry later".

use std::future::Future;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Intake, RETRY_AFTER, Refused, otlp_response};
use crate::decode::otlp;
use crate::listen::{ListenMetrics, Tls, tls_incoming};
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

/// Serves the gRPC receiver on `listener` until `shutdown` resolves; with `tls`, over TLS
/// connections from [`crate::listen::tls_incoming`] (failed handshakes are counted there).
pub async fn serve(
    listener: TcpListener,
    intake: Arc<Intake>,
    tls: Option<(Tls, Arc<ListenMetrics>)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = intake.max_body;
    let metrics = intake.metrics.clone();
    let service = TraceServiceServer::new(Receiver { intake: intake.clone() })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let router = tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(move |response| {
            count_refused_before_the_handler(&metrics, &response);
            response
        }))
        .add_service(InterceptedService::new(service, move |request| {
            authorize(&intake, request)
        }));
    match tls {
        None => router
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
            .await
            .map_err(std::io::Error::other),
        Some((tls, metrics)) => router
            .serve_with_incoming_shutdown(tls_incoming(listener, tls, RECEIVER, metrics), shutdown)
            .await
            .map_err(std::io::Error::other),
    }
}
