//! `tracebudget publish`: takes OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, gzip) on
//! `[ingest] otlp_http` and OTLP/gRPC (`TraceService/Export`, gzip) on `[ingest] otlp_grpc`,
//! splits each request by trace partition and publishes each part to
//! `<subject_prefix>.<k>` of the `[jetstream]` stream, answering the client only once JetStream
//! has acked every part: 200 when all are stored, 503 with `Retry-After` otherwise (the client
//! retries; parts already stored are dropped by JetStream as duplicates, because each part's
//! `Nats-Msg-Id` is the SHA-256 of its subject and bytes, within the stream's
//! `duplicate_window`); gRPC answers UNAVAILABLE with a `RetryInfo` instead. Malformed, oversized
//! and unknown-type bodies get the receivers' answers. `/metrics` on `[server] listen`:
//! `tracebudget_publish_requests_total{protocol,outcome}` (ok, malformed, too_large,
//! unsupported_media_type, unsupported_encoding, unavailable) and
//! `tracebudget_publish_spans_total{partition}` (spans stored in JetStream).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message as _;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic_types::{ErrorDetails, StatusExt};
use tracebudget_engine::decode::body::{BodyError, inflate};
use tracebudget_engine::decode::otlp;
use tracebudget_engine::jetstream::{JetStreamConfig, split};
use tracebudget_engine::receiver::otlp_http::RpcStatus;
use tracebudget_engine::receiver::{RETRY_AFTER, content_type};

/// How long a request waits for JetStream's acks before answering 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML config file: `[jetstream]` and `[ingest] otlp_http` (and `max_body_size`).
    #[arg(long, short)]
    pub config: std::path::PathBuf,
}

#[derive(Debug)]
struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    config: JetStreamConfig,
    max_body: usize,
    metrics: PublishMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: u32,
}

/// `tracebudget_publish_…`.
#[derive(Debug, Default)]
struct PublishMetrics {
    requests: Family<RequestLabels, Counter>,
    spans: Family<PartitionLabels, Counter>,
}

impl PublishMetrics {
    fn request(&self, protocol: &'static str, outcome: &'static str) {
        self.requests.get_or_create(&RequestLabels { protocol, outcome }).inc();
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = crate::app::config::load(Path::new(&args.config))?;
    crate::cli::serve::init_logging("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async move {
        let js_config = config
            .jetstream
            .clone()
            .context("publish needs a [jetstream] section in the config")?;
        let addr = config
            .ingest
            .otlp_http
            .context("publish needs [ingest] otlp_http: the address it takes OTLP/HTTP on")?;
        let client = tracebudget_engine::jetstream::consumer::connect(&js_config.url)
            .await
            .map_err(anyhow::Error::msg)?;
        let js = jetstream::new(client.clone());
        let stop = CancellationToken::new();
        let publisher = Arc::new(Publisher {
            client,
            js,
            config: js_config,
            max_body: usize::try_from(config.ingest.max_body_size.0).unwrap_or(usize::MAX),
            metrics: PublishMetrics::default(),
        });
        let mut registry = Registry::with_prefix("tracebudget_publish");
        registry.register(
            "requests",
            "OTLP requests taken by publish, per protocol and outcome",
            publisher.metrics.requests.clone(),
        );
        registry.register(
            "spans",
            "Spans stored in JetStream (acked), per partition",
            publisher.metrics.spans.clone(),
        );
        let registry = Arc::new(registry);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for otlp_http on {addr}"))?;
        tracing::info!(%addr, stream = %publisher.config.stream, "publishing OTLP/HTTP to JetStream");
        // The stream is created in the background: NATS may come up after us.
        tokio::spawn({
            let p = publisher.clone();
            async move {
                loop {
                    match tracebudget_engine::jetstream::consumer::ensure_stream(&p.js, &p.config).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        let mut servers = tokio::task::JoinSet::new();
        if let Some(grpc) = config.ingest.otlp_grpc {
            let listener = tokio::net::TcpListener::bind(grpc)
                .await
                .with_context(|| format!("cannot listen for otlp_grpc on {grpc}"))?;
            tracing::info!(%grpc, "publishing OTLP/gRPC to JetStream");
            let service = TraceServiceServer::new(Grpc(publisher.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(publisher.max_body);
            let stop = stop.clone();
            servers.spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop.cancelled_owned())
                    .await
                    .context("the OTLP/gRPC server failed")
            });
        }
        let metrics_listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen for /metrics on {}", config.server.listen))?;
        servers.spawn({
            let stop = stop.clone();
            let app = Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let registry = registry.clone();
                    async move {
                        let mut text = String::new();
                        match prometheus_client::encoding::text::encode(&mut text, &registry) {
                            Ok(()) => (
                                [(
                                    header::CONTENT_TYPE,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )],
                                text,
                            )
                                .into_response(),
                            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                        }
                    }
                }),
            );
            async move {
                axum::serve(metrics_listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("the /metrics server failed")
            }
        });
        let app = router(publisher);
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
        });
        #[cfg(unix)]
        tokio::spawn({
            let stop = stop.clone();
            async move {
                if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    term.recv().await;
                    stop.cancel();
                }
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await
            .context("the OTLP/HTTP server failed")?;
        stop.cancel();
        while let Some(r) = servers.join_next().await {
            r.context("a server task panicked")??;
        }
        Ok(())
    })
}

/// OTLP/gRPC: the same split and publish; UNAVAILABLE with `RetryInfo` when not stored.
#[derive(Debug)]
struct Grpc(Arc<Publisher>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match publish(&self.0, request.into_inner()).await {
            Ok(()) => {
                self.0.metrics.request("grpc", "ok");
                Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
            }
            Err(e) => {
                self.0.metrics.request("grpc", "unavailable");
                tracing::warn!(error = %e, "a request was not stored in JetStream; the client retries");
                Err(tonic::Status::with_error_details(
                    tonic::Code::Unavailable,
                    format!("not stored in JetStream: {e}"),
                    ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
                ))
            }
        }
    }
}

fn router(p: Arc<Publisher>) -> Router {
    Router::new().route("/v1/traces", post(export)).with_state(p)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

async fn export(State(p): State<Arc<Publisher>>, headers: HeaderMap, body: Body) -> Response {
    let format = match content_type(&headers) {
        Some("application/x-protobuf") => Format::Protobuf,
        Some("application/json") => Format::Json,
        other => {
            return refuse(
                &p,
                "unsupported_media_type",
                Format::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {:?}: send application/x-protobuf or application/json",
                    other.unwrap_or("")
                ),
            );
        }
    };
    let too_large = || {
        refuse(
            &p,
            "too_large",
            format,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds max_body_size ({} bytes)", p.max_body),
        )
    };
    let raw = match axum::body::to_bytes(body, p.max_body).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    let bytes = match inflate(raw, encoding, p.max_body) {
        Ok(b) => b,
        Err(BodyError::TooLarge { .. }) => return too_large(),
        Err(BodyError::Corrupt(m)) => {
            return refuse(
                &p,
                "malformed",
                format,
                StatusCode::BAD_REQUEST,
                format!("corrupt {} body: {m}", encoding.unwrap_or("encoded")),
            );
        }
        Err(BodyError::Unsupported(m)) => {
            return refuse(
                &p,
                "unsupported_encoding",
                format,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                m,
            );
        }
    };
    let request = match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(bytes).map_err(otlp_error),
        Format::Json => otlp::parse_json(&bytes),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return refuse(&p, "malformed", format, StatusCode::BAD_REQUEST, e.to_string()),
    };
    let protocol = match format {
        Format::Protobuf => "http_protobuf",
        Format::Json => "http_json",
    };
    match publish(&p, request).await {
        Ok(()) => {
            p.metrics.request(protocol, "ok");
            match format {
                Format::Protobuf => (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default()
                        .encode_to_vec(),
                )
                    .into_response(),
                Format::Json => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "a request was not stored in JetStream; the client retries");
            let mut r = refuse(
                &p,
                "unavailable",
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored in JetStream: {e}: retry after {}s", RETRY_AFTER.as_secs()),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER.as_secs()));
            r
        }
    }
}

fn otlp_error(e: prost::DecodeError) -> tracebudget_engine::decode::DecodeError {
    tracebudget_engine::decode::DecodeError::Protobuf(e)
}

/// Publishes every partition's part and waits for all of JetStream's acks.
async fn publish(p: &Publisher, request: ExportTraceServiceRequest) -> Result<(), String> {
    // Parts fit the server's max_payload (1 MB by default), headers aside.
    let max_payload = match p.client.server_info().max_payload {
        0 => 1 << 20,
        n => n,
    };
    let parts = split::split_within(request, p.config.partitions, max_payload.saturating_sub(1_024));
    let mut acks = Vec::with_capacity(parts.len());
    for part in parts {
        let subject = p.config.subject(part.partition);
        let mut id = sha2::Sha256::new();
        id.update(subject.as_bytes());
        id.update([0]);
        id.update(&part.payload);
        let id: String = id.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        let message = jetstream::message::PublishMessage::build()
            .payload(part.payload.into())
            .message_id(id);
        let ack =
            p.js.send_publish(subject, message)
                .await
                .map_err(|e| format!("partition {}: {e}", part.partition))?;
        acks.push((part.partition, part.spans, ack));
    }
    let all = async {
        for (partition, spans, ack) in acks {
            ack.await.map_err(|e| format!("partition {partition}: {e}"))?;
            p.metrics
                .spans
                .get_or_create(&PartitionLabels { partition })
                .inc_by(spans);
        }
        Ok(())
    };
    tokio::time::timeout(PUBLISH_TIMEOUT, all)
        .await
        .map_err(|_| format!("no ack from JetStream within {}s", PUBLISH_TIMEOUT.as_secs()))?
}

/// The receivers' error answer: a `google.rpc.Status` in the request's encoding; counted.
fn refuse(p: &Publisher, outcome: &'static str, format: Format, status: StatusCode, message: String) -> Response {
    let protocol = match format {
        Format::Protobuf => "http_protobuf",
        Format::Json => "http_json",
    };
    p.metrics.request(protocol, outcome);
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
        _ => 3,                                // INVALID_ARGUMENT
    };
    let body = RpcStatus { code, message };
    match format {
        Format::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Format::Json => {
            let json = serde_json::json!({ "code": body.code, "message": body.message }).to_string();
            (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
    }
}
