//! `tracebudget publish`: the OTLP front-ends of `[ingest]` (OTLP/HTTP on `otlp_http`, protobuf
//! or JSON; OTLP/gRPC on `otlp_grpc`; gzip) in front of JetStream instead of the pipeline: each
//! request is split by trace partition and each part published to `<subject_prefix>.<k>` of the
//! `[jetstream]` stream, and the client is answered only once JetStream has acked every part: 200
//! when all are stored, 503 with `Retry-After` otherwise (the client retries; parts already stored
//! are dropped by JetStream as duplicates, because each part's `Nats-Msg-Id` is the SHA-256 of its
//! subject and bytes, within the stream's `duplicate_window`); gRPC answers UNAVAILABLE with a
//! `RetryInfo` instead. The front-ends are `serve`'s own (`tracebudget_engine::receiver`: same
//! limits, refusals and error bodies). `/metrics` on `[server] listen`:
//! `tracebudget_publish_requests_total{protocol,outcome}` (ok, malformed, too_large,
//! unsupported_media_type, unsupported_encoding, unavailable, …) and
//! `tracebudget_publish_spans_total{partition}` (spans stored in JetStream).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message as _;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;
use tracebudget_engine::config::IngestConfig;
use tracebudget_engine::decode::{DecodeError, otlp};
use tracebudget_engine::jetstream::{JetStreamConfig, split};
use tracebudget_engine::listen::ListenMetrics;
use tracebudget_engine::receiver::{
    self, Accepted, Destination, Format, Intake, Payload, Protocol, RETRY_AFTER, Reason, Refusal,
};

/// How long a request waits for JetStream's acks before answering 503.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML config file: `[jetstream]` and `[ingest] otlp_http` (and `max_body_size`).
    #[arg(long, short)]
    pub config: std::path::PathBuf,
}

/// The JetStream destination.
#[derive(Debug)]
struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    config: JetStreamConfig,
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

impl Destination for Publisher {
    async fn accept(&self, payload: Payload) -> Result<Accepted, Refusal> {
        let protocol = payload.protocol();
        let request = match payload {
            Payload::Otlp(request) => request,
            Payload::OtlpProtobuf(bytes) => ExportTraceServiceRequest::decode(bytes)
                .map_err(|e| Refusal::malformed(DecodeError::Protobuf(e).to_string()))?,
            Payload::OtlpJson(bytes) => otlp::parse_json(&bytes).map_err(|e| Refusal::malformed(e.to_string()))?,
            Payload::ZipkinJson(_) => {
                return Err(Refusal::new(
                    Reason::UnsupportedMediaType,
                    "publish takes OTLP only: send OTLP/HTTP or OTLP/gRPC",
                ));
            }
        };
        if let Err(e) = publish(self, request).await {
            tracing::warn!(error = %e, "a request was not stored in JetStream; the client retries");
            // gRPC clients read the delay from the RetryInfo detail.
            let message = match protocol {
                Protocol::OtlpGrpc => format!("not stored in JetStream: {e}"),
                _ => format!("not stored in JetStream: {e}: retry after {}s", RETRY_AFTER.as_secs()),
            };
            return Err(Refusal::new(Reason::Unavailable, message));
        }
        Ok(Accepted::default())
    }

    fn count(&self, protocol: Protocol, outcome: &'static str) {
        let protocol = match protocol {
            Protocol::OtlpGrpc => "grpc",
            Protocol::OtlpHttp(Format::Protobuf) => "http_protobuf",
            Protocol::OtlpHttp(Format::Json) => "http_json",
            Protocol::Zipkin => "zipkin",
        };
        self.metrics
            .requests
            .get_or_create(&RequestLabels { protocol, outcome })
            .inc();
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
        anyhow::ensure!(
            config.ingest.otlp_http.is_some(),
            "publish needs [ingest] otlp_http: the address it takes OTLP/HTTP on"
        );
        let client = tracebudget_engine::jetstream::consumer::connect(&js_config.url)
            .await
            .map_err(anyhow::Error::msg)?;
        let js = jetstream::new(client.clone());
        let stop = CancellationToken::new();
        let metrics = PublishMetrics::default();
        let mut registry = Registry::with_prefix("tracebudget_publish");
        registry.register(
            "requests",
            "OTLP requests taken by publish, per protocol and outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "spans",
            "Spans stored in JetStream (acked), per partition",
            metrics.spans.clone(),
        );
        let registry = Arc::new(registry);
        // The stream is created in the background: NATS may come up after us.
        tokio::spawn({
            let (js, config) = (js.clone(), js_config.clone());
            async move {
                loop {
                    match tracebudget_engine::jetstream::consumer::ensure_stream(&js, &config).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        let stream = js_config.stream.clone();
        let publisher = Publisher {
            client,
            js,
            config: js_config,
            metrics,
        };
        // Publish takes OTLP only; the body budget is its own, not exported.
        let ingest = IngestConfig {
            zipkin: None,
            ..config.ingest.clone()
        };
        let intake = Arc::new(Intake::new(&ingest, publisher, Gauge::default()));
        let mut tasks = tokio::task::JoinSet::new();
        let listen_metrics = Arc::new(ListenMetrics::default());
        let bound = receiver::start(&ingest, intake, listen_metrics, stop.clone(), &mut tasks).await?;
        for (source, addr) in &bound {
            tracing::info!(receiver = source.as_str(), %addr, %stream, "publishing OTLP to JetStream");
        }
        let metrics_listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen for /metrics on {}", config.server.listen))?;
        tasks.spawn({
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
            }
        });
        let mut failed = None;
        tokio::select! {
            _ = crate::cli::serve::shutdown_signal() => tracing::info!("stopping"),
            Some(result) = tasks.join_next() => {
                failed = Some(result.context("a server task panicked").and_then(|r| r.context("a server stopped")));
            }
        }
        stop.cancel();
        while let Some(r) = tasks.join_next().await {
            r.context("a server task panicked")??;
        }
        if let Some(Err(e)) = failed {
            return Err(e);
        }
        Ok(())
    })
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
