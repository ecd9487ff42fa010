//! Listeners: the public one (HTTP/1.1 and HTTP/2 with prior knowledge, upgrades
//! allowed) and the admin one (`/healthz`, `/readyz`), graceful shutdown and reload.
//!
//! Shutdown is two steps: [`Gateway::begin_drain`] turns `/readyz` to `503` while the
//! listeners keep serving (for `server.shutdown_delay` on SIGTERM, `main.rs`), then
//! [`Gateway::shutdown`] stops accepting, lets in-flight requests finish for up to
//! `server.shutdown_drain`, and drops what is left. Reload swaps the snapshot, built
//! by the runtime (`crate::runtime`) from the parts whose configuration is unchanged (counters, keys,
//! pools and caches kept; see `crate::runtime`); `/readyz` does not flip. `listen`,
//! `admin_listen` and `worker_threads` only change on restart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tower::ServiceExt as _;

use crate::body::Body;
use crate::config::{Config, ConfigErrors};
use crate::error::json_response;
use crate::middleware::request_id;
use crate::runtime::Shared;
use crate::stack::Peer;

mod head_timeout;

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// The address the public listener is bound to.
    pub addr: SocketAddr,
    /// The address of the admin listener, if configured.
    pub admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// One per worker and one for the admin listener; fire when each has finished.
    done: Vec<oneshot::Receiver<()>>,
}

/// Binds a listener; with `reuse_port`, several listeners (one per worker) share the
/// address and the kernel spreads connections over them.
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Gateway {
    /// Binds the listeners and serves on the current runtime (one worker).
    pub async fn start(config: Config) -> std::io::Result<Gateway> {
        Gateway::start_workers(config, 1).await
    }

    /// Binds the listeners and serves with `workers` workers: the current runtime is
    /// worker 0 and every further worker is a thread with its own current-thread
    /// runtime, its own listener on the same address (`SO_REUSEPORT`) and its own
    /// upstream connection pools. A request lives and dies on one thread.
    pub async fn start_workers(config: Config, workers: usize) -> std::io::Result<Gateway> {
        let workers = workers.max(1);
        let first = bind(config.server.listen, workers > 1)?;
        let addr = first.local_addr()?;
        let admin_listener = match config.server.admin_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let admin_addr = admin_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let drain = config.server.shutdown_drain;
        let builder = Arc::new(http_builder(&config));
        let shared = Shared::start(config, workers).await?;
        let (stop, stop_rx) = watch::channel(false);
        let mut done = Vec::with_capacity(workers + 1);

        let (tx, rx) = oneshot::channel();
        done.push(rx);
        let (b, sh, st) = (builder.clone(), shared.clone(), stop_rx.clone());
        tokio::spawn(async move {
            serve_public(0, first, b, sh, st, drain).await;
            let _ = tx.send(());
        });
        for worker in 1..workers {
            let (ready_tx, ready_rx) = oneshot::channel::<std::io::Result<()>>();
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let (b, sh, st) = (builder.clone(), shared.clone(), stop_rx.clone());
            std::thread::Builder::new()
                .name(format!("portcullis-{worker}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    rt.block_on(async move {
                        match bind(addr, true) {
                            Ok(listener) => {
                                let _ = ready_tx.send(Ok(()));
                                serve_public(worker, listener, b, sh, st, drain).await;
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                            }
                        }
                    });
                    let _ = tx.send(());
                })?;
            let ready = ready_rx
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("worker thread died")));
            if let Err(e) = ready {
                let _ = stop.send(true);
                return Err(e);
            }
        }
        if let Some(l) = admin_listener {
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let sh = shared.clone();
            tokio::spawn(async move {
                serve_admin(l, sh, stop_rx).await;
                let _ = tx.send(());
            });
        }
        tracing::info!(%addr, admin = ?admin_addr, workers, "portcullis listening");
        Ok(Gateway {
            addr,
            admin_addr,
            shared,
            stop,
            done,
        })
    }

    /// Swaps in a new configuration for every request that starts from now on. The
    /// parts whose configuration is unchanged are kept (see `crate::runtime`).
    pub fn reload(&self, config: Config) {
        apply_reload(&self.shared, config);
    }

    /// Reads, validates and applies the configuration file at `path` on the background
    /// runtime (never on a worker: a reload costs the requests in flight nothing). On
    /// error the current configuration stays.
    pub async fn reload_from(&self, path: &std::path::Path) -> Result<(), ConfigErrors> {
        let (shared, path) = (self.shared.clone(), path.to_path_buf());
        let work = move || {
            let config = Config::load(&path)?;
            apply_reload(&shared, config);
            Ok(())
        };
        let task = match &self.shared.runtime {
            Some(rt) => rt.background().spawn_blocking(work),
            None => tokio::task::spawn_blocking(work),
        };
        match task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the reload task failed; keeping the old configuration");
                Ok(())
            }
        }
    }

    /// The first step of a shutdown: `/readyz` answers `503` from now on while the
    /// listeners keep serving, so that load balancers take the endpoint out before
    /// connections are refused (`server.shutdown_delay`, `main.rs`).
    pub fn begin_drain(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    /// `server.shutdown_delay` of the configuration in force.
    pub fn shutdown_delay(&self) -> Duration {
        self.shared.snapshot.load().config.server.shutdown_delay
    }

    /// Whether [`Gateway::begin_drain`] (or a shutdown) has begun.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Relaxed)
    }

    /// Stops accepting, drains in-flight requests (up to the drain time) and returns.
    pub async fn shutdown(self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        for done in self.done {
            let _ = done.await;
        }
    }
}

/// Builds the snapshot of `config` from the runtime and swaps it in.
fn apply_reload(shared: &Shared, config: Config) {
    let old = shared.snapshot.load();
    if old.config.server.listen != config.server.listen
        || old.config.server.admin_listen != config.server.admin_listen
    {
        tracing::warn!(
            "server.listen / server.admin_listen changed: the new addresses take effect on restart"
        );
    }
    if let Some(svc) = &config.token_service {
        if let Err(e) = svc.persist_created_keys() {
            tracing::error!(error = %e, "could not write a new signing key; keeping the old configuration");
            return;
        }
    }
    drop(old);
    let _one_at_a_time = shared.reloading.lock().unwrap_or_else(|e| e.into_inner());
    let snapshot = shared.snapshot_of(config);
    for c in snapshot.issuers.iter().filter(|c| !c.is_ready()) {
        tracing::warn!(issuer = %c.config.issuer, "new issuer: its tokens are refused until its keys are fetched");
    }
    shared.swap(snapshot);
    tracing::info!("configuration reloaded");
}

fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper answers 431 itself when the head outgrows its buffer; the finer limit (a
    // JSON 431) is checked in the pipeline.
    // The head: request line (target included) plus headers, with room to spare.
    let buf =
        (config.server.max_header_bytes + config.server.max_request_target_bytes + 4096).max(8192);
    // hyper parses up to 100 header fields without allocating; the finer count limit
    // (a JSON 431) is checked in the pipeline, hyper's own (a bare 431) only above it.
    let max_headers = if config.server.max_headers < 100 {
        100
    } else {
        config.server.max_headers + 1
    };
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .max_headers(max_headers)
        .max_buf_size(buf);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(buf).unwrap_or(u32::MAX));
    b
}

async fn serve_public(
    worker: usize,
    listener: TcpListener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
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
        let (stream, peer) = tokio::select! {
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
        let head_deadline = shared.snapshot.load().config.server.header_read_timeout;
        let shared = shared.clone();
        let conn_peer = Arc::new(Peer::new(peer));
        // Set by the first request: until then the connection is on the head deadline.
        let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = asked.clone();
        let stack = crate::stack::build(shared, conn_peer, worker);
        let service = service_fn(move |req: Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            stack
                .clone()
                .oneshot(req.map(crate::body::RequestBody::from))
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let (io, timed_out) = head_timeout::WatchedIo::new(stream);
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            let conn = watcher.watch(conn);
            tokio::pin!(conn);
            // The first request must arrive within the head deadline, whatever the
            // protocol: protocol detection has no deadline of its own, and neither
            // has an HTTP/2 connection that sent its preface and nothing else.
            let first = tokio::select! {
                r = &mut conn => Some(r),
                () = tokio::time::sleep(head_deadline) => None,
            };
            let result = match first {
                Some(r) => r,
                None if !asked.load(Ordering::Relaxed) => {
                    tracing::debug!(%peer, "no request within the head deadline; closed");
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
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
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

/// The admin listener: the public one's head deadline (`server.header_read_timeout`,
/// for every request head) and accept backoff, so a probe port left open cannot be
/// held by idle or trickling connections or spin on accept errors (EMFILE).
async fn serve_admin(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            res = listener.accept() => match res {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let head_deadline = shared.snapshot.load().config.server.header_read_timeout;
        let shared = shared.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let shared = shared.clone();
            async move {
                // The same id rule as the public listener: kept if sane, else made.
                let id = request_id::ensure(req.headers_mut());
                let mut resp = admin(&req, &shared);
                resp.headers_mut()
                    .insert(request_id::X_REQUEST_ID.clone(), id);
                Ok::<_, Infallible>(resp)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(head_deadline)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn admin(req: &Request<Incoming>, shared: &Shared) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" if shared.draining.load(Ordering::Relaxed) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining"}),
        ),
        "/readyz" if !shared.is_ready() => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "waiting for issuer keys"}),
        ),
        "/readyz" => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_found", "error_description": "admin endpoints: /healthz, /readyz"}),
        ),
    }
}
