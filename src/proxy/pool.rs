//! A worker's pool of keep-alive HTTP/1.1 connections to one upstream.
//!
//! Each worker thread has its own pools (owned by `crate::runtime`, kept across a
//! reload that leaves the upstream unchanged), so a connection is only used by
//! the runtime that opened it. A connection goes back to the pool when the response
//! body it carried has been read to the end — no task is spawned per request to watch
//! for that — and is closed instead when the body is abandoned half-way, when the
//! upstream closed it, or when it sat idle longer than `pool_idle_timeout` (a reaper
//! task per pool sweeps idle connections). A request that meets a pooled connection
//! the upstream has just closed is retried on another one: it was not sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::LimitedBody;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to the upstream failed: {0}")]
    Connect(std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("upstream request failed: {0}")]
    Request(hyper::Error),
}

struct Idle {
    sender: SendRequest<LimitedBody>,
    since: Instant,
}

/// The pool of one upstream, for one worker.
pub struct Pool {
    authority: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    reaper_started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(
        authority: &str,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            authority: authority.to_string(),
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            reaper_started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock leaves a Vec in a valid state.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A usable idle connection, most recently used first; stale ones are dropped.
    fn take_idle(&self) -> Option<SendRequest<LimitedBody>> {
        let mut idle = self.idle();
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() && i.since.elapsed() < self.idle_timeout {
                return Some(i.sender);
            }
        }
        None
    }

    fn put_back(&self, sender: SendRequest<LimitedBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<SendRequest<LimitedBody>, SendError> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Request)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        self.start_reaper();
        Ok(sender)
    }

    /// Closes connections idle for longer than the idle timeout, until the pool is
    /// dropped (a reload replaces it).
    fn start_reaper(self: &Arc<Self>) {
        if self
            .reaper_started
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let weak: Weak<Pool> = Arc::downgrade(self);
        let period = (self.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(pool) = weak.upgrade() else { return };
                let timeout = pool.idle_timeout;
                pool.idle()
                    .retain(|i| !i.sender.is_closed() && i.since.elapsed() < timeout);
            }
        });
    }

    /// Number of idle connections (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Sends a request on a pooled or new connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<LimitedBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let upload = req.body().progress();
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(SendError::Request(e));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    // A connection that switched protocols is no longer HTTP: it is
                    // the tunnel's, or closed, never reused.
                    let release = (parts.status != http::StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| (sender, self.clone()));
                    let body = UpstreamBody::new(body, release, upload);
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the upstream closed a reused connection under us.
                    Some(r) if reused => req = r,
                    _ => return Err(SendError::Request(e.into_error())),
                },
            }
        }
    }
}

/// An upstream response body that hands its connection back to the pool once it has
/// been read to the end.
pub struct UpstreamBody {
    inner: Incoming,
    release: Option<(SendRequest<LimitedBody>, Arc<Pool>)>,
    /// The request body's progress: an upstream that answered before it had the
    /// whole request (a `401`, a `413`) is still reading it, so its connection is
    /// closed, not pooled — the next request would wait behind the upload, or be
    /// read by an upstream that skips unread bodies as part of this one.
    upload: Arc<crate::body::BodyProgress>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn new(
        inner: Incoming,
        release: Option<(SendRequest<LimitedBody>, Arc<Pool>)>,
        upload: Arc<crate::body::BodyProgress>,
    ) -> UpstreamBody {
        let mut body = UpstreamBody {
            inner,
            release,
            upload,
        };
        if http_body::Body::is_end_stream(&body.inner) {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.release.take() {
            if self.upload.done.load(std::sync::atomic::Ordering::Relaxed) {
                pool.put_back(sender);
            }
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if http_body::Body::is_end_stream(&this.inner) => {
                this.release()
            }
            Poll::Ready(Some(Err(_))) => this.release = None,
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
