//! [`Limiter`]: one GCRA state per [`Key`] (governor), in the bounded key store
//! (`store.rs`), swept when idle (`sweep.rs`), with refunds.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::RateLimiter;

use super::{store, sweep, Decision, Key, Rate, Slot};

type Gcra<C> = RateLimiter<Key, store::Shared, C, NoOpMiddleware<<C as Clock>::Instant>>;

struct Inner<C: Clock> {
    gcra: Gcra<C>,
    store: std::sync::Arc<store::KeyStore>,
}

impl<C: Clock + Send + Sync> sweep::Sweep for Inner<C>
where
    C::Instant: Send + Sync,
{
    fn sweep(&self) {
        self.gcra.retain_recent();
    }
}

/// A keyed GCRA limiter with a fair cap on the number of keys.
pub struct Limiter<C: Clock = DefaultClock> {
    inner: std::sync::Arc<Inner<C>>,
    rate: Rate,
    /// Nanoseconds between two cells (what a refund gives back).
    interval_ns: u64,
}

impl<C: Clock> std::fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("rate", &self.rate)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl Limiter<DefaultClock> {
    pub fn new(rate: Rate, burst: Option<u32>, max_keys: usize) -> Limiter {
        Limiter::with_clock(rate, burst, max_keys, DefaultClock::default())
    }
}

impl<C> Limiter<C>
where
    C: Clock + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    /// A limiter on `clock`, registered with the background sweep.
    pub fn with_clock(rate: Rate, burst: Option<u32>, max_keys: usize, clock: C) -> Limiter<C> {
        let l = Limiter::unswept(rate, burst, max_keys, clock);
        let weak: std::sync::Weak<Inner<C>> = std::sync::Arc::downgrade(&l.inner);
        sweep::register(weak, rate.per);
        l
    }

    /// A limiter only swept by [`Limiter::sweep`] (tests that count keys).
    pub fn unswept(rate: Rate, burst: Option<u32>, max_keys: usize, clock: C) -> Limiter<C> {
        let quota = rate.quota(burst);
        let store = std::sync::Arc::new(store::KeyStore::new(max_keys));
        let inner = std::sync::Arc::new(Inner {
            gcra: RateLimiter::new(quota, store::Shared(store.clone()), clock),
            store,
        });
        Limiter {
            inner,
            rate,
            interval_ns: u64::try_from(quota.replenish_interval().as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl<C: Clock> Limiter<C> {
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Number of keys currently tracked (the overflow state is not one).
    pub fn keys(&self) -> usize {
        self.inner.gcra.len()
    }

    /// Decisions taken on the shared overflow state so far.
    pub fn overflowed(&self) -> u64 {
        self.inner.gcra_store().overflowed()
    }

    /// Where a decision for `key` would be taken now.
    pub fn slot_of(&self, key: &Key) -> Slot {
        self.inner.gcra_store().slot_of(key)
    }

    /// Counts one request for `key`.
    pub fn check(&self, key: impl Into<Key>) -> Decision {
        match self.inner.gcra.check_key(&key.into()) {
            Ok(()) => Decision::Allow,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.inner.gcra.clock().now());
                Decision::Limit { retry_after: wait }
            }
        }
    }

    /// Gives back one request counted for `key` (a login that succeeded).
    pub fn refund(&self, key: impl Into<Key>) {
        self.inner
            .gcra_store()
            .refund(&key.into(), self.interval_ns);
    }

    /// Drops the keys whose state is back to "fresh" (the background sweep calls
    /// this; tests call it directly).
    pub fn sweep(&self) {
        self.inner.gcra.retain_recent();
    }
}

impl<C: Clock> Inner<C> {
    fn gcra_store(&self) -> &store::KeyStore {
        &self.store
    }
}
