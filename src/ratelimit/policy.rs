//! Named rate-limit policies (`[rate_limits]`): as configured and as counted.
//!
//! A policy has a key — `ip`, `subject`, `client_id`, `route`, `header:NAME`, or
//! several joined with `+` — a rate (`"100/1s"`) and a burst. The policy named
//! `default` applies to every route that does not name its own (`rate_limit = "…"`,
//! or `"none"`). A policy whose key needs no identity (`ip`, `route`, `header:…`) is
//! applied before authentication, so floods of bad tokens are limited before any
//! signature is checked; the others right after authorization. An anonymous request
//! on a `subject`/`client_id` policy is keyed by its IP instead.
//!
//! A refusal is `429` with `Retry-After`, and the IETF draft headers
//! `RateLimit-Policy: "NAME";q=BURST;w=SECONDS` and `RateLimit: "NAME";r=0;t=SECONDS`.
//! The configuration holds each policy as data ([`PolicySpec`]); the counters
//! ([`Policy`]) are owned by the runtime (`crate::runtime`) and kept across a reload
//! that leaves the policy's spec unchanged (a changed spec starts afresh). With `[rate_limits] backend = "redis://…"` every decision is
//! one Lua script run atomically in Redis (the same GCRA, on the server's clock), so
//! replicas share one budget; a Redis that fails or answers later than
//! `redis_timeout` is handled by the policy's `on_error` (`allow`, or `deny` — the
//! default for the `login` policy), logged at most once per 10 s.
//!
//! IPv6 clients are keyed by their /64 (`ipv6_prefix`, on `[rate_limits]` or a
//! policy): one host holds a whole /64 and could otherwise rotate addresses for a
//! fresh budget each. IPv4-mapped IPv6 addresses count as the IPv4 address.
//!
//! Two policies limit `/token` (password grant) and `/register`, and may use
//! `username` in their key: `login` (default `ip+username`, from `[tokens]
//! login_rate` when not configured) and `login_ip` (default `ip`, from `[tokens]
//! login_ip_rate`). Both count failed attempts only: an attempt is counted before the
//! password is checked and given back ([`Policy::refund`]) when it succeeds.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use crate::metrics::{metrics, Name, PolicyLabels};

use super::{retry_after_secs, Decision, Key, KeyInput, KeySpec, Limiter, Rate, RedisBackend};

/// Default `ipv6_prefix`: a /64 is what one subscriber or host is given.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The names of the login policies (the only ones that may use `username`).
pub const LOGIN_POLICIES: [&str; 2] = ["login", "login_ip"];

/// What a policy does when its Redis backend fails or is too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnError {
    Allow,
    Deny,
}

/// `[rate_limits] backend = "redis://…"`: where shared counters live. Plain data; the
/// client is built by the runtime (`crate::runtime`), one per distinct spec.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisSpec {
    /// `redis://[user:password@]host:port[/db]` (may hold a password: never printed).
    pub url: String,
    /// `redis_timeout`: a decision that takes longer applies `on_error`.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpec")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A named policy as configured: plain data, compared on reload. Two equal specs are
/// the same policy, so a reload that leaves a spec unchanged keeps its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub name: String,
    pub key: KeySpec,
    pub rate: Rate,
    /// `burst`; `None`: the rate's count.
    pub burst: Option<u32>,
    /// Most keys tracked in memory.
    pub max_keys: usize,
    pub on_error: OnError,
    /// IPv6 addresses are keyed by this prefix length (128: each address).
    pub ipv6_prefix: u8,
    /// Counters in Redis instead of in memory.
    pub backend: Option<RedisSpec>,
}

impl PolicySpec {
    /// A memory policy with the defaults (`on_error = deny` for the login policies).
    pub fn new(
        name: &str,
        key: KeySpec,
        rate: Rate,
        burst: Option<u32>,
        max_keys: usize,
    ) -> PolicySpec {
        PolicySpec {
            name: name.to_string(),
            key,
            rate,
            burst,
            max_keys,
            on_error: if LOGIN_POLICIES.contains(&name) {
                OnError::Deny
            } else {
                OnError::Allow
            },
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            backend: None,
        }
    }

    /// The burst: as configured, else the rate's count.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.rate.count)
    }

    /// `RateLimit-Policy` value: the burst over the policy's window.
    pub fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.burst(),
            self.rate.per.as_secs().max(1)
        )
    }
}

/// A policy and its counters: built by the runtime from a [`PolicySpec`] and kept
/// across reloads while the spec stays the same. Reads as its spec (`Deref`).
#[derive(Debug)]
pub struct Policy {
    spec: PolicySpec,
    limiter: Limiter,
    /// Counters in Redis instead of `limiter`.
    redis: Option<Arc<RedisBackend>>,
    /// `portcullis_rate_limit_decisions_total{policy}`: allowed, limited, and backend
    /// errors (counted besides the decision `on_error` made).
    counted: [Counter; 3],
}

impl std::ops::Deref for Policy {
    type Target = PolicySpec;

    fn deref(&self) -> &PolicySpec {
        &self.spec
    }
}

impl Policy {
    /// The counters of `spec`; `redis` is its backend's client when it has one.
    pub fn new(spec: PolicySpec, redis: Option<Arc<RedisBackend>>) -> Policy {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let counted = ["allowed", "limited", "backend_error"].map(|decision| {
            metrics().rate_limit.get_or_create_owned(&PolicyLabels {
                policy: Name::Configured(name.clone()),
                decision,
            })
        });
        Policy {
            limiter: Limiter::new(spec.rate, spec.burst, spec.max_keys),
            spec,
            redis,
            counted,
        }
    }

    /// The spec this policy was built from.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Whether decisions are taken in memory (at once) rather than in Redis.
    pub fn in_memory(&self) -> bool {
        self.redis.is_none()
    }

    /// The in-memory counters (unused with a Redis backend).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Counts one request; `Err(retry-after seconds)` when refused.
    pub async fn check(&self, k: &KeyInput<'_>) -> Result<(), u64> {
        let key = Key::from(self.key_of(k));
        let decision = match &self.redis {
            None => self.limiter.check(key),
            Some(r) => match r.decide(&self.name, key, self.rate, self.burst()).await {
                Ok(d) => d,
                Err(e) => {
                    self.counted[2].inc();
                    r.warn(&self.name, self.on_error, &e);
                    match self.on_error {
                        OnError::Allow => Decision::Allow,
                        OnError::Deny => Decision::Limit {
                            retry_after: std::time::Duration::from_secs(1),
                        },
                    }
                }
            },
        };
        match decision {
            Decision::Allow => {
                self.counted[0].inc();
                Ok(())
            }
            Decision::Limit { retry_after } => {
                self.counted[1].inc();
                Err(retry_after_secs(retry_after))
            }
        }
    }

    /// Gives back one request counted by [`Policy::check`] for the same input (a login
    /// that succeeded). Best effort: a Redis failure is logged and the count stays.
    pub async fn refund(&self, k: &KeyInput<'_>) {
        let key = Key::from(self.key_of(k));
        match &self.redis {
            None => self.limiter.refund(key),
            Some(r) => {
                if let Err(e) = r.refund(&self.name, key, self.rate).await {
                    r.warn(&self.name, self.on_error, &e);
                }
            }
        }
    }
}

/// Every policy of a configuration, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub policies: HashMap<String, PolicySpec>,
    /// The shared backend, if any (also given to the login defaults).
    pub backend: Option<RedisSpec>,
    /// `[rate_limits] ipv6_prefix` (policies may override it).
    pub ipv6_prefix: u8,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            policies: HashMap::new(),
            backend: None,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

/// The login policies used when `[rate_limits.login]` / `[rate_limits.login_ip]` are
/// not configured: from `[tokens] login_rate` and `login_ip_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginDefaults {
    pub per_user: Rate,
    pub per_ip: Rate,
    pub max_keys: usize,
}

impl RateLimits {
    /// Adds the login policies the file does not configure.
    pub fn add_login_defaults(&mut self, d: LoginDefaults) {
        for (name, key, rate) in [
            ("login", "ip+username", d.per_user),
            ("login_ip", "ip", d.per_ip),
        ] {
            if self.policies.contains_key(name) {
                continue;
            }
            let Ok(spec) = KeySpec::parse(key) else {
                continue;
            };
            let mut p = PolicySpec::new(name, spec, rate, None, d.max_keys);
            p.backend = self.backend.clone();
            p.ipv6_prefix = self.ipv6_prefix;
            self.policies.insert(name.to_string(), p);
        }
    }
}

/// A configuration's live policies by name (what a snapshot reads).
#[derive(Debug, Default)]
pub struct Policies(pub HashMap<String, Arc<Policy>>);

impl Policies {
    /// The two login policies, when the token service is configured.
    pub fn login(&self) -> Option<(&Policy, &Policy)> {
        Some((&**self.0.get("login")?, &**self.0.get("login_ip")?))
    }

    /// The policy of a route: its own (`None` when it says `"none"`), else `default`.
    pub fn for_route(&self, route_policy: Option<&str>) -> Option<&Arc<Policy>> {
        if self.0.is_empty() {
            return None;
        }
        match route_policy {
            Some("none") => None,
            Some(name) => self.0.get(name),
            None => self.0.get("default"),
        }
    }
}

#[cfg(test)]
mod tests;
