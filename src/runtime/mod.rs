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
mod generation;
mod keyed;
mod snapshot;

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::token::TokenRuntime;

pub use background::Background;
use generation::{build, Generation};
pub use snapshot::{Shared, Snapshot};

/// The gateway's process-lifetime state.
#[derive(Debug)]
pub struct Runtime {
    background: Background,
    workers: usize,
    /// Opened at start when the token service is configured.
    token: Option<Arc<TokenRuntime>>,
    current: Mutex<Generation>,
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

impl Snapshot {
    /// A snapshot of `config` with parts of its own, for one worker, outside any
    /// runtime: no JWKS refresher, no Redis, no store (`explain`, the layers' unit
    /// tests). Loading a configuration this way has no side effects.
    pub fn detached(config: Config) -> Snapshot {
        let config = Arc::new(config);
        let (_, parts) = build(&Generation::default(), &config, 1, None, None);
        Snapshot::new(config, parts)
    }

    /// A snapshot of `config` with parts of its own, for one worker, whose JWKS
    /// refreshers and Redis I/O run on `rt`, and with the token service's runtime if
    /// given (`explain` runs the real stack with it).
    pub fn standalone(
        config: Config,
        token_runtime: Option<Arc<TokenRuntime>>,
        rt: &tokio::runtime::Handle,
    ) -> Snapshot {
        let config = Arc::new(config);
        let (_, parts) = build(&Generation::default(), &config, 1, Some(rt), token_runtime);
        Snapshot::new(config, parts)
    }
}

#[cfg(test)]
mod tests;
