//! What every request reads: an immutable [`Snapshot`] of the configuration and the
//! upstream clients built for it, swapped atomically on reload (hot reload keeps the
//! listeners; a failed reload keeps the old snapshot).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, UpstreamTarget};
use crate::proxy::client::{self, HttpClient};

/// One configuration and everything derived from it.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    clients: HashMap<String, HttpClient>,
}

impl Snapshot {
    /// Builds the upstream clients for a configuration.
    pub fn new(config: Config) -> Snapshot {
        let clients = config
            .upstreams
            .iter()
            .filter(|u| matches!(u.target, UpstreamTarget::Http { .. }))
            .map(|u| (u.name.clone(), client::build(u)))
            .collect();
        Snapshot { config, clients }
    }

    /// The pooled client of an HTTP upstream; `None` for the echo upstream.
    pub fn client(&self, upstream: &str) -> Option<&HttpClient> {
        self.clients.get(upstream)
    }
}

/// State shared by every connection of a running gateway.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Set once shutdown begins; `/readyz` then answers 503.
    pub draining: AtomicBool,
}

impl Shared {
    pub fn new(config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(Snapshot::new(config)),
            draining: AtomicBool::new(false),
        })
    }
}
