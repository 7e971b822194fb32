//! The one place HTTP is served: the OTLP/HTTP and Zipkin receivers and the API all go through
//! [`serve_http`] (an accept loop, the optional TLS handshake with a timeout, then hyper-util's
//! HTTP/1 + HTTP/2 connection builder serving an axum `Router`). The OTLP/gRPC receiver keeps
//! tonic's server and takes its connections from [`incoming`], through the same gate.
//!
//! Every listener holds at most `max_connections` open connections (handshakes included); one
//! more is closed as soon as it is accepted and counted in
//! `tracebudget_connections_refused_total{listener,reason="max_connections"}`; the open ones are
//! `tracebudget_connections_open{listener}`.
//!
//! Slow clients are cut off and counted (`tracebudget_http_timeouts_total{listener,reason}`):
//! `header` when a request head is not complete within `header_read_timeout` (a connection
//! that sends half a header line and sleeps), `body` when a request body has not ended
//! `body_read_timeout` after its head arrived — one deadline for the whole body, however the
//! bytes trickle in. An idle keep-alive connection is closed after `header_read_timeout`
//! too, without being counted: it did nothing wrong. Failed handshakes are counted in
//! `tracebudget_tls_handshake_failures_total{listener,reason}`; none of them stops the listener.
//!
//! **Invariant:** every request has a deadline: its head within `header_read_timeout`, its
//! whole body within `body_read_timeout` of the head.
//!
//! **Invariant:** without `tls` a connection never touches rustls: the plain path is the
//! accept loop and hyper, as before.

mod io;
mod metrics;
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
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::Service;

pub use io::{BodyTimeout, Timeout, TimeoutBody};
pub use metrics::{Counted, ListenMetrics, ListenerLabel, ListenerLabels};
pub use tls::{Tls, TlsConfig};

use io::{ConnState, FirstRequestTimeout, Watched};

/// How one listener serves.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The `listener` label: `otlp_http`, `zipkin`, `otlp_grpc`, `api`.
    pub name: &'static str,
    pub tls: Option<Tls>,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Open connections at most; one more is closed at once (counted).
    pub max_connections: usize,
    pub metrics: Arc<ListenMetrics>,
}

/// The open connections of one listener, at most `max_connections`: the gauge
/// `tracebudget_connections_open` is the count itself.
#[derive(Debug, Clone)]
struct Gate {
    open: Gauge,
    max: i64,
    listener: &'static str,
    metrics: Arc<ListenMetrics>,
}

impl Gate {
    fn new(listen: &Listen) -> Gate {
        Gate {
            open: listen
                .metrics
                .connections_open
                .get_or_create(&ListenerLabel { listener: listen.name })
                .clone(),
            max: i64::try_from(listen.max_connections).unwrap_or(i64::MAX),
            listener: listen.name,
            metrics: listen.metrics.clone(),
        }
    }

    /// A slot for a connection just accepted, or `None` (counted) when every slot is taken:
    /// the caller closes the connection.
    fn admit(&self) -> Option<Slot> {
        if self.open.inc() >= self.max {
            self.open.dec();
            tracing::debug!(
                listener = self.listener,
                max = self.max,
                "refused a connection over max_connections"
            );
            self.metrics
                .connections_refused
                .get_or_create(&ListenerLabels {
                    listener: self.listener,
                    reason: "max_connections",
                })
                .inc();
            return None;
        }
        Some(Slot(self.open.clone()))
    }
}

/// One open connection of a [`Gate`]; dropped with the connection.
#[derive(Debug)]
struct Slot(Gauge);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.dec();
    }
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
    let gate = Gate::new(&listen);
    let shared = Arc::new(Shared {
        builder,
        app,
        counted: listen.metrics.counted(listen.name),
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
        let Some(slot) = gate.admit() else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, slot, shared.clone(), graceful.watcher()));
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

async fn connection(tcp: TcpStream, _slot: Slot, shared: Arc<Shared>, watcher: Watcher) {
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

/// A connection for tonic, plain or TLS, holding its slot of the listener's gate.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    _slot: Slot,
}

#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.stream {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// The connections of `listener` for tonic's `serve_with_incoming_shutdown`, through the
/// listener's gate (`max_connections`) and, with `tls`, after their handshake. Handshakes run
/// side by side (a slow one holds nobody up); failures are counted and never reach tonic.
/// Accepting stops when tonic drops the stream.
pub fn incoming(
    listener: TcpListener,
    listen: &Listen,
) -> impl futures_util::Stream<Item = std::io::Result<Conn>> + Send + 'static {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Conn>(64);
    let gate = Gate::new(listen);
    let (name, tls, metrics) = (listen.name, listen.tls.clone(), listen.metrics.clone());
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
            let Some(slot) = gate.admit() else {
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &tls else {
                let _ = tx
                    .send(Conn {
                        stream: Stream::Plain(tcp),
                        _slot: slot,
                    })
                    .await;
                continue;
            };
            let (tx, tls, metrics) = (tx.clone(), tls.clone(), metrics.clone());
            tokio::spawn(async move {
                if let Some(stream) = handshake(tcp, &tls, name, &metrics).await {
                    let conn = Conn {
                        stream: Stream::Tls(Box::new(stream)),
                        _slot: slot,
                    };
                    let _ = tx.send(conn).await;
                }
            });
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok)))
}
