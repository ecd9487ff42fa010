//! A worker's pool of connections to one upstream: keep-alive HTTP/1.1 connections,
//! or one shared HTTP/2 connection (`proxy/connect.rs` opens them, over TLS for
//! `https://` upstreams).
//!
//! At most `max_connections` are open per worker; a request that finds them all busy
//! waits up to `pool_wait_timeout` for one to come back or close, then gets `503`.
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
use hyper::client::conn::{http1::SendRequest, http2};
use tokio::sync::{Notify, Semaphore};

use super::connect::{Connector, Sender, UpstreamTls};
use crate::body::LimitedBody;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to the upstream failed: {0}")]
    Connect(std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    /// The TLS handshake failed: a certificate that does not verify, no common
    /// protocol, a client certificate refused.
    #[error("TLS to the upstream failed: {0}")]
    Tls(std::io::Error),
    /// `max_connections` busy for `pool_wait_timeout`.
    #[error("every connection to the upstream is busy")]
    PoolFull,
    #[error("upstream request failed: {0}")]
    Request(hyper::Error),
}

/// What a pool is made from (the upstream's configuration).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub connect_to: String,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
    pub max_connections: usize,
    pub wait: Duration,
    pub http2: bool,
    pub tls: Option<UpstreamTls>,
}

struct Idle {
    sender: SendRequest<LimitedBody>,
    since: Instant,
}

/// The pool of one upstream, for one worker.
pub struct Pool {
    connector: Connector,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    /// The shared HTTP/2 connection, when the upstream speaks it.
    h2: Mutex<Option<http2::SendRequest<LimitedBody>>>,
    /// One permit per open connection (`max_connections`).
    slots: Arc<Semaphore>,
    /// Signalled when a connection is put back idle.
    returned: Notify,
    wait: Duration,
    reaper_started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(s: &PoolSettings) -> Arc<Pool> {
        Arc::new(Pool {
            connector: Connector::new(&s.connect_to, s.connect_timeout, s.http2, s.tls.as_ref()),
            idle_timeout: s.idle_timeout,
            max_idle: s.max_idle,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            slots: Arc::new(Semaphore::new(s.max_connections.max(1))),
            returned: Notify::new(),
            wait: s.wait,
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
            drop(idle);
            self.returned.notify_one();
        }
    }

    /// The shared HTTP/2 connection, if open.
    fn shared_h2(&self) -> Option<http2::SendRequest<LimitedBody>> {
        let mut h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        match &*h2 {
            Some(s) if !s.is_closed() => Some(s.clone()),
            _ => {
                *h2 = None;
                None
            }
        }
    }

    /// At the cap: a slot freed (`Some`), or a connection put back (`None`), within
    /// the deadline.
    async fn wait_for_slot(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, SendError> {
        tokio::select! {
            () = self.returned.notified() => Ok(None),
            slot = self.slots.clone().acquire_owned() => slot.map(Some).map_err(|_| SendError::PoolFull),
            () = tokio::time::sleep_until(deadline) => Err(SendError::PoolFull),
        }
    }

    /// A connection for one request: the shared HTTP/2 one, an idle HTTP/1.1 one, a
    /// new one while under `max_connections`, or the first of those to free up within
    /// `pool_wait_timeout`. `upgrade`: only HTTP/1.1 will do.
    async fn sender(self: &Arc<Self>, upgrade: bool) -> Result<(Sender, bool), SendError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            if !upgrade {
                if let Some(s) = self.shared_h2() {
                    return Ok((Sender::H2(s), true));
                }
            }
            if let Some(s) = self.take_idle() {
                return Ok((Sender::H1(s), true));
            }
            let slot = match self.slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                // Boxed, as is the connect below: the rare paths' futures (timers, a
                // TLS handshake) would otherwise be inline in every request's future,
                // which is moved to the heap per request.
                Err(_) => match Box::pin(self.wait_for_slot(deadline)).await? {
                    Some(slot) => slot,
                    None => continue,
                },
            };
            let sender = Box::pin(self.connector.connect(upgrade, slot)).await?;
            if let Sender::H2(s) = &sender {
                *self.h2.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
            }
            self.start_reaper();
            return Ok((sender, false));
        }
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
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        loop {
            let (mut sender, reused) = match self.sender(upgrade).await? {
                (Sender::H1(s), reused) => (s, reused),
                (Sender::H2(s), reused) => {
                    match Box::pin(self.send_h2(s, req, reused, &upload)).await {
                        Ok(resp) => return Ok(resp),
                        Err((Some(r), _)) => {
                            req = r;
                            continue;
                        }
                        Err((None, e)) => return Err(e),
                    }
                }
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

impl Pool {
    /// One request on the shared HTTP/2 connection. The pseudo-headers carry what
    /// HTTP/1.1's request line and `Host` did: `:scheme`, `:authority` (the `Host`
    /// chosen by the forward step) and the origin-form path. A request the connection
    /// could not take (it was closing) comes back to be sent on a new one.
    #[allow(clippy::type_complexity)]
    async fn send_h2(
        self: &Arc<Self>,
        mut sender: http2::SendRequest<LimitedBody>,
        mut req: Request<LimitedBody>,
        reused: bool,
        upload: &Arc<crate::body::BodyProgress>,
    ) -> Result<Response<UpstreamBody>, (Option<Request<LimitedBody>>, SendError)> {
        let scheme = if self.connector.is_tls() {
            "https"
        } else {
            "http"
        };
        if let Some(host) = req.headers_mut().remove(http::header::HOST) {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let absolute = host
                .to_str()
                .ok()
                .and_then(|h| format!("{scheme}://{h}{pq}").parse::<http::Uri>().ok());
            match absolute {
                Some(uri) => *req.uri_mut() = uri,
                None => {
                    req.headers_mut().insert(http::header::HOST, host);
                }
            }
        }
        if let Err(e) = sender.ready().await {
            *self.h2.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Err(((reused).then_some(req), SendError::Request(e)));
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                Ok(Response::from_parts(
                    parts,
                    UpstreamBody::new(body, None, upload.clone()),
                ))
            }
            Err(mut e) => {
                *self.h2.lock().unwrap_or_else(|e| e.into_inner()) = None;
                match e.take_message() {
                    Some(r) if reused => Err((Some(r), SendError::Request(e.into_error()))),
                    _ => Err((None, SendError::Request(e.into_error()))),
                }
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
