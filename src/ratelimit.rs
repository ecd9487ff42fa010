//! Keyed rate limiting (GCRA, governor) with bounded memory.
//!
//! A [`Rate`] such as `"5/5s"` admits 5 requests per 5 seconds: a burst of 5, then one
//! more every second (GCRA spreads the period evenly). A [`Limiter`] keeps one GCRA
//! state per key (e.g. `ip+username` for `/token`).
//!
//! Memory stays bounded: every 1,024 decisions the keys whose state is back to "fresh"
//! are dropped, and once `max_keys` keys are tracked every further decision is taken
//! on one shared overflow key until the sweep frees room. A flood of distinct keys
//! therefore costs at most `max_keys` entries and is itself rate limited as a whole.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
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

/// Key used by every decision once `max_keys` keys are tracked.
const OVERFLOW_KEY: &str = "\u{0}overflow";
/// Decisions between two sweeps of idle keys.
const SWEEP_EVERY: u64 = 1024;

/// A keyed GCRA limiter with a cap on the number of keys.
pub struct Limiter<C: Clock = DefaultClock> {
    inner: RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    rate: Rate,
    max_keys: usize,
    decisions: AtomicU64,
}

impl<C: Clock> std::fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("rate", &self.rate)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl Limiter<DefaultClock> {
    pub fn new(rate: Rate, burst: Option<u32>, max_keys: usize) -> Limiter {
        Limiter::with_clock(rate, burst, max_keys, DefaultClock::default())
    }
}

impl<C: Clock> Limiter<C> {
    pub fn with_clock(rate: Rate, burst: Option<u32>, max_keys: usize, clock: C) -> Limiter<C> {
        Limiter {
            inner: RateLimiter::dashmap_with_clock(rate.quota(burst), clock),
            rate,
            max_keys: max_keys.max(1),
            decisions: AtomicU64::new(0),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Number of keys currently tracked.
    pub fn keys(&self) -> usize {
        self.inner.len()
    }

    /// Counts one request for `key` (owned: the state map stores it).
    pub fn check(&self, key: String) -> Decision {
        let n = self.decisions.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.inner.retain_recent();
        }
        let outcome = if self.inner.len() >= self.max_keys {
            self.inner.check_key(&OVERFLOW_KEY.to_string())
        } else {
            self.inner.check_key(&key)
        };
        match outcome {
            Ok(()) => Decision::Allow,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.inner.clock().now());
                Decision::Limit { retry_after: wait }
            }
        }
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
        let l = Limiter::with_clock("5/5s".parse().expect("rate"), None, 100, clock.clone());
        for i in 0..5 {
            assert_eq!(l.check("ip|alice".into()), Decision::Allow, "attempt {i}");
        }
        let Decision::Limit { retry_after } = l.check("ip|alice".into()) else {
            panic!("the sixth attempt must be limited");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        assert_eq!(retry_after_secs(retry_after), 1);
        // Another key has its own budget.
        assert_eq!(l.check("ip|bob".into()), Decision::Allow);
        // One second later one more attempt, not two.
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check("ip|alice".into()), Decision::Allow);
        assert!(matches!(l.check("ip|alice".into()), Decision::Limit { .. }));
        // After the whole period the full burst is back.
        clock.advance(Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(l.check("ip|alice".into()), Decision::Allow);
        }
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded_and_is_limited_as_one() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock("5/5s".parse().expect("rate"), None, 1000, clock.clone());
        let mut allowed = 0;
        for i in 0..100_000 {
            if l.check(format!("key-{i}")) == Decision::Allow {
                allowed += 1;
            }
        }
        assert!(l.keys() <= 1001, "{} keys tracked", l.keys());
        // 999 keys got their first request; the rest share one 5-request burst.
        assert!(allowed <= 1000 + 5, "{allowed} allowed");
        // Once the period has passed, idle keys are swept and new keys are tracked again.
        clock.advance(Duration::from_secs(10));
        for i in 0..SWEEP_EVERY {
            let _ = l.check(format!("later-{i}"));
        }
        assert!(l.keys() < 1000, "{} keys after the sweep", l.keys());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
