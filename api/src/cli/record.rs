//! `tracebudget record`: the front-ends of `[ingest]` (OTLP/gRPC, OTLP/HTTP, Zipkin) in front of
//! a capture file that `tracebudget replay` reads, instead of the pipeline.
//!
//! The front-ends are `serve`'s own (`tracebudget_engine::receiver`: same limits, status codes
//! and gzip) with [`Record`] as their destination: a request that decodes is written (flushed, one
//! gzip member each with `--gzip`) before it is answered, so what a client was told was taken is
//! in the file; a write that fails answers 503/UNAVAILABLE and the client retries. OTLP is written
//! as OTLP JSON lines or protobuf frames (`--format`); Zipkin requests are kept as the Zipkin v2
//! arrays they were (JSON only: a protobuf recording refuses a config that listens for Zipkin).
//!
//! `[privacy]` does not apply to the file: a recording is a capture of the raw requests, every
//! attribute included, made on purpose so that a replay sees exactly what `serve` would have —
//! a replay with another config (other journeys, other error rules) needs the values the first
//! one did not read. Treat the file as the traces themselves (same access rules, same retention);
//! what `replay` prints from it goes through the config's redaction rules like `serve`'s output.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracebudget_engine::decode::AttrKeys;
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::receiver::{self, Accepted, Destination, Intake, Payload, Protocol, Reason, Refusal};
use tracebudget_engine::replay::{OutFormat, Request, Writer};

/// Command-line arguments of `tracebudget record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config whose `[ingest]` receivers (addresses, body limits) listen.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The file to write (created or truncated).
    #[arg(long)]
    pub out: PathBuf,
    /// OTLP JSON, one request per line, or OTLP protobuf frames (4-byte big-endian length).
    #[arg(long, value_enum, default_value_t = FileFormat::Json)]
    pub format: FileFormat,
    /// Gzip the file (one member per request, so a crash leaves a readable file).
    #[arg(long)]
    pub gzip: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    Json,
    Proto,
}

impl From<FileFormat> for OutFormat {
    fn from(f: FileFormat) -> OutFormat {
        match f {
            FileFormat::Json => OutFormat::Json,
            FileFormat::Proto => OutFormat::Proto,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = crate::app::config::load(&args.config)?;
    crate::cli::serve::init_logging("info");
    anyhow::ensure!(
        !(args.format == FileFormat::Proto && config.ingest.zipkin.is_some()),
        "--format proto records OTLP only, and {} listens for Zipkin ([ingest] zipkin): use --format json, \
         which keeps Zipkin requests as their JSON arrays",
        args.config.display()
    );
    let writer = Writer::create(&args.out, args.format.into(), args.gzip)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async move {
        let metrics = Arc::new(EngineMetrics::default());
        let record = Record {
            writer,
            metrics: metrics.clone(),
            keys: AttrKeys::from_journeys(&config.journeys),
        };
        let intake = Arc::new(Intake::new(
            &config.ingest,
            record,
            metrics.body_bytes_in_flight.clone(),
        ));
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let listen_metrics = Arc::new(tracebudget_engine::listen::ListenMetrics::default());
        let bound = receiver::start(&config.ingest, intake, listen_metrics, stop.clone(), &mut tasks).await?;
        anyhow::ensure!(!bound.is_empty(), "no receiver configured in [ingest]");
        for (source, addr) in &bound {
            tracing::info!(receiver = source.as_str(), %addr, out = %args.out.display(), "recording");
        }
        let mut failed = None;
        tokio::select! {
            _ = crate::cli::serve::shutdown_signal() => tracing::info!("stopping"),
            Some(result) = tasks.join_next() => {
                failed = Some(result.context("a receiver panicked").and_then(|r| r.context("a receiver stopped")));
            }
        }
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        if let Some(Err(e)) = failed {
            return Err(e);
        }
        tracing::info!(out = %args.out.display(), "stopped; every accepted request is in the file");
        Ok(())
    })
}

/// The capture destination: each request that decodes is appended to the file as it was
/// received, so a replay reads what a live server would have.
#[derive(Debug)]
struct Record {
    writer: Writer,
    metrics: Arc<EngineMetrics>,
    keys: AttrKeys,
}

impl Destination for Record {
    async fn accept(&self, payload: Payload) -> Result<Accepted, Refusal> {
        let decoded = payload.decode(&self.keys)?;
        self.writer
            .write(captured(&payload))
            .map_err(|e| Refusal::new(Reason::RecordFailed, format!("cannot record the request: {e}")))?;
        self.metrics.decoded(payload.protocol().name(), &decoded);
        Ok(Accepted {
            rejected: decoded.rejected,
            first_rejection: decoded.first_rejection,
        })
    }

    fn count(&self, protocol: Protocol, outcome: &'static str) {
        self.metrics.request(protocol.name(), outcome);
    }
}

/// A received request in the capture format.
fn captured(payload: &Payload) -> Request<'_> {
    match payload {
        Payload::Otlp(request) => Request::Otlp(request),
        Payload::OtlpProtobuf(body) => Request::OtlpProtobuf(body),
        Payload::OtlpJson(body) => Request::OtlpJson(body),
        Payload::ZipkinJson(body) => Request::ZipkinJson(body),
    }
}
