//! The public listener of one worker: accept, the optional TLS handshake, hyper-util's
//! HTTP/1.1 + HTTP/2 server on each connection, the stack behind it, and the drain.
//!
//! A connection has `server.header_read_timeout` to complete its TLS handshake *and*
//! bring its first request (`head_timeout.rs`); a handshake that fails or stalls is
//! closed without a word. Over TLS, ALPN picks the protocol (`h2` or `http/1.1`);
//! hyper-util's detection then reads the preface as on plain connections.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::head_timeout;
use crate::metrics::{metrics, ListenerLabel, Raised, ResultLabel};
use crate::runtime::Shared;
use crate::stack::Peer;
use crate::tls::{TlsPeer, TlsState};

/// What every connection of a worker shares.
#[derive(Clone)]
pub(super) struct Listener {
    pub worker: usize,
    pub builder: Arc<auto::Builder<TokioExecutor>>,
    pub shared: Arc<Shared>,
    pub tls: Option<Arc<TlsState>>,
}

pub(super) async fn serve_public(
    l: Listener,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let bounds = l.shared.snapshot.load().config.server.bounds.clone();
    // One permit per open connection: accepting waits for a free one, and the drain
    // waits until every permit is back.
    let cap = bounds.max_connections_per_worker;
    let slots = Arc::new(Semaphore::new(cap));
    // This worker's batched access lines reach the writer at least every 250 ms.
    let flusher = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            crate::middleware::access_log::flush_thread();
        }
    });
    let mut stopping = stop.clone();
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                shed("connections");
                tracing::warn!(
                    cap,
                    "server.max_connections_per_worker reached: accepting paused"
                );
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    _ = stopping.changed() => break,
                }
            }
        };
        let (stream, addr) = tokio::select! {
            res = listener.accept() => match res {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let server = &l.shared.snapshot.load().config.server;
        if let Some(idle) = server.bounds.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(idle);
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        }
        let limits = Limits {
            deadline: Instant::now() + server.header_read_timeout,
            idle: server.bounds.idle_timeout,
            write: server.bounds.write_timeout,
        };
        let (l, stop) = (l.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _open = Raised::new(open_connections());
            let acceptor = l.tls.as_ref().map(|t| t.acceptor());
            // The canned 408 is plain text: only on plain connections.
            let (io, timed_out) =
                head_timeout::WatchedIo::new(stream, acceptor.is_none(), limits.write);
            let tunnels = Some(l.shared.tunnels.clone());
            let Some(acceptor) = acceptor else {
                let peer = Peer {
                    tunnels,
                    ..Peer::new(addr)
                };
                return serve(l, io, peer, stop, limits, timed_out).await;
            };
            let handshake = tokio::time::timeout_at(limits.deadline, acceptor.accept(io)).await;
            let result = match &handshake {
                Ok(Ok(_)) => "success",
                Ok(Err(_)) => "failure",
                Err(_) => "timeout",
            };
            metrics()
                .tls_handshakes
                .get_or_create(&ResultLabel { result })
                .inc();
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %addr, "no TLS handshake within the head deadline; closed");
                    return;
                }
            };
            let peer = Peer {
                tunnels,
                ..Peer::tls(addr, TlsPeer::of(tls.get_ref().1))
            };
            serve(l, tls, peer, stop, limits, timed_out).await;
        });
    }
    drop(listener);
    tracing::info!(drain = ?drain, "shutting down: draining in-flight requests");
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain time exceeded; closing remaining connections"),
    }
    flusher.abort();
    crate::middleware::access_log::flush_thread();
}

/// Counts a refusal by a resource bound.
pub(crate) fn shed(bound: &'static str) {
    metrics()
        .shed
        .get_or_create(&ResultLabel { result: bound })
        .inc();
}

/// A connection's time limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The TLS handshake and the first request head must be in by then.
    deadline: Instant,
    /// No request for this long: closed.
    idle: Duration,
    /// A write without progress for this long: closed.
    write: Duration,
}

/// Requests of one connection in flight, and whether one began or ended since the
/// idle check last looked (no clock read per request).
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    touched: AtomicBool,
}

/// Held by a request of the connection until its answer's head is out.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touched.store(true, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `portcullis_open_connections{listener="public"}`, looked up once.
fn open_connections() -> &'static prometheus_client::metrics::gauge::Gauge {
    static GAUGE: std::sync::LazyLock<prometheus_client::metrics::gauge::Gauge> =
        std::sync::LazyLock::new(|| {
            metrics()
                .open_connections
                .get_or_create_owned(&ListenerLabel { listener: "public" })
        });
    &GAUGE
}

/// Serves one connection's requests through the stack, until it ends, stays idle for
/// `server.idle_timeout` (then it is shut down gracefully: HTTP/2 sends GOAWAY, and
/// what is in flight finishes), or the listener stops (likewise).
async fn serve<I>(
    l: Listener,
    io: I,
    peer: Peer,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
    timed_out: Arc<AtomicBool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = peer.addr;
    let activity = Arc::new(Activity::default());
    // Set by the first request: until then the connection is on the head deadline.
    let asked = Arc::new(AtomicBool::new(false));
    let (seen, busy) = (asked.clone(), activity.clone());
    let stack = crate::stack::build(l.shared, Arc::new(peer), l.worker);
    let service = service_fn(move |req: Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        busy.in_flight.fetch_add(1, Ordering::Relaxed);
        busy.touched.store(true, Ordering::Relaxed);
        let guard = Busy(busy.clone());
        let answer = stack
            .clone()
            .oneshot(req.map(crate::body::RequestBody::from));
        async move {
            let out = answer.await;
            drop(guard);
            out
        }
    });
    let conn = l
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    tokio::pin!(conn);
    // The first request must arrive within the head deadline, whatever the
    // protocol: protocol detection has no deadline of its own, and neither
    // has an HTTP/2 connection that sent its preface and nothing else.
    let first = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = tokio::time::sleep_until(limits.deadline) => None,
        _ = stop.changed() => None,
    };
    let result = match first {
        Some(r) => r,
        None if !asked.load(Ordering::Relaxed) => {
            tracing::debug!(peer = %addr, "no request within the head deadline; closed");
            // Dropping the connection answers 408 if a head had begun.
            timed_out.store(true, Ordering::Relaxed);
            return;
        }
        None => {
            let mut closing = *stop.borrow();
            if closing {
                conn.as_mut().graceful_shutdown();
            }
            // Every idle period: no request in flight and none begun or ended since
            // the last look means idle for between one and two periods.
            let mut check = tokio::time::interval(limits.idle);
            check.reset();
            loop {
                tokio::select! {
                    r = conn.as_mut() => break r,
                    _ = stop.changed(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = check.tick(), if !closing => {
                        let touched = activity.touched.swap(false, Ordering::Relaxed);
                        if activity.in_flight.load(Ordering::Relaxed) == 0 && !touched {
                            tracing::debug!(peer = %addr, "idle for server.idle_timeout; closing");
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        }
    };
    if let Err(e) = result {
        let head_timeout = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        // Dropping the connection below answers 408 if a request had begun.
        timed_out.store(head_timeout, Ordering::Relaxed);
        tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
    }
}
