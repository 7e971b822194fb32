//! The span front-ends: OTLP/gRPC, OTLP/HTTP (protobuf and JSON) and Zipkin v2 JSON, each in
//! front of a [`Destination`]: `serve`'s pipeline ([`Ingest`]), `tracebudget record`'s capture
//! file or `tracebudget publish`'s JetStream stream.
//!
//! A front-end checks the bearer token, reads the body within the limits and hands it to its
//! destination once per request; every answer comes from one table ([`Reason::answer`]): each
//! refusal's HTTP status, gRPC code, `Retry-After`/`RetryInfo` and `outcome` label. The
//! destination counts every outcome (`serve`: `tracebudget_requests_total{receiver,outcome}`,
//! and each refused span in `tracebudget_spans_rejected_total{receiver,reason}`).
//!
//! Bodies are bounded three ways: a body announced (`Content-Length`) or grown past
//! `max_body_size` is refused with 413 before or as soon as it crosses the limit, never read
//! to the end; all bodies in flight together stay within `max_body_bytes_in_flight` ([`budget`]);
//! and each body has its deadline (`body_read_timeout`, see [`crate::listen`]).
//!
//! - `intake.rs` — [`Intake`]: a destination and the limits (`max_body_size`, `auth_token`, the
//!   budget) its front-ends share.
//! - `http.rs` — the HTTP front-ends' token check and body reading; `otlp_http.rs`, `zipkin.rs`:
//!   their routers. `otlp_grpc.rs` — the tonic `TraceService`, with a `Guard` for its bodies.
//! - `destination.rs` — [`Destination`], [`Payload`] (a body as received), [`Accepted`].
//! - `refusal.rs` — [`Refusal`] and the table of [`Reason`]s.
//! - `ingest.rs` — [`Ingest`], the pipeline destination, and [`wall_clock`].

pub mod budget;
mod destination;
mod http;
mod ingest;
mod intake;
pub mod otlp_grpc;
pub mod otlp_http;
mod refusal;
pub mod zipkin;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use destination::{Accepted, Destination, Format, Payload, Protocol};
pub use ingest::{Ingest, wall_clock};
pub use intake::Intake;
pub use refusal::{Answer, RETRY_AFTER, Reason, Refusal};

use crate::config::IngestConfig;
use crate::listen::{Listen, ListenMetrics, serve_http};
use crate::pipeline::Source;

/// Binds every front-end configured in `[ingest]` (so a taken port fails start-up, not later) and
/// serves them in front of `intake`'s destination until `stop` is cancelled, over TLS with
/// `[ingest.tls]`. Returns the bound addresses (a port 0 in config gets a real one).
pub async fn start<D: Destination>(
    config: &IngestConfig,
    intake: Arc<Intake<D>>,
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
