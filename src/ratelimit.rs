//! Keyed rate limiting (GCRA, governor) with bounded memory that stays fair.
//!
//! A [`Rate`] such as `"5/5s"` admits 5 requests per 5 seconds: a burst of 5, then one
//! more every second (GCRA spreads the period evenly). A [`Limiter`] keeps one GCRA
//! state per [`Key`] (e.g. `ip+username` for `/token`).
//!
//! Memory stays bounded without punishing anyone who is already known:
//! - at most `max_keys` keys are tracked; a key already tracked always keeps its own
//!   budget, and only keys first seen while the store is full share one overflow
//!   budget (`store.rs`), so a flood of distinct keys is limited as one client and
//!   nobody else is affected;
//! - keys longer than [`MAX_PLAIN_KEY`] bytes are kept as their SHA-256 digest, so an
//!   entry costs at most a few dozen bytes whatever a header value holds;
//! - idle keys (state back to "fresh") are dropped by a background sweep
//!   (`sweep.rs`), never on the request path.
//!
//! Besides counting, a limiter can give one request back ([`Limiter::refund`]): the
//! login policies consume before a password is checked and refund on success, so
//! only failed attempts count and concurrent guesses cannot exceed the budget.

mod store;
mod sweep;

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::{Quota, RateLimiter};

/// `COUNT/PERIOD`, e.g. `"5/5s"`, `"100/1s"`, `"600/1m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("\"{s}\" is not a rate; write COUNT/PERIOD such as \"5/5s\"");
        let (count, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let per = match per {
            "s" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => humantime::parse_duration(per).map_err(|_| bad())?,
        };
        if count == 0 || per.is_zero() {
            return Err(format!(
                "\"{s}\" admits nothing; the count and period must be > 0"
            ));
        }
        if per / count < Duration::from_nanos(1) {
            return Err(format!("\"{s}\" is too fast to measure"));
        }
        Ok(Rate { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

impl Rate {
    /// The GCRA quota: one request per `per / count`, bursts up to `burst` (default
    /// `count`).
    pub fn quota(&self, burst: Option<u32>) -> Quota {
        let burst = NonZeroU32::new(burst.unwrap_or(self.count)).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.per / self.count)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the client may retry after this long.
    Limit {
        retry_after: Duration,
    },
}

/// Keys up to this many bytes are kept as they are; longer ones as their digest.
pub const MAX_PLAIN_KEY: usize = 64;

/// A limiter key: short keys verbatim, long ones as their SHA-256 digest (a digest
/// cannot equal a plain key: they are different variants).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Plain(Box<str>),
    Digest([u8; 32]),
}

impl Key {
    pub fn new(key: &str) -> Key {
        if key.len() <= MAX_PLAIN_KEY {
            return Key::Plain(key.into());
        }
        let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Key::Digest(out)
    }

    /// The key as text of at most 66 bytes (for Redis key names).
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Key::Plain(s) => std::borrow::Cow::Borrowed(s),
            Key::Digest(d) => {
                let mut hex = String::with_capacity(66);
                hex.push_str("#:");
                for b in d {
                    hex.push_str(&format!("{b:02x}"));
                }
                std::borrow::Cow::Owned(hex)
            }
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::new(s)
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        if s.len() <= MAX_PLAIN_KEY {
            Key::Plain(s.into_boxed_str())
        } else {
            Key::new(&s)
        }
    }
}

pub use store::Slot;

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

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn rates_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "5/5s".parse::<Rate>(),
            Ok(Rate {
                count: 5,
                per: Duration::from_secs(5)
            })
        );
        assert_eq!(
            "100/s".parse::<Rate>().map(|r| r.per),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            "600/1m".parse::<Rate>().map(|r| r.per),
            Ok(Duration::from_secs(60))
        );
        for bad in ["", "5", "0/1s", "5/0s", "x/1s", "5/soon", "-1/1s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn five_per_five_seconds_exactly() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::unswept("5/5s".parse().expect("rate"), None, 100, clock.clone());
        for i in 0..5 {
            assert_eq!(l.check("ip|alice"), Decision::Allow, "attempt {i}");
        }
        let Decision::Limit { retry_after } = l.check("ip|alice") else {
            panic!("the sixth attempt must be limited");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        assert_eq!(retry_after_secs(retry_after), 1);
        // Another key has its own budget.
        assert_eq!(l.check("ip|bob"), Decision::Allow);
        // One second later one more attempt, not two.
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check("ip|alice"), Decision::Allow);
        assert!(matches!(l.check("ip|alice"), Decision::Limit { .. }));
        // After the whole period the full burst is back.
        clock.advance(Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(l.check("ip|alice"), Decision::Allow);
        }
    }

    /// The promise of item 6: a policy filled to `max_keys` by a flood of distinct keys
    /// still gives an existing key its own full budget; only new keys share the
    /// overflow budget, and the flood cannot grow memory.
    #[test]
    fn a_full_store_keeps_existing_keys_whole_and_new_keys_share_the_overflow() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::unswept("5/5s".parse().expect("rate"), None, 1000, clock.clone());
        // An existing client, seen before the flood, has used one request.
        assert_eq!(l.check("alice"), Decision::Allow);
        let mut allowed = 0;
        for i in 0..100_000 {
            if l.check(format!("flood-{i}")) == Decision::Allow {
                allowed += 1;
            }
        }
        assert_eq!(l.keys(), 1000, "exactly max_keys keys tracked");
        // 999 flood keys got their own first request; the other 99,001 shared one
        // burst of 5.
        assert_eq!(allowed, 999 + 5);
        assert_eq!(l.overflowed(), 100_000 - 999);
        // alice still has the 4 requests left of her own budget, flood or not.
        assert_eq!(l.slot_of(&Key::new("alice")), Slot::Own);
        for i in 0..4 {
            assert_eq!(l.check("alice"), Decision::Allow, "alice's request {i}");
        }
        assert!(matches!(l.check("alice"), Decision::Limit { .. }));
        // A new client now shares the exhausted overflow budget...
        assert_eq!(l.slot_of(&Key::new("bob")), Slot::Overflow);
        assert!(matches!(l.check("bob"), Decision::Limit { .. }));
        // ...and a flood key already tracked has its own budget, not the overflow.
        assert_eq!(l.check("flood-7"), Decision::Allow);
    }

    #[test]
    fn the_sweep_frees_idle_keys_and_never_runs_on_the_request_path() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::unswept("5/5s".parse().expect("rate"), None, 100, clock.clone());
        for i in 0..100 {
            let _ = l.check(format!("k{i}"));
        }
        clock.advance(Duration::from_secs(10));
        // Any number of decisions later, nothing has been swept by a request (the old
        // code swept on every 1,024th decision).
        for _ in 0..5_000 {
            let _ = l.check("k0");
        }
        assert_eq!(l.keys(), 100);
        assert_eq!(l.slot_of(&Key::new("new")), Slot::Overflow);
        // The sweep (the background thread's job) frees every idle key.
        l.sweep();
        assert_eq!(l.keys(), 1, "only k0, still busy, is kept");
        assert_eq!(l.slot_of(&Key::new("new")), Slot::Own);
        assert_eq!(l.check("new"), Decision::Allow);
    }

    #[test]
    fn registered_limiters_are_swept_by_the_background_pass() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock("1/1s".parse().expect("rate"), None, 10, clock.clone());
        for i in 0..10 {
            let _ = l.check(format!("k{i}"));
        }
        clock.advance(Duration::from_secs(2));
        // A pass far in the future sweeps every registered limiter, this one included.
        let far = std::time::Instant::now() + Duration::from_secs(3600);
        assert!(sweep::pass(far) >= 1);
        assert_eq!(l.keys(), 0);
    }

    #[test]
    fn a_refund_gives_back_exactly_one_request() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::unswept("3/1m".parse().expect("rate"), None, 10, clock.clone());
        for _ in 0..3 {
            assert_eq!(l.check("ip|alice"), Decision::Allow);
        }
        assert!(matches!(l.check("ip|alice"), Decision::Limit { .. }));
        l.refund("ip|alice");
        assert_eq!(l.check("ip|alice"), Decision::Allow);
        assert!(matches!(l.check("ip|alice"), Decision::Limit { .. }));
        // Refunds never bank more than a fresh state: a fresh key has its burst only.
        for _ in 0..10 {
            l.refund("ip|bob");
        }
        for _ in 0..3 {
            assert_eq!(l.check("ip|bob"), Decision::Allow);
        }
        for _ in 0..10 {
            l.refund("ip|bob");
        }
        for _ in 0..3 {
            assert_eq!(l.check("ip|bob"), Decision::Allow);
        }
        assert!(matches!(l.check("ip|bob"), Decision::Limit { .. }));
    }

    #[test]
    fn long_keys_are_kept_as_fixed_size_digests() {
        let long = "x".repeat(10_000);
        let k = Key::new(&long);
        assert!(matches!(k, Key::Digest(_)));
        assert_eq!(k, Key::from(long.clone()));
        assert_ne!(k, Key::new(&format!("{long}y")));
        assert!(k.as_text().len() <= 66);
        assert_eq!(Key::new("short"), Key::Plain("short".into()));
        // One budget per long value, as for short ones.
        let l = Limiter::unswept(
            "1/1m".parse().expect("rate"),
            None,
            10,
            FakeRelativeClock::default(),
        );
        assert_eq!(l.check(long.as_str()), Decision::Allow);
        assert!(matches!(l.check(long.clone()), Decision::Limit { .. }));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
