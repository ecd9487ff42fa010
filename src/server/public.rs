//! The public listener of one worker: accept, the optional TLS handshake, hyper-util's
//! HTTP/1.1 + HTTP/2 server on each connection, the stack behind it, and the drain.
//!
//! A connection has `server.header_read_timeout` to complete its TLS handshake *and*
//! bring its first request (`head_timeout.rs`); a handshake that fails or stalls is
//! closed without a word. Over TLS, ALPN picks the protocol (`h2` or `http/1.1`);
//! hyper-util's detection then reads the preface as on plain connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::head_timeout;
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
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    // This worker's batched access lines reach the writer at least every 250 ms.
    let flusher = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            crate::middleware::access_log::flush_thread();
        }
    });
    loop {
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
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let head_deadline = l.shared.snapshot.load().config.server.header_read_timeout;
        let deadline = Instant::now() + head_deadline;
        let watcher = graceful.watcher();
        let l = l.clone();
        tokio::spawn(async move {
            let acceptor = l.tls.as_ref().map(|t| t.acceptor());
            // The canned 408 is plain text: only on plain connections.
            let (io, timed_out) = head_timeout::WatchedIo::new(stream, acceptor.is_none());
            let Some(acceptor) = acceptor else {
                let peer = Peer::new(addr);
                return serve(l, io, peer, watcher, deadline, timed_out).await;
            };
            let tls = match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
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
            let peer = Peer::tls(addr, TlsPeer::of(tls.get_ref().1));
            serve(l, tls, peer, watcher, deadline, timed_out).await;
        });
    }
    drop(listener);
    tracing::info!(drain = ?drain, "shutting down: draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain time exceeded; closing remaining connections"),
    }
    flusher.abort();
    crate::middleware::access_log::flush_thread();
}

/// Serves one connection's requests through the stack.
async fn serve<I>(
    l: Listener,
    io: I,
    peer: Peer,
    watcher: Watcher,
    deadline: Instant,
    timed_out: Arc<AtomicBool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = peer.addr;
    // Set by the first request: until then the connection is on the head deadline.
    let asked = Arc::new(AtomicBool::new(false));
    let seen = asked.clone();
    let stack = crate::stack::build(l.shared, Arc::new(peer), l.worker);
    let service = service_fn(move |req: Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        stack
            .clone()
            .oneshot(req.map(crate::body::RequestBody::from))
    });
    let conn = l
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let conn = watcher.watch(conn);
    tokio::pin!(conn);
    // The first request must arrive within the head deadline, whatever the
    // protocol: protocol detection has no deadline of its own, and neither
    // has an HTTP/2 connection that sent its preface and nothing else.
    let first = tokio::select! {
        r = &mut conn => Some(r),
        () = tokio::time::sleep_until(deadline) => None,
    };
    let result = match first {
        Some(r) => r,
        None if !asked.load(Ordering::Relaxed) => {
            tracing::debug!(peer = %addr, "no request within the head deadline; closed");
            // Dropping the connection answers 408 if a head had begun.
            timed_out.store(true, Ordering::Relaxed);
            return;
        }
        None => (&mut conn).await,
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
