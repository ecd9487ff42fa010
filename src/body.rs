//! The body types that cross the gateway.
//!
//! [`Body`] is every response body Portcullis sends (generated JSON, or an upstream's
//! body streamed through). [`LimitedBody`] wraps a client's request body on its way to
//! an upstream and stops it at `max_body_bytes`. Neither buffers: frames pass one by
//! one.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::Notify;

use crate::proxy::pool::UpstreamBody;

/// A response body: nothing, one chunk, or an upstream body streamed through.
#[derive(Debug)]
pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// Any of the above, counted, with its access-log line written at the end.
    Logged(Box<crate::middleware::access_log::Logged>),
}

impl Body {
    /// A body of one chunk.
    pub fn full(b: impl Into<Bytes>) -> Body {
        Body::Full(Some(b.into()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Upstream(i) => Pin::new(i).poll_frame(cx),
            Body::Logged(l) => Pin::new(l.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Upstream(i) => i.is_end_stream(),
            Body::Logged(l) => l.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Upstream(i) => i.size_hint(),
            Body::Logged(l) => l.size_hint(),
        }
    }
}

/// The error a [`LimitedBody`] yields past its limit.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than the configured limit")]
pub struct BodyTooLarge;

/// What the forwarding code learns about a request body while it streams.
#[derive(Debug, Default)]
pub struct BodyProgress {
    /// Set when the body went over the limit (`413` rather than `502`).
    pub exceeded: AtomicBool,
    /// Set when reading the client's body failed (bad chunked framing, the client
    /// went away mid-body): the client's fault, `400` rather than `502`.
    pub client_failed: AtomicBool,
    /// Notified once the whole body went through, so that the upstream's response
    /// timeout starts when the upstream has the complete request.
    pub finished: Notify,
    /// Set once the whole body went through: until then the upstream connection is
    /// still busy with this request and must not be reused (pool.rs).
    pub done: AtomicBool,
}

impl BodyProgress {
    fn end(&self) {
        self.done.store(true, Ordering::Relaxed);
        self.finished.notify_one();
    }
}

/// A request body entering the stack: a client's, as hyper read it, or one chunk made
/// in-process (`explain`, benchmarks, tests) — the same stack serves both.
#[derive(Debug)]
pub enum RequestBody {
    Incoming(Incoming),
    Full(Option<Bytes>),
}

impl RequestBody {
    pub fn empty() -> RequestBody {
        RequestBody::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> RequestBody {
        let b = b.into();
        RequestBody::Full((!b.is_empty()).then_some(b))
    }
}

impl From<Incoming> for RequestBody {
    fn from(b: Incoming) -> RequestBody {
        RequestBody::Incoming(b)
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Incoming(b) => Pin::new(b).poll_frame(cx),
            RequestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Incoming(b) => b.is_end_stream(),
            RequestBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Incoming(b) => b.size_hint(),
            RequestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// A client request body that fails once more than `limit` bytes went through.
#[derive(Debug)]
pub struct LimitedBody {
    inner: RequestBody,
    remaining: u64,
    progress: Arc<BodyProgress>,
    /// Bytes read, for the access log.
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl LimitedBody {
    pub fn new(
        inner: RequestBody,
        limit: u64,
        read: Arc<std::sync::atomic::AtomicU64>,
    ) -> (LimitedBody, Arc<BodyProgress>) {
        let progress = Arc::new(BodyProgress::default());
        if http_body::Body::is_end_stream(&inner) {
            progress.end();
        }
        let body = LimitedBody {
            inner,
            remaining: limit,
            progress: progress.clone(),
            read,
        };
        (body, progress)
    }

    /// What is learnt about this body as it streams.
    pub fn progress(&self) -> Arc<BodyProgress> {
        self.progress.clone()
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            // Request trailers are never forwarded: HTTP/1.1 upstreams would not get
            // them anyway (hyper drops undeclared ones), and an HTTP/2 upstream that
            // merges them into the headers would read a client's `x-auth-subject`.
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                this.progress.end();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.progress.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= n;
                    this.read.fetch_add(n, Ordering::Relaxed);
                }
                // The sender may stop polling once the body says it has ended.
                if http_body::Body::is_end_stream(&this.inner) {
                    this.progress.end();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.progress.client_failed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.progress.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
