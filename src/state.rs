//! What every request reads: an immutable [`Snapshot`] of the configuration and the
//! upstream clients built for it, swapped atomically on reload (hot reload keeps the
//! listeners; a failed reload keeps the old snapshot).
//!
//! Each worker thread has its own set of upstream clients, so that a pooled upstream
//! connection is only ever used by the thread (and runtime) that opened it: no
//! cross-thread wake-ups on the hot path.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arc_swap::ArcSwap;

use std::time::Duration;

use crate::auth::cache::TokenCache;
use crate::auth::jwks::JwksClient;
use crate::config::{Config, UpstreamTarget};
use crate::middleware::identity::IdentityHeaders;
use crate::proxy::pool::Pool;
use crate::token::TokenRuntime;

/// One configuration and everything derived from it.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    /// Identity header names for this configuration's prefix.
    pub identity: IdentityHeaders,
    /// Indexed by worker.
    clients: Vec<HashMap<String, Arc<Pool>>>,
    /// Verified-token caches, indexed by worker.
    token_caches: Vec<TokenCache>,
    /// One JWKS client per `[[issuers]]` entry.
    pub issuers: Vec<Arc<JwksClient>>,
    /// The token service's store and deny-list (kept across reloads).
    pub token_runtime: Option<Arc<TokenRuntime>>,
    /// The longest request deadline of any route (the server's, or a route's
    /// override): the outer bound; each route's own is applied once it is known.
    pub longest_deadline: Duration,
    /// Whether any CORS policy is configured (global or on a route).
    pub cors_anywhere: bool,
}

impl Snapshot {
    /// Builds the upstream clients of every worker for a configuration.
    pub fn new(
        config: Config,
        workers: usize,
        token_runtime: Option<Arc<TokenRuntime>>,
    ) -> Snapshot {
        let clients = (0..workers.max(1))
            .map(|_| {
                config
                    .upstreams
                    .iter()
                    .filter_map(|u| match &u.target {
                        UpstreamTarget::Http { connect_to, .. } => Some((
                            u.name.clone(),
                            Pool::new(
                                connect_to,
                                u.connect_timeout,
                                u.pool_idle_timeout,
                                u.pool_max_idle_per_host,
                            ),
                        )),
                        UpstreamTarget::Echo => None,
                    })
                    .collect()
            })
            .collect();
        let identity =
            IdentityHeaders::new(&config.server.identity_header_prefix, &config.claim_headers);
        let (max_age, size) = config
            .tokens
            .as_ref()
            .map_or((Duration::ZERO, 0), |t| (t.cache_max_age, t.cache_size));
        let longest_deadline = config
            .router
            .routes()
            .iter()
            .filter_map(|r| r.request_timeout)
            .fold(config.server.request_timeout, Duration::max);
        let cors_anywhere =
            config.cors.is_some() || config.router.routes().iter().any(|r| r.cors.is_some());
        let token_caches = (0..workers.max(1))
            .map(|_| TokenCache::new(max_age, size))
            .collect();
        let issuers = config
            .issuers
            .iter()
            .cloned()
            .map(JwksClient::new)
            .collect();
        Snapshot {
            config,
            identity,
            clients,
            token_caches,
            issuers,
            token_runtime,
            longest_deadline,
            cors_anywhere,
        }
    }

    /// Starts the background work of this snapshot (JWKS refreshers) on the current
    /// runtime; it stops by itself once the snapshot is dropped.
    pub fn start_background(&self) {
        for c in &self.issuers {
            c.spawn_refresher();
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
}

/// State shared by every connection of a running gateway.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Number of worker threads (for building snapshots on reload).
    pub workers: usize,
    /// Set once shutdown begins; `/readyz` then answers 503.
    pub draining: AtomicBool,
}

impl Shared {
    pub fn new(
        config: Config,
        workers: usize,
        token_runtime: Option<Arc<TokenRuntime>>,
    ) -> Arc<Shared> {
        let snapshot = Snapshot::new(config, workers, token_runtime);
        snapshot.start_background();
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            workers,
            draining: AtomicBool::new(false),
        })
    }
}
