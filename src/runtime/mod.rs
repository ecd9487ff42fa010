//! Process-lifetime state, built from a [`Config`] and carried across reloads **by
//! key** (DESIGN.md, "Config is data, runtime is state").
//!
//! The configuration is plain, comparable data; the [`Runtime`] owns every live object
//! made from it and hands each [`Snapshot`] the ones its configuration asks for:
//!
//! | part | kept across a reload while | so that |
//! |---|---|---|
//! | rate-limit counters, per policy | the policy's spec (key, rate, burst, max_keys, on_error, ipv6_prefix, backend) is equal | brute-force budgets and route counters survive |
//! | Redis clients | the backend (URL, timeout) is equal | its connection survives |
//! | JWKS clients (keys + refresher), per issuer | the `[[issuers]]` entry is equal | external tokens keep verifying with the keys held, even if the IdP is down during the reload; readiness does not flip |
//! | upstream pools, per worker and upstream | the upstream's name, address, connect timeout and pool settings are equal | keep-alive connections survive |
//! | verified-token caches, per worker | token verification (`[tokens]` keys, their material, claim rules and cache settings, and every `[[issuers]]` entry) is equal | hot tokens stay one lookup |
//! | the token service's store, deny-list and hashing gate | always (a changed `users.store` needs a restart) | |
//!
//! A changed spec gets a new part (fresh counters, a new pool, a new JWKS client); a
//! JWKS client whose issuer, source and algorithms are unchanged takes over the keys of
//! the one it replaces. Parts no configuration uses any more are dropped with the old
//! snapshot (a JWKS refresher stops once its client is gone). A cached principal never
//! outlives the key that verified it: any change to verification empties the caches.
//!
//! One background runtime ([`Background`]) runs JWKS refreshes, Redis I/O, the store,
//! the rate limiters' idle-key sweep and reloads; workers only serve requests.

mod background;
mod keyed;
mod snapshot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::cache::TokenCache;
use crate::auth::jwks::{IssuerConfig, JwksClient};
use crate::config::{Config, Upstream, UpstreamTarget};
use crate::proxy::pool::Pool;
use crate::ratelimit::{Policies, Policy, PolicySpec, RedisBackend, RedisSpec};
use crate::token::TokenRuntime;

pub use background::Background;
use keyed::Keyed;
pub use snapshot::{Shared, Snapshot};

/// What makes an upstream's pool: a pool is kept while these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolSpec {
    upstream: String,
    connect_to: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

impl PoolSpec {
    fn of(u: &Upstream) -> Option<PoolSpec> {
        match &u.target {
            UpstreamTarget::Http { connect_to, .. } => Some(PoolSpec {
                upstream: u.name.clone(),
                connect_to: connect_to.clone(),
                connect_timeout: u.connect_timeout,
                idle_timeout: u.pool_idle_timeout,
                max_idle: u.pool_max_idle_per_host,
            }),
            UpstreamTarget::Echo => None,
        }
    }
}

/// The live parts of the current generation, by spec.
#[derive(Debug, Default)]
struct Generation {
    /// The configuration they were built for (what the next reload is diffed against).
    config: Option<Arc<Config>>,
    redis: Keyed<RedisSpec, Option<Arc<RedisBackend>>>,
    policies: Keyed<PolicySpec, Arc<Policy>>,
    issuers: Keyed<IssuerConfig, Arc<JwksClient>>,
    pools: Keyed<PoolSpec, Arc<[Arc<Pool>]>>,
    token_caches: Option<Arc<[TokenCache]>>,
}

/// The gateway's process-lifetime state.
#[derive(Debug)]
pub struct Runtime {
    background: Background,
    workers: usize,
    /// Opened at start when the token service is configured.
    token: Option<Arc<TokenRuntime>>,
    current: Mutex<Generation>,
}

/// Whether two configurations verify tokens alike (then cached principals may stay).
fn verification_unchanged(old: &Config, new: &Config) -> bool {
    let tokens = match (&old.tokens, &new.tokens) {
        (None, None) => true,
        (Some(a), Some(b)) => a.verifies_like(b),
        _ => false,
    };
    tokens && old.issuers == new.issuers
}

impl Runtime {
    /// Starts the background runtime and, if configured, the token service's store
    /// (writing signing keys created for missing files first).
    pub async fn start(config: &Config, workers: usize) -> std::io::Result<Arc<Runtime>> {
        let background = Background::start()?;
        crate::ratelimit::spawn_janitor(background.handle());
        let token = match &config.token_service {
            Some(svc) => {
                svc.persist_created_keys()?;
                Some(
                    TokenRuntime::start(svc, background.handle())
                        .await
                        .map_err(std::io::Error::other)?,
                )
            }
            None => None,
        };
        Ok(Arc::new(Runtime {
            background,
            workers: workers.max(1),
            token,
            current: Mutex::new(Generation::default()),
        }))
    }

    /// The background runtime.
    pub fn background(&self) -> &tokio::runtime::Handle {
        self.background.handle()
    }

    /// The snapshot of `config`: the parts of the current generation whose spec is
    /// unchanged, new ones for the rest. The parts `config` does not use are released
    /// (they stop once the last snapshot holding them is gone).
    pub fn snapshot(&self, config: Config) -> Snapshot {
        let config = Arc::new(config);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let token_runtime = self.token_runtime_for(&config);
        let (next, parts) = build(
            &current,
            &config,
            self.workers,
            Some(self.background.handle()),
            token_runtime,
        );
        *current = next;
        drop(current);
        Snapshot::new(config, parts)
    }
    /// The token service's runtime for a configuration, with a warning when the
    /// configuration asks for what only a restart gives.
    fn token_runtime_for(&self, config: &Config) -> Option<Arc<TokenRuntime>> {
        let svc = config.token_service.as_ref()?;
        match &self.token {
            Some(rt) if rt.store_url != svc.store_url => {
                tracing::warn!("users.store changed: the new store is used after a restart")
            }
            None => {
                tracing::warn!("the token service was turned on: it starts serving after a restart")
            }
            Some(_) => {}
        }
        self.token.clone()
    }
}

/// The parts of `config` from generation `current`; with no background runtime
/// (`bg = None`: a detached snapshot) no JWKS refresher starts and policies count in
/// memory only.
fn build(
    current: &Generation,
    config: &Arc<Config>,
    workers: usize,
    bg: Option<&tokio::runtime::Handle>,
    token_runtime: Option<Arc<TokenRuntime>>,
) -> (Generation, snapshot::Parts) {
    let mut redis = current.redis.next();
    let mut policies = current.policies.next();
    let mut live = HashMap::new();
    for (name, spec) in &config.rate_limits.policies {
        let backend = match (spec.backend.as_ref(), bg) {
            (Some(b), Some(bg)) => redis.get(b, || match RedisBackend::new(b, bg.clone()) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    // Validation checked the URL: not expected.
                    tracing::error!(error = %e, "rate-limit backend unusable");
                    None
                }
            }),
            _ => None,
        };
        let policy = policies.get(spec, || Arc::new(Policy::new(spec.clone(), backend)));
        live.insert(name.clone(), policy);
    }

    let mut issuers = current.issuers.next();
    let clients: Vec<Arc<JwksClient>> = config
        .issuers
        .iter()
        .map(|c| {
            issuers.get(c, || {
                let client = JwksClient::new(c.clone());
                if let Some(old) = current.issuers.find(|k| k.issuer == c.issuer) {
                    client.inherit_keys(&old);
                }
                if let Some(bg) = bg {
                    client.spawn_refresher(bg);
                }
                client
            })
        })
        .collect();

    let mut pools = current.pools.next();
    let mut per_worker: Vec<HashMap<String, Arc<Pool>>> = vec![HashMap::new(); workers];
    for u in &config.upstreams {
        let Some(spec) = PoolSpec::of(u) else {
            continue;
        };
        let set = pools.get(&spec, || {
            (0..workers)
                .map(|_| {
                    Pool::new(
                        &spec.connect_to,
                        spec.connect_timeout,
                        spec.idle_timeout,
                        spec.max_idle,
                    )
                })
                .collect()
        });
        for (w, pool) in per_worker.iter_mut().zip(set.iter()) {
            w.insert(u.name.clone(), pool.clone());
        }
    }

    let keep_caches = current
        .config
        .as_ref()
        .is_some_and(|old| verification_unchanged(old, config));
    let token_caches = match (&current.token_caches, keep_caches) {
        (Some(c), true) => c.clone(),
        _ => {
            let (max_age, size) = config
                .tokens
                .as_ref()
                .map_or((Duration::ZERO, 0), |t| (t.cache_max_age, t.cache_size));
            (0..workers)
                .map(|_| TokenCache::new(max_age, size))
                .collect()
        }
    };

    tracing::debug!(
        policies_kept = policies.reused,
        policies_new = policies.built,
        issuers_kept = issuers.reused,
        issuers_new = issuers.built,
        pools_kept = pools.reused,
        pools_new = pools.built,
        token_caches_kept = keep_caches,
        "runtime parts for the configuration"
    );
    let next = Generation {
        config: Some(config.clone()),
        redis: redis.finish(),
        policies: policies.finish(),
        issuers: issuers.finish(),
        pools: pools.finish(),
        token_caches: Some(token_caches.clone()),
    };
    let parts = snapshot::Parts {
        clients: per_worker,
        token_caches,
        issuers: clients,
        token_runtime,
        rate_limits: Policies(live),
    };
    (next, parts)
}

impl Snapshot {
    /// A snapshot of `config` with parts of its own, for one worker, outside any
    /// runtime: no JWKS refresher, no Redis, no store (`explain`, the layers' unit
    /// tests). Loading a configuration this way has no side effects.
    pub fn detached(config: Config) -> Snapshot {
        let config = Arc::new(config);
        let (_, parts) = build(&Generation::default(), &config, 1, None, None);
        Snapshot::new(config, parts)
    }
}

#[cfg(test)]
mod tests;
