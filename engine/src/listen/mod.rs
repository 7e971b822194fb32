//! The one place HTTP is served: the OTLP/HTTP and Zipkin receivers and the API all go through
//! [`serve_http`] (an accept loop, the optional TLS handshake with a timeout, then hyper-util's
//! HTTP/1 + HTTP/2 connection builder serving an axum `Router`). The OTLP/gRPC receiver keeps
//! tonic's server and takes its TLS connections from [`tls_incoming`].
//!
//! Slow clients are cut off and counted (`tracebudget_http_timeouts_total{listener,reason}`):
//! `header` when a request head is not complete within `header_read_timeout` (a connection
//! that sends half a header line and sleeps), `body` when nothing of a request body arrives
//! for `body_read_timeout`. An idle keep-alive connection is closed after `header_read_timeout`
//! too, without being counted: it did nothing wrong. Failed handshakes are counted in
//! `tracebudget_tls_handshake_failures_total{listener,reason}`; none of them stops the listener.
//!
//! **Invariant:** without `tls` a connection never touches rustls: the plain path is the
//! accept loop and hyper, as before.

mod io;
pub mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use slis::config::HumanDuration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::Service;

pub use io::{BodyTimeout, TimeoutBody};
pub use tls::{Tls, TlsConfig};

use io::{ConnState, FirstRequestTimeout, Watched};

/// A timeout from the config: a duration longer than zero (`"10s"`, `"500ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HumanDuration")]
pub struct Timeout(pub Duration);

impl TryFrom<HumanDuration> for Timeout {
    type Error = String;
    fn try_from(d: HumanDuration) -> Result<Self, String> {
        if d.0.is_zero() {
            Err("a timeout must be longer than 0".to_owned())
        } else {
            Ok(Timeout(d.0))
        }
    }
}

impl Timeout {
    pub const fn secs(s: u64) -> Self {
        Timeout(Duration::from_secs(s))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

/// The listeners' counters; see the module docs.
#[derive(Debug, Default)]
pub struct ListenMetrics {
    pub tls_handshake_failures: Family<ListenerLabels, Counter>,
    pub http_timeouts: Family<ListenerLabels, Counter>,
}

impl ListenMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, per listener and reason (no_client_cert, bad_cert, timeout, protocol)",
            self.tls_handshake_failures.clone(),
        );
        registry.register(
            "http_timeouts",
            "HTTP clients cut off for being slow, per listener and reason (header, body)",
            self.http_timeouts.clone(),
        );
    }

    /// Shows every series of `listener` at 0 from the start (the TLS ones only with TLS).
    pub fn initialise(&self, listener: &'static str, http: bool, tls: bool) {
        if tls {
            for reason in ["no_client_cert", "bad_cert", "timeout", "protocol"] {
                let _ = self
                    .tls_handshake_failures
                    .get_or_create(&ListenerLabels { listener, reason });
            }
        }
        if http {
            for reason in ["header", "body"] {
                let _ = self.http_timeouts.get_or_create(&ListenerLabels { listener, reason });
            }
        }
    }

    fn tls_failure(&self, listener: &'static str, reason: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&ListenerLabels { listener, reason })
            .inc();
    }
}

/// Counts the slow clients of one listener.
#[derive(Debug, Clone)]
pub struct Counted {
    metrics: Arc<ListenMetrics>,
    listener: &'static str,
}

impl Counted {
    fn count(&self, reason: &'static str) {
        tracing::debug!(listener = self.listener, reason, "cut off a slow client");
        self.metrics
            .http_timeouts
            .get_or_create(&ListenerLabels {
                listener: self.listener,
                reason,
            })
            .inc();
    }
}

/// How one listener serves.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The `listener` label: `otlp_http`, `zipkin`, `otlp_grpc`, `api`.
    pub name: &'static str,
    pub tls: Option<Tls>,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub metrics: Arc<ListenMetrics>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// (each is bounded by the timeouts).
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    listen: Listen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout);
    let shared = Arc::new(Shared {
        builder,
        app,
        counted: Counted {
            metrics: listen.metrics.clone(),
            listener: listen.name,
        },
        listen,
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(shared.listen.name, &e).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, shared.clone(), graceful.watcher()));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Out of file descriptors and the like: say so and give the system a moment, as axum does.
async fn accept_failed(listener: &'static str, e: &std::io::Error) {
    tracing::warn!(listener, error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[derive(Debug)]
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    listen: Listen,
    counted: Counted,
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>, watcher: Watcher) {
    let Some(tls) = &shared.listen.tls else {
        return serve_connection(tcp, shared, watcher).await;
    };
    match handshake(tcp, tls, shared.listen.name, &shared.listen.metrics).await {
        Some(stream) => serve_connection(stream, shared, watcher).await,
        None => drop(watcher),
    }
}

/// The TLS handshake within its timeout; a failure is counted with its reason.
async fn handshake(
    tcp: TcpStream,
    tls: &Tls,
    listener: &'static str,
    metrics: &ListenMetrics,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accept = TlsAcceptor::from(tls.config.clone()).accept(tcp);
    let reason = match tokio::time::timeout(tls.handshake_timeout, accept).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => {
            let reason = tls::failure_reason(&e);
            tracing::debug!(listener, reason, error = %e, "TLS handshake failed");
            reason
        }
        Err(_) => "timeout",
    };
    metrics.tls_failure(listener, reason);
    None
}

async fn serve_connection<T>(io: T, shared: Arc<Shared>, watcher: Watcher)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::default());
    let io = Watched {
        inner: io,
        state: state.clone(),
        first_request: Some(Box::pin(tokio::time::sleep(shared.listen.header_read_timeout))),
    };
    let service = {
        let shared = shared.clone();
        let state = state.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            state.request_seen.store(true, Ordering::Relaxed);
            let timeout = shared.listen.body_read_timeout;
            let counted = shared.counted.clone();
            let request = request.map(|body| TimeoutBody::new(body, timeout, counted));
            shared.app.clone().call(request)
        })
    };
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await
        && let Some(reason) = slow_client(&*e, state.idle.load(Ordering::Relaxed))
    {
        shared.counted.count(reason);
    }
}

/// Whether a connection's error is a head that did not arrive in time (`header`); `None` for
/// anything else, and for an idle keep-alive connection closed after the header timeout.
fn slow_client(e: &(dyn std::error::Error + 'static), idle: bool) -> Option<&'static str> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && h.is_timeout()
        {
            return (!idle).then_some("header");
        }
        // `io::Error::source` skips the error it wraps: look inside.
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|e| e.is::<FirstRequestTimeout>())
        {
            return Some("header");
        }
        source = s.source();
    }
    None
}

/// A TLS connection for tonic: `Connected` with no connect info.
#[derive(Debug)]
pub struct TlsConn(pub tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections of `listener` after their TLS handshake, for tonic's
/// `serve_with_incoming_shutdown`. Handshakes run side by side (a slow one holds nobody up);
/// failures are counted and never reach tonic. Accepting stops when tonic drops the stream.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Tls,
    name: &'static str,
    metrics: Arc<ListenMetrics>,
) -> impl futures_util::Stream<Item = std::io::Result<TlsConn>> + Send + 'static {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<TlsConn>(64);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                () = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        accept_failed(name, &e).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (tx, tls, metrics) = (tx.clone(), tls.clone(), metrics.clone());
            tokio::spawn(async move {
                if let Some(stream) = handshake(tcp, &tls, name, &metrics).await {
                    let _ = tx.send(TlsConn(stream)).await;
                }
            });
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok)))
}
