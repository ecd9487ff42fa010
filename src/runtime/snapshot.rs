//! What every request reads: an immutable [`Snapshot`] — one configuration and handles
//! to the runtime parts it uses — swapped atomically on reload (hot reload keeps the
//! listeners; a failed reload keeps the old snapshot).
//!
//! A snapshot owns no state of its own: limiters, pools, key sets and caches belong to
//! the [`super::Runtime`] and are shared by every snapshot whose configuration asks for
//! the same ones. Each worker thread has its own upstream pools and token cache, so a
//! pooled connection is only ever used by the thread (and runtime) that opened it: no
//! cross-thread wake-ups on the hot path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::auth::cache::TokenCache;
use crate::auth::jwks::JwksClient;
use crate::config::Config;
use crate::middleware::identity::IdentityHeaders;
use crate::proxy::pool::Pool;
use crate::ratelimit::{Policies, Policy};
use crate::token::TokenRuntime;

/// The runtime parts a configuration uses (built by [`super::Runtime::snapshot`]).
#[derive(Debug)]
pub(crate) struct Parts {
    /// Indexed by worker, then upstream name.
    pub clients: Vec<HashMap<String, Arc<Pool>>>,
    /// Indexed by worker.
    pub token_caches: Arc<[TokenCache]>,
    pub issuers: Vec<Arc<JwksClient>>,
    pub token_runtime: Option<Arc<TokenRuntime>>,
    pub rate_limits: Policies,
    pub exporter: Option<Arc<crate::telemetry::export::Exporter>>,
}

/// One configuration and the runtime parts it uses.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Identity header names for this configuration's prefix.
    pub identity: IdentityHeaders,
    /// Indexed by worker.
    clients: Vec<HashMap<String, Arc<Pool>>>,
    /// Verified-token caches, indexed by worker.
    token_caches: Arc<[TokenCache]>,
    /// One JWKS client per `[[issuers]]` entry.
    pub issuers: Vec<Arc<JwksClient>>,
    /// The token service's store and deny-list (process lifetime).
    pub token_runtime: Option<Arc<TokenRuntime>>,
    /// `[rate_limits]`: the counters of each policy.
    rate_limits: Policies,
    /// The longest request deadline of any route (the server's, or a route's
    /// override): the outer bound; each route's own is applied once it is known.
    pub longest_deadline: Duration,
    /// Whether any CORS policy is configured (global or on a route).
    pub cors_anywhere: bool,
    /// Whether requests are measured (`crate::metrics`): there is an admin listener
    /// to serve `/metrics` from.
    pub metrics: bool,
    /// The OTLP span exporter (`[telemetry] otlp_endpoint`).
    pub exporter: Option<Arc<crate::telemetry::export::Exporter>>,
    /// Each route's name as a metrics label, by route index.
    pub route_labels: Vec<Arc<str>>,
    /// Each route's upstream name as a metrics label, by route index.
    pub upstream_labels: Vec<Arc<str>>,
}

impl Snapshot {
    pub(crate) fn new(config: Arc<Config>, parts: Parts) -> Snapshot {
        let identity =
            IdentityHeaders::new(&config.server.identity_header_prefix, &config.claim_headers);
        let longest_deadline = config
            .router
            .routes()
            .iter()
            .filter_map(|r| r.request_timeout)
            .fold(config.server.request_timeout, Duration::max);
        let cors_anywhere =
            config.cors.is_some() || config.router.routes().iter().any(|r| r.cors.is_some());
        let routes = config.router.routes();
        let route_labels = routes.iter().map(|r| Arc::from(r.name.as_str())).collect();
        let upstream_labels = routes
            .iter()
            .map(|r| Arc::from(r.upstream.name.as_str()))
            .collect();
        let metrics = config.server.admin_listen.is_some();
        Snapshot {
            exporter: parts.exporter,
            metrics,
            route_labels,
            upstream_labels,
            config,
            identity,
            clients: parts.clients,
            token_caches: parts.token_caches,
            issuers: parts.issuers,
            token_runtime: parts.token_runtime,
            rate_limits: parts.rate_limits,
            longest_deadline,
            cors_anywhere,
        }
    }

    /// Whether every external issuer's keys have been fetched once.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|c| c.is_ready())
    }

    /// The external issuer whose `iss` this is.
    pub fn issuer(&self, iss: &str) -> Option<&Arc<JwksClient>> {
        self.issuers.iter().find(|c| c.config.issuer == iss)
    }

    /// A worker's verified-token cache.
    pub fn token_cache(&self, worker: usize) -> Option<&TokenCache> {
        self.token_caches.get(worker)
    }

    /// The pooled client of an HTTP upstream for a worker; `None` for the echo upstream.
    pub fn client(&self, worker: usize, upstream: &str) -> Option<&Arc<Pool>> {
        self.clients.get(worker)?.get(upstream)
    }

    /// Every worker's pool, with its upstream's name.
    pub(crate) fn pools(&self) -> impl Iterator<Item = (&str, &Arc<Pool>)> {
        self.clients
            .iter()
            .flat_map(|w| w.iter().map(|(name, pool)| (name.as_str(), pool)))
    }

    /// The rate-limit policy of a route (`route.rate_limit`): its own, none for
    /// `"none"`, else `default`.
    pub fn rate_limit(&self, route_policy: Option<&str>) -> Option<&Arc<Policy>> {
        self.rate_limits.for_route(route_policy)
    }

    /// The `login` and `login_ip` policies, when the token service is configured.
    pub fn login_policies(&self) -> Option<(&Policy, &Policy)> {
        self.rate_limits.login()
    }
}

/// State shared by every connection of a running gateway.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Number of worker threads.
    pub workers: usize,
    /// Set once shutdown begins; `/readyz` then answers 503.
    pub draining: AtomicBool,
    /// Upgraded connections (WebSocket tunnels), every worker.
    pub tunnels: Arc<crate::proxy::tunnels::Tunnels>,
    /// Requests being handled, every worker (`server.max_in_flight`).
    pub in_flight: std::sync::atomic::AtomicUsize,
    /// Set once every issuer had keys: from then on a reload never flips readiness.
    was_ready: AtomicBool,
    /// What snapshots are built from; held here so that the background runtime lives
    /// as long as any connection does. `None`: a detached gateway state (`explain`,
    /// benchmarks), whose snapshots have parts of their own.
    pub runtime: Option<Arc<super::Runtime>>,
    /// Held from building a reload's snapshot to swapping it in: two reloads at once
    /// are applied one after the other, in the order they were built.
    pub reloading: std::sync::Mutex<()>,
}

impl Shared {
    pub fn new(
        runtime: Option<Arc<super::Runtime>>,
        snapshot: Snapshot,
        workers: usize,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            workers,
            draining: AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            tunnels: crate::proxy::tunnels::Tunnels::new(),
            was_ready: AtomicBool::new(false),
            runtime,
            reloading: std::sync::Mutex::new(()),
        })
    }

    /// The state of a gateway for `config`: its runtime started (the background
    /// runtime, and the store when the token service is configured) and the first
    /// snapshot built.
    pub async fn start(config: Config, workers: usize) -> std::io::Result<Arc<Shared>> {
        let runtime = super::Runtime::start(&config, workers).await?;
        let snapshot = runtime.snapshot(config);
        Ok(Shared::new(Some(runtime), snapshot, workers))
    }

    /// One worker's state for `config` with no runtime ([`Snapshot::detached`]): no
    /// background work, no store (`explain`, benchmarks of the stack).
    pub fn detached(config: Config) -> Arc<Shared> {
        Shared::new(None, Snapshot::detached(config), 1)
    }

    /// The snapshot of `config`: from the runtime (parts kept by configuration), or
    /// detached.
    pub fn snapshot_of(&self, config: Config) -> Snapshot {
        match &self.runtime {
            Some(rt) => rt.snapshot(config),
            None => Snapshot::detached(config),
        }
    }

    /// Whether `/readyz` answers 200 (unless draining): at start, once every issuer's
    /// keys have been fetched once; after that, always. A reload that adds an issuer
    /// whose IdP does not answer yet refuses that issuer's tokens until its keys
    /// arrive, but does not take the whole gateway out of rotation (every replica
    /// reloads at once: that would be an outage).
    pub fn is_ready(&self) -> bool {
        if self.was_ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self.snapshot.load().is_ready();
        if ready {
            self.was_ready.store(true, Ordering::Relaxed);
        }
        ready
    }

    /// Swaps in a new snapshot, keeping readiness if the current one was ready.
    pub fn swap(&self, snapshot: Snapshot) {
        let _ = self.is_ready();
        self.snapshot.store(Arc::new(snapshot));
    }
}
