//! The two wrappers that cut slow clients off: [`Watched`] around a connection (the first
//! request's head must arrive within the header timeout, and it tells an idle keep-alive
//! connection from a client stuck halfway through a head) and [`TimeoutBody`] around a request
//! body (some of it must arrive within the body timeout, again and again).

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

use super::Counted;

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

/// The client sent no part of the request body for the body read timeout. The receivers answer
/// 408 when they find it in a body error's sources.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent nothing of the request body for {}",
            slis::config::HumanDuration(self.0)
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] (counted once, `reason="body"`) when no frame
/// arrives for `timeout`. The timer is only made when the body has to wait, so a body that is
/// already there costs nothing.
#[derive(Debug)]
pub struct TimeoutBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
    timed_out: bool,
    counted: Counted,
}

impl TimeoutBody {
    pub(super) fn new(inner: Incoming, timeout: Duration, counted: Counted) -> Self {
        TimeoutBody {
            inner,
            timeout,
            sleep: None,
            armed: false,
            timed_out: false,
            counted,
        }
    }
}

impl Body for TimeoutBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if !this.armed {
            this.armed = true;
            let deadline = Instant::now() + this.timeout;
            match &mut this.sleep {
                Some(s) => s.as_mut().reset(deadline),
                None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let sleep = this.sleep.as_mut().expect("armed above");
        ready!(sleep.as_mut().poll(cx));
        this.timed_out = true;
        this.counted.count("body");
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
