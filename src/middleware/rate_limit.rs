//! Stage 13: rate limiting by named policies (`[rate_limits]`), in memory.
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
//! In memory (the default), counters live in the configuration snapshot and a reload
//! starts them afresh. With `[rate_limits] backend = "redis://…"` every decision is
//! one Lua script run atomically in Redis (the same GCRA, on the server's clock), so
//! replicas share one budget; a Redis that fails or answers later than
//! `redis_timeout` is handled by the policy's `on_error` (`allow`, or `deny` — the
//! default for the `login` policy), logged at most once per 10 s.
//!
//! The policy named `login` limits `/token` (password grant) and `/register`; its key
//! may use `username`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use crate::ratelimit::{retry_after_secs, Decision, Limiter, Rate};

/// One part of a policy's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Ip,
    Subject,
    ClientId,
    Route,
    Header(HeaderName),
    /// The username of a login attempt (the `login` policy only).
    Username,
}

/// What a request's key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec(pub Vec<KeyPart>);

impl KeySpec {
    /// `"ip+subject"`, `"header:x-tenant"`…; the error is a sentence for `check`.
    pub fn parse(s: &str) -> Result<KeySpec, String> {
        let mut parts = Vec::new();
        for p in s.split('+').map(str::trim) {
            let part = match p {
                "ip" => KeyPart::Ip,
                "subject" => KeyPart::Subject,
                "client_id" => KeyPart::ClientId,
                "route" => KeyPart::Route,
                "username" => KeyPart::Username,
                _ => match p.strip_prefix("header:") {
                    Some(h) => KeyPart::Header(
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("\"{h}\" is not a header name"))?,
                    ),
                    None => {
                        return Err(format!(
                            "\"{p}\" is not a key part (ip, subject, client_id, route, header:NAME, username)"
                        ))
                    }
                },
            };
            if parts.contains(&part) {
                return Err(format!("\"{p}\" appears twice"));
            }
            parts.push(part);
        }
        Ok(KeySpec(parts))
    }

    /// Whether the key needs the verified caller (applied after authorization).
    pub fn needs_identity(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, KeyPart::Subject | KeyPart::ClientId))
    }
}

/// What a key is built from.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    pub ip: IpAddr,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub route: &'a str,
    pub headers: &'a HeaderMap,
    pub username: Option<&'a str>,
}

/// What a policy does when its Redis backend fails or is too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Allow,
    Deny,
}

/// A named policy and its counters.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub key: KeySpec,
    pub limiter: Limiter,
    pub burst: u32,
    pub on_error: OnError,
    /// Counters in Redis instead of `limiter`.
    pub redis: Option<Arc<RedisBackend>>,
}

impl Policy {
    pub fn new(
        name: &str,
        key: KeySpec,
        rate: Rate,
        burst: Option<u32>,
        max_keys: usize,
    ) -> Policy {
        Policy {
            name: name.to_string(),
            key,
            limiter: Limiter::new(rate, burst, max_keys),
            burst: burst.unwrap_or(rate.count),
            on_error: if name == "login" {
                OnError::Deny
            } else {
                OnError::Allow
            },
            redis: None,
        }
    }

    /// The key of a request; parts are separated by a byte no header value holds.
    pub fn key_of(&self, k: &KeyInput<'_>) -> String {
        let mut out = String::new();
        for p in &self.key.0 {
            if !out.is_empty() {
                out.push('\u{1f}');
            }
            match p {
                KeyPart::Ip => out.push_str(&k.ip.to_string()),
                KeyPart::Subject => match k.subject {
                    Some(s) => {
                        out.push_str("s:");
                        out.push_str(s);
                    }
                    None => out.push_str(&format!("ip:{}", k.ip)),
                },
                KeyPart::ClientId => match k.client_id.or(k.subject) {
                    Some(c) => {
                        out.push_str("c:");
                        out.push_str(c);
                    }
                    None => out.push_str(&format!("ip:{}", k.ip)),
                },
                KeyPart::Route => out.push_str(k.route),
                KeyPart::Header(h) => {
                    for v in k.headers.get_all(h) {
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                        out.push(',');
                    }
                }
                KeyPart::Username => out.push_str(k.username.unwrap_or("")),
            }
        }
        out
    }

    /// Counts one request; `Err(retry-after seconds)` when refused.
    pub async fn check(&self, k: &KeyInput<'_>) -> Result<(), u64> {
        let key = self.key_of(k);
        let decision = match &self.redis {
            None => self.limiter.check(key),
            Some(r) => match r
                .decide(&self.name, &key, self.limiter.rate(), self.burst)
                .await
            {
                Ok(d) => d,
                Err(e) => {
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
            Decision::Allow => Ok(()),
            Decision::Limit { retry_after } => Err(retry_after_secs(retry_after)),
        }
    }

    /// `RateLimit-Policy` value: the burst over the policy's window.
    pub fn policy_header(&self) -> String {
        let r = self.limiter.rate();
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.burst,
            r.per.as_secs().max(1)
        )
    }
}

/// GCRA in Redis: `KEYS[1]` holds the theoretical arrival time (µs, server clock);
/// `ARGV[1]` is the emission interval and `ARGV[2]` the burst tolerance, both in µs.
/// Returns `{1, 0}` (allowed) or `{0, wait_us}`.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"#;

/// The shared Redis backend of a configuration's policies.
pub struct RedisBackend {
    client: redis::Client,
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    /// Until when no new connection is attempted (µs since the epoch), after a failure.
    retry_after_us: std::sync::atomic::AtomicU64,
    last_warning: std::sync::atomic::AtomicU64,
    timeout: std::time::Duration,
    script: redis::Script,
}

impl std::fmt::Debug for RedisBackend {
    // The URL may hold a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl RedisBackend {
    /// `url` is `redis://[user:password@]host:port[/db]`; nothing connects until the
    /// first decision.
    pub fn new(url: &str, timeout: std::time::Duration) -> Result<RedisBackend, String> {
        let client = redis::Client::open(url).map_err(|e| format!("not a Redis URL: {e}"))?;
        Ok(RedisBackend {
            client,
            conn: tokio::sync::OnceCell::new(),
            retry_after_us: std::sync::atomic::AtomicU64::new(0),
            last_warning: std::sync::atomic::AtomicU64::new(0),
            timeout,
            script: redis::Script::new(GCRA_LUA),
        })
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        use std::sync::atomic::Ordering;
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        if now_us() < self.retry_after_us.load(Ordering::Relaxed) {
            return Err("Redis unreachable (retrying in a moment)".into());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let made = self
            .conn
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await;
        match made {
            Ok(c) => Ok(c.clone()),
            Err(e) => {
                self.retry_after_us
                    .store(now_us() + 1_000_000, Ordering::Relaxed);
                Err(format!("Redis connection failed: {e}"))
            }
        }
    }

    /// One GCRA decision for `policy`/`key`, atomically in Redis.
    pub async fn decide(
        &self,
        policy: &str,
        key: &str,
        rate: Rate,
        burst: u32,
    ) -> Result<Decision, String> {
        let interval = u64::try_from((rate.per / rate.count).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let tolerance = interval.saturating_mul(u64::from(burst.saturating_sub(1)));
        // Long keys (header values) are hashed to bound Redis key sizes.
        let key = if key.len() > 128 {
            crate::auth::api_key::hash(key)
        } else {
            key.to_string()
        };
        let redis_key = format!("portcullis:rl:{policy}:{key}");
        let work = async {
            let mut conn = self.connection().await?;
            let (allowed, wait): (i64, i64) = self
                .script
                .key(redis_key)
                .arg(interval)
                .arg(tolerance)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| format!("Redis decision failed: {e}"))?;
            Ok(if allowed == 1 {
                Decision::Allow
            } else {
                Decision::Limit {
                    retry_after: std::time::Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
                }
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| Err(format!("Redis did not answer within {:?}", self.timeout)))
    }

    /// Logs a backend failure, at most once per 10 s.
    fn warn(&self, policy: &str, on_error: OnError, error: &str) {
        use std::sync::atomic::Ordering;
        let now = now_us();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) > 10_000_000
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(policy, error, on_error = ?on_error, "rate-limit backend failed; applying on_error");
        }
    }
}

/// Every policy of a configuration.
#[derive(Debug, Default)]
pub struct RateLimits {
    pub policies: HashMap<String, Arc<Policy>>,
}

impl RateLimits {
    /// The policy of a route: its own (`None` when it says `"none"`), else `default`.
    pub fn for_route(&self, route_policy: Option<&str>) -> Option<&Arc<Policy>> {
        if self.policies.is_empty() {
            return None;
        }
        match route_policy {
            Some("none") => None,
            Some(name) => self.policies.get(name),
            None => self.policies.get("default"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            KeySpec::parse("ip+route"),
            Ok(KeySpec(vec![KeyPart::Ip, KeyPart::Route]))
        );
        assert!(KeySpec::parse("subject").expect("spec").needs_identity());
        assert!(!KeySpec::parse("ip+header:x-tenant")
            .expect("spec")
            .needs_identity());
        for bad in ["", "ip+ip", "user", "header:bad header", "ip+"] {
            assert!(KeySpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn keys_separate_callers_and_fall_back_to_the_ip() {
        let p = Policy::new(
            "p",
            KeySpec::parse("subject+route").expect("spec"),
            "1/1m".parse().expect("rate"),
            None,
            100,
        );
        let h = HeaderMap::new();
        let k = |subject: Option<&'static str>, ip: [u8; 4]| KeyInput {
            ip: IpAddr::from(ip),
            subject,
            client_id: None,
            route: "items",
            headers: &h,
            username: None,
        };
        assert_eq!(p.check(&k(Some("alice"), [1, 1, 1, 1])).await, Ok(()));
        assert!(
            p.check(&k(Some("alice"), [2, 2, 2, 2])).await.is_err(),
            "same subject, other IP"
        );
        assert_eq!(p.check(&k(Some("bob"), [1, 1, 1, 1])).await, Ok(()));
        assert_eq!(
            p.check(&k(None, [3, 3, 3, 3])).await,
            Ok(()),
            "anonymous: by IP"
        );
        assert!(p.check(&k(None, [3, 3, 3, 3])).await.is_err());
        // A subject cannot collide with an IP's key.
        assert_eq!(p.check(&k(Some("ip:3.3.3.3"), [9, 9, 9, 9])).await, Ok(()));
        assert_eq!(p.policy_header(), "\"p\";q=1;w=60");
    }
}
