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
//!
//! Named policies (`[rate_limits]`, [`policy`]) key requests ([`key`]) and count them
//! with a [`Limiter`] in memory ([`gcra`]) or in Redis ([`redis`]). The configuration
//! holds policies as data ([`PolicySpec`]); the counters ([`Policy`]) belong to the
//! runtime (`crate::runtime`) and are kept across a reload that leaves the spec
//! unchanged.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Rate`], [`Key`], [`Decision`] |
//! | `gcra.rs` | [`Limiter`]: keyed GCRA in memory, refunds |
//! | `store.rs`, `sweep.rs` | the bounded, fair key store and the idle-key sweep |
//! | `key.rs` | what a policy's key is made of, and a request's key |
//! | `policy.rs` | policies as configured and as counted, `on_error`, the login policies |
//! | `redis.rs` | the Redis backend (one Lua script per decision) |

pub mod gcra;
pub mod key;
pub mod policy;
pub mod redis;
mod store;
mod sweep;

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::Quota;

pub use gcra::Limiter;
pub use key::{KeyInput, KeyPart, KeySpec};
pub use policy::{
    LoginDefaults, OnError, Policies, Policy, PolicySpec, RateLimits, RedisSpec,
    DEFAULT_IPV6_PREFIX, LOGIN_POLICIES,
};
pub use redis::{check_url, RedisBackend};
pub use store::Slot;
pub(crate) use sweep::spawn_janitor;

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

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests;
