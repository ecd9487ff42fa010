//! Listeners: the public one (HTTP/1.1 and HTTP/2, plain with prior knowledge or over
//! TLS with ALPN, upgrades allowed; `server/public.rs`), the admin one (`/healthz`,
//! `/readyz`, `/metrics`; `server/admin.rs`) and the HTTP → HTTPS redirect
//! (`server/redirect.rs`); graceful shutdown and reload.
//!
//! Shutdown is two steps: [`Gateway::begin_drain`] turns `/readyz` to `503` while the
//! listeners keep serving (for `server.shutdown_delay` on SIGTERM, `main.rs`), then
//! [`Gateway::shutdown`] stops accepting, lets in-flight requests finish for up to
//! `server.shutdown_drain`, and drops what is left. Reload swaps the snapshot, built
//! by the runtime (`crate::runtime`) from the parts whose configuration is unchanged (counters, keys,
//! pools and caches kept; see `crate::runtime`); `/readyz` does not flip. `listen`,
//! `admin_listen` and `worker_threads` only change on restart. The TLS certificate,
//! key and client CA are re-read on reload and when the files change (`crate::tls`);
//! turning TLS on or off takes a restart.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use crate::config::{Config, ConfigErrors};
use crate::metrics::{metrics, unix_now, ResultLabel};
use crate::runtime::Shared;
use crate::tls::TlsState;

pub(crate) use public::shed;

mod admin;
mod head_timeout;
mod plain;
mod public;
mod redirect;

use public::Listener;

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// The address the public listener is bound to.
    pub addr: SocketAddr,
    /// The address of the admin listener, if configured.
    pub admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// The public listener's TLS configuration, when `[server.tls]` is set.
    tls: Option<Arc<TlsState>>,
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
        let listen = config.server.listen;
        let named = |what: &'static str, addr: SocketAddr| {
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what} {addr}: {e}"))
        };
        // SO_REUSEPORT would let this process share a port another one (an earlier
        // gateway still running) listens on, silently splitting its connections:
        // a plain bind first refuses to start instead.
        if workers > 1 && listen.port() != 0 {
            drop(bind(listen, false).map_err(named("server.listen", listen))?);
        }
        let first = bind(listen, workers > 1).map_err(named("server.listen", listen))?;
        let addr = first.local_addr()?;
        let admin_listener = match config.server.admin_listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(named("server.admin_listen", a))?,
            ),
            None => None,
        };
        let admin_addr = admin_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let redirect = match config.server.tls.as_ref().and_then(|t| t.redirect_listen) {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(named("server.tls.redirect_listen", a))?,
            ),
            None => None,
        };
        let tls = match &config.server.tls {
            Some(s) => Some(TlsState::new(s).map_err(|e| {
                std::io::Error::other(format!("server.tls.{}: {}", e.key, e.problem))
            })?),
            None => None,
        };
        let drain = config.server.shutdown_drain;
        let builder = Arc::new(http_builder(&config));
        let shared = Shared::start(config, workers).await?;
        metrics().reload_last_success.set(unix_now());
        if let (Some(t), Some(rt)) = (&tls, &shared.runtime) {
            t.watch(rt.background());
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut done = Vec::with_capacity(workers + 2);
        let listener = |worker| Listener {
            worker,
            builder: builder.clone(),
            shared: shared.clone(),
            tls: tls.clone(),
        };

        let (tx, rx) = oneshot::channel();
        done.push(rx);
        let (l, st) = (listener(0), stop_rx.clone());
        tokio::spawn(async move {
            public::serve_public(l, first, st, drain).await;
            let _ = tx.send(());
        });
        for worker in 1..workers {
            let (ready_tx, ready_rx) = oneshot::channel::<std::io::Result<()>>();
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let (l, st) = (listener(worker), stop_rx.clone());
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
                                let tunnels = l.shared.tunnels.clone();
                                public::serve_public(l, listener, st, drain).await;
                                // This runtime ends with the block: the tunnels it
                                // runs get their drain time first.
                                let _ = tokio::time::timeout(drain, tunnels.all_closed()).await;
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
        if let Some(l) = redirect {
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let (sh, st) = (shared.clone(), stop_rx.clone());
            tokio::spawn(async move {
                redirect::serve_redirect(l, addr.port(), sh, st).await;
                let _ = tx.send(());
            });
        }
        if let Some(l) = admin_listener {
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let sh = shared.clone();
            tokio::spawn(async move {
                admin::serve_admin(l, sh, stop_rx).await;
                let _ = tx.send(());
            });
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, admin = ?admin_addr, workers, "portcullis listening");
        Ok(Gateway {
            addr,
            admin_addr,
            shared,
            tls,
            stop,
            done,
        })
    }

    /// Swaps in a new configuration for every request that starts from now on. The
    /// parts whose configuration is unchanged are kept (see `crate::runtime`).
    pub fn reload(&self, config: Config) {
        apply_reload(&self.shared, self.tls.as_deref(), config);
    }

    /// Reads, validates and applies the configuration file at `path` on the background
    /// runtime (never on a worker: a reload costs the requests in flight nothing). On
    /// error the current configuration stays.
    pub async fn reload_from(&self, path: &std::path::Path) -> Result<(), ConfigErrors> {
        let (shared, tls, path) = (self.shared.clone(), self.tls.clone(), path.to_path_buf());
        let work = move || {
            let config = Config::load(&path)?;
            apply_reload(&shared, tls.as_deref(), config);
            Ok(())
        };
        let task = match &self.shared.runtime {
            Some(rt) => rt.background().spawn_blocking(work),
            None => tokio::task::spawn_blocking(work),
        };
        match task.await {
            Ok(r) => {
                if r.is_err() {
                    reload_counted("refused");
                }
                r
            }
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
    /// Tunnels (WebSocket) get the same drain time from now, then are closed.
    pub async fn shutdown(self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        self.shared.tunnels.close_all();
        for done in self.done {
            let _ = done.await;
        }
        let drain = self.shared.snapshot.load().config.server.shutdown_drain;
        let tunnels = self.shared.tunnels.clone();
        let _ = tokio::time::timeout(drain + Duration::from_secs(1), tunnels.all_closed()).await;
    }
}

/// Builds the snapshot of `config` from the runtime and swaps it in.
fn apply_reload(shared: &Shared, tls: Option<&TlsState>, config: Config) {
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
            reload_counted("refused");
            return;
        }
    }
    drop(old);
    let _one_at_a_time = shared.reloading.lock().unwrap_or_else(|e| e.into_inner());
    // TLS with the rest, once nothing can abort the reload: a listener policy never
    // runs beside the routes of another configuration.
    match (tls, &config.server.tls) {
        (Some(state), Some(settings)) => state.reload(settings),
        (None, None) => {}
        _ => tracing::warn!("[server.tls] was added or removed: it takes effect on restart"),
    }
    let snapshot = shared.snapshot_of(config);
    for c in snapshot.issuers.iter().filter(|c| !c.is_ready()) {
        tracing::warn!(issuer = %c.config.issuer, "new issuer: its tokens are refused until its keys are fetched");
    }
    shared.swap(snapshot);
    reload_counted("success");
    metrics().reload_last_success.set(unix_now());
    tracing::info!("configuration reloaded");
}

fn reload_counted(result: &'static str) {
    metrics()
        .reloads
        .get_or_create(&ResultLabel { result })
        .inc();
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
    let bounds = &config.server.bounds;
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(buf).unwrap_or(u32::MAX))
        .max_concurrent_streams(bounds.http2_max_concurrent_streams)
        .keep_alive_interval(bounds.http2_keepalive_interval)
        .keep_alive_timeout(bounds.http2_keepalive_timeout);
    b
}
