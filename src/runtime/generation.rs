//! One generation of runtime parts: built from the previous generation and a new
//! configuration, taking over every part whose spec is unchanged (the reload diff).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::cache::TokenCache;
use crate::auth::jwks::{IssuerConfig, JwksClient};
use crate::config::{Config, Upstream, UpstreamTarget};
use crate::proxy::pool::{Pool, PoolSettings};
use crate::ratelimit::{Policies, Policy, PolicySpec, RedisBackend, RedisSpec};
use crate::telemetry::export::Exporter;
use crate::telemetry::TelemetryConfig;
use crate::token::TokenRuntime;

use super::keyed::Keyed;
use super::snapshot;

/// What makes an upstream's pool: a pool is kept while these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolSpec {
    upstream: String,
    connect_to: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    max_connections: usize,
    wait: Duration,
    http2: bool,
    tls: Option<crate::proxy::connect::UpstreamTls>,
    /// SHA-256 of the TLS files (never their contents: a key would show in `Debug`),
    /// so that a reload after a CA or client certificate was renewed in place builds
    /// a new pool.
    tls_files: Vec<Vec<u8>>,
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
                max_connections: u.max_connections,
                wait: u.pool_wait_timeout,
                http2: u.http2,
                tls_files: u
                    .tls
                    .iter()
                    .flat_map(|t| {
                        t.ca_file
                            .iter()
                            .chain(t.client_cert.iter().flat_map(|(c, k)| [c, k]))
                    })
                    .map(|p| {
                        let bytes = std::fs::read(p).unwrap_or_default();
                        ring::digest::digest(&ring::digest::SHA256, &bytes)
                            .as_ref()
                            .to_vec()
                    })
                    .collect(),
                tls: u.tls.clone(),
            }),
            UpstreamTarget::Echo => None,
        }
    }
}

/// The live parts of the current generation, by spec.
#[derive(Debug, Default)]
pub(super) struct Generation {
    /// The configuration they were built for (what the next reload is diffed against).
    config: Option<Arc<Config>>,
    redis: Keyed<RedisSpec, Option<Arc<RedisBackend>>>,
    policies: Keyed<PolicySpec, Arc<Policy>>,
    issuers: Keyed<IssuerConfig, Arc<JwksClient>>,
    pools: Keyed<PoolSpec, Arc<[Arc<Pool>]>>,
    token_caches: Option<Arc<[TokenCache]>>,
    /// The OTLP exporter, kept while `[telemetry]` is unchanged.
    exporter: Option<(TelemetryConfig, Arc<Exporter>)>,
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

/// The parts of `config` from generation `current`; with no background runtime
/// (`bg = None`: a detached snapshot) no JWKS refresher starts and policies count in
/// memory only.
pub(super) fn build(
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
                    Pool::new(&PoolSettings {
                        connect_to: spec.connect_to.clone(),
                        connect_timeout: spec.connect_timeout,
                        idle_timeout: spec.idle_timeout,
                        max_idle: spec.max_idle,
                        max_connections: spec.max_connections,
                        wait: spec.wait,
                        http2: spec.http2,
                        tls: spec.tls.clone(),
                    })
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
    let exporter = match (&current.exporter, bg) {
        (Some((spec, e)), _) if *spec == config.telemetry => Some((spec.clone(), e.clone())),
        (_, Some(bg)) => {
            Exporter::start(&config.telemetry, bg).map(|e| (config.telemetry.clone(), e))
        }
        (_, None) => None,
    };
    let next = Generation {
        exporter: exporter.clone(),
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
        exporter: exporter.map(|(_, e)| e),
    };
    (next, parts)
}
