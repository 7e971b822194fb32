//! The two wrappers that cut slow clients off: [`Watched`] around a connection (the first
//! request's head must arrive within the header timeout, and it tells an idle keep-alive
//! connection from a client stuck halfway through a head) and [`TimeoutBody`] around a request
//! body (all of it must arrive within the body timeout of its head).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use serde::Deserialize;
use slis::config::HumanDuration;

use super::metrics::Counted;

/// What a connection's wrapper and its service share.
#[derive(Debug, Default)]
pub(super) struct ConnState {
    /// A request head reached the service.
    pub request_seen: AtomicBool,
    /// The last thing that happened was a response being written: the connection is idle
    /// between requests, not in the middle of one.
    pub idle: AtomicBool,
}

/// The connection's first request did not arrive within the header timeout.
#[derive(Debug)]
pub(super) struct FirstRequestTimeout;

impl std::fmt::Display for FirstRequestTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no complete request head within the header read timeout")
    }
}

impl std::error::Error for FirstRequestTimeout {}

/// A connection (plain or TLS) that fails its reads once `first_request` passes without a
/// request head. hyper's own `header_read_timeout` covers the heads of HTTP/1 requests once it
/// has picked HTTP/1; this covers the bytes before that choice (HTTP/2's preface too).
#[derive(Debug)]
pub(super) struct Watched<T> {
    pub inner: T,
    pub state: Arc<ConnState>,
    pub first_request: Option<Pin<Box<Sleep>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.state.idle.store(false, Ordering::Relaxed);
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if let Some(deadline) = &mut this.first_request {
                    if this.state.request_seen.load(Ordering::Relaxed) {
                        this.first_request = None;
                    } else if deadline.as_mut().poll(cx).is_ready() {
                        this.first_request = None;
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, FirstRequestTimeout)));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if n > 0 {
            this.state.idle.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            this.state.idle.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request body was not complete within the body timeout, counted from its head. The
/// receivers answer 408 (gRPC: DEADLINE_EXCEEDED) when they find it in a body error's sources.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body was not complete within body_read_timeout ({})",
            slis::config::HumanDuration(self.0)
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] (counted once, `reason="body"`) when it has
/// not ended by its deadline: one deadline for the whole body, set when the request head
/// arrived, so a client that sends a byte now and then is cut off all the same. The timer is
/// only made when the body has to wait, so a body that is already there costs nothing.
#[derive(Debug)]
pub struct TimeoutBody<B = Incoming> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
    counted: Counted,
}

impl<B> TimeoutBody<B> {
    /// The body of a request whose head arrived now.
    pub fn new(inner: B, timeout: Duration, counted: Counted) -> Self {
        TimeoutBody {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
            timed_out: false,
            counted,
        }
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.timed_out = true;
        this.counted.count("body");
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

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
