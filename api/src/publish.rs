//! `tracebudget publish`: takes OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, gzip) on
//! `[ingest] otlp_http`, splits each request by trace partition and publishes each part to
//! `<subject_prefix>.<k>` of the `[jetstream]` stream, answering the client only once JetStream
//! has acked every part: 200 when all are stored, 503 with `Retry-After` otherwise (the client
//! retries; parts already stored are dropped by JetStream as duplicates, because each part's
//! `Nats-Msg-Id` is the SHA-256 of its subject and bytes, within the stream's
//! `duplicate_window`). Malformed, oversized and unknown-type bodies get the receivers' answers.

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
use engine::decode::body::{BodyError, inflate};
use engine::decode::otlp;
use engine::jetstream::{JetStreamConfig, split};
use engine::receiver::otlp_http::RpcStatus;
use engine::receiver::{RETRY_AFTER, content_type};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

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
    js: jetstream::Context,
    config: JetStreamConfig,
    max_body: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = crate::config::load(Path::new(&args.config))?;
    crate::serve::init_logging("info");
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
        let client = engine::jetstream::consumer::connect(&js_config.url)
            .await
            .map_err(anyhow::Error::msg)?;
        let js = jetstream::new(client);
        let stop = CancellationToken::new();
        let publisher = Arc::new(Publisher {
            js,
            config: js_config,
            max_body: usize::try_from(config.ingest.max_body_size.0).unwrap_or(usize::MAX),
        });
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for otlp_http on {addr}"))?;
        tracing::info!(%addr, stream = %publisher.config.stream, "publishing OTLP/HTTP to JetStream");
        // The stream is created in the background: NATS may come up after us.
        tokio::spawn({
            let p = publisher.clone();
            async move {
                loop {
                    match engine::jetstream::consumer::ensure_stream(&p.js, &p.config).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
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
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("the OTLP/HTTP server failed")
    })
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
                format,
                StatusCode::BAD_REQUEST,
                format!("corrupt {} body: {m}", encoding.unwrap_or("encoded")),
            );
        }
        Err(BodyError::Unsupported(m)) => return refuse(format, StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
    };
    let request = match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(bytes).map_err(otlp_error),
        Format::Json => otlp::parse_json(&bytes),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return refuse(format, StatusCode::BAD_REQUEST, e.to_string()),
    };
    match publish(&p, request).await {
        Ok(()) => match format {
            Format::Protobuf => (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response(),
            Format::Json => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "a request was not stored in JetStream; the client retries");
            let mut r = refuse(
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

fn otlp_error(e: prost::DecodeError) -> engine::decode::DecodeError {
    engine::decode::DecodeError::Protobuf(e)
}

/// Publishes every partition's part and waits for all of JetStream's acks.
async fn publish(p: &Publisher, request: ExportTraceServiceRequest) -> Result<(), String> {
    let parts = split::split(request, p.config.partitions);
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
        acks.push((part.partition, ack));
    }
    let all = async {
        for (partition, ack) in acks {
            ack.await.map_err(|e| format!("partition {partition}: {e}"))?;
        }
        Ok(())
    };
    tokio::time::timeout(PUBLISH_TIMEOUT, all)
        .await
        .map_err(|_| format!("no ack from JetStream within {}s", PUBLISH_TIMEOUT.as_secs()))?
}

/// The receivers' error answer: a `google.rpc.Status` in the request's encoding.
fn refuse(format: Format, status: StatusCode, message: String) -> Response {
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
