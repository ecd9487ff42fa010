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

mod redis_backend;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};

pub use redis_backend::{check_url, RedisBackend};

use crate::ratelimit::{retry_after_secs, Decision, Key, Limiter, Rate};

/// Default `ipv6_prefix`: a /64 is what one subscriber or host is given.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The names of the login policies (the only ones that may use `username`).
pub const LOGIN_POLICIES: [&str; 2] = ["login", "login_ip"];

/// One part of a policy's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// The verified token's issuer: subjects (and client ids) are per issuer, so an
    /// external IdP's `sub = "alice"` never shares our alice's budget.
    pub issuer: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub route: &'a str,
    pub headers: &'a HeaderMap,
    pub username: Option<&'a str>,
}

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

    /// The client address as a key: IPv4 as is, IPv6 as its `ipv6_prefix` network.
    fn ip_key(&self, ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) if self.ipv6_prefix >= 128 => v6.to_string(),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                format!(
                    "{}/{}",
                    std::net::Ipv6Addr::from(bits & mask),
                    self.ipv6_prefix
                )
            }
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
                KeyPart::Ip => out.push_str(&self.ip_key(k.ip)),
                KeyPart::Subject => match k.subject {
                    Some(s) => {
                        out.push_str("s:");
                        out.push_str(k.issuer.unwrap_or(""));
                        out.push('\u{1e}');
                        out.push_str(s);
                    }
                    None => out.push_str(&format!("ip:{}", self.ip_key(k.ip))),
                },
                KeyPart::ClientId => match (k.client_id, k.subject) {
                    (Some(c), _) => {
                        out.push_str("c:");
                        out.push_str(k.issuer.unwrap_or(""));
                        out.push('\u{1e}');
                        out.push_str(c);
                    }
                    // A token without a client: its subject, marked apart so that a
                    // subject named like a client never shares that client's budget.
                    (None, Some(s)) => {
                        out.push_str("cs:");
                        out.push_str(k.issuer.unwrap_or(""));
                        out.push('\u{1e}');
                        out.push_str(s);
                    }
                    (None, None) => out.push_str(&format!("ip:{}", self.ip_key(k.ip))),
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
        Policy {
            limiter: Limiter::new(spec.rate, spec.burst, spec.max_keys),
            spec,
            redis,
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
mod tests {
    use super::*;

    fn memory(spec: PolicySpec) -> Policy {
        Policy::new(spec, None)
    }

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
        let p = memory(PolicySpec::new(
            "p",
            KeySpec::parse("subject+route").expect("spec"),
            "1/1m".parse().expect("rate"),
            None,
            100,
        ));
        let h = HeaderMap::new();
        let k = |subject: Option<&'static str>, ip: [u8; 4]| KeyInput {
            ip: IpAddr::from(ip),
            issuer: subject.map(|_| "https://gw.test"),
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

    /// Subjects and clients are per issuer; a subject is never a client's key.
    #[tokio::test]
    async fn subjects_are_per_issuer_and_never_a_clients_key() {
        let h = HeaderMap::new();
        let key = |spec: &str| KeySpec::parse(spec).expect("spec");
        let p = memory(PolicySpec::new(
            "p",
            key("subject"),
            "1/1m".parse().expect("rate"),
            None,
            100,
        ));
        let k = |issuer: &'static str, sub: &'static str, client: Option<&'static str>| KeyInput {
            ip: IpAddr::from([1, 1, 1, 1]),
            issuer: Some(issuer),
            subject: Some(sub),
            client_id: client,
            route: "r",
            headers: &h,
            username: None,
        };
        assert_eq!(p.check(&k("https://gw.test", "alice", None)).await, Ok(()));
        assert_eq!(
            p.check(&k("https://idp.example", "alice", None)).await,
            Ok(()),
            "another issuer's alice has her own budget"
        );
        assert!(p.check(&k("https://gw.test", "alice", None)).await.is_err());
        let c = memory(PolicySpec::new(
            "c",
            key("client_id"),
            "1/1m".parse().expect("rate"),
            None,
            100,
        ));
        assert_eq!(
            c.check(&k("https://gw.test", "u", Some("web"))).await,
            Ok(())
        );
        assert_eq!(
            c.check(&k("https://idp.example", "web", None)).await,
            Ok(()),
            "a subject named like a client is not that client"
        );
        assert!(c
            .check(&k("https://gw.test", "v", Some("web")))
            .await
            .is_err());
    }

    fn input(ip: IpAddr, headers: &HeaderMap) -> KeyInput<'_> {
        KeyInput {
            ip,
            issuer: None,
            subject: None,
            client_id: None,
            route: "r",
            headers,
            username: None,
        }
    }

    #[tokio::test]
    async fn ipv6_clients_are_keyed_by_their_64_and_ipv4_mapped_by_the_ipv4_address() {
        let h = HeaderMap::new();
        let p = memory(PolicySpec::new(
            "p",
            KeySpec::parse("ip").expect("spec"),
            "1/1m".parse().expect("rate"),
            None,
            100,
        ));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            p.key_of(&input(ip("2001:db8:1:2:aaaa::1"), &h)),
            "2001:db8:1:2::/64"
        );
        assert_eq!(p.check(&input(ip("2001:db8:1:2::1"), &h)).await, Ok(()));
        // Rotating the interface identifier gives no fresh budget.
        assert!(p
            .check(&input(ip("2001:db8:1:2:ffff:1:2:3"), &h))
            .await
            .is_err());
        // The next /64 is someone else.
        assert_eq!(p.check(&input(ip("2001:db8:1:3::1"), &h)).await, Ok(()));
        // IPv4 (also as an IPv4-mapped IPv6 address) is keyed by its address.
        assert_eq!(p.key_of(&input(ip("::ffff:192.0.2.7"), &h)), "192.0.2.7");
        assert_eq!(p.check(&input(ip("192.0.2.7"), &h)).await, Ok(()));
        assert!(p.check(&input(ip("::ffff:192.0.2.7"), &h)).await.is_err());
        assert_eq!(p.check(&input(ip("192.0.2.8"), &h)).await, Ok(()));
        // Configurable: 128 keys each address.
        let mut p = p.spec().clone();
        p.ipv6_prefix = 128;
        assert_eq!(p.key_of(&input(ip("2001:db8::1"), &h)), "2001:db8::1");
        p.ipv6_prefix = 48;
        assert_eq!(
            p.key_of(&input(ip("2001:db8:1:2::1"), &h)),
            "2001:db8:1::/48"
        );
    }

    /// The old limiter sent every decision to one overflow key once full: a client
    /// rotating `X-Tenant` values then limited every tenant.
    #[tokio::test]
    async fn a_header_flood_does_not_limit_a_known_tenant() {
        let p = memory(PolicySpec::new(
            "tenants",
            KeySpec::parse("header:x-tenant").expect("spec"),
            "3/1m".parse().expect("rate"),
            None,
            50,
        ));
        let mut acme = HeaderMap::new();
        acme.insert("x-tenant", http::HeaderValue::from_static("acme"));
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(p.check(&input(ip, &acme)).await, Ok(()));
        for i in 0..1000 {
            let mut h = HeaderMap::new();
            let v = format!("rotating-{i}-{}", "x".repeat(200));
            h.insert("x-tenant", http::HeaderValue::from_str(&v).expect("value"));
            let _ = p.check(&input(ip, &h)).await;
        }
        assert_eq!(p.limiter().keys(), 50);
        assert_eq!(p.check(&input(ip, &acme)).await, Ok(()));
        assert_eq!(p.check(&input(ip, &acme)).await, Ok(()));
        assert!(p.check(&input(ip, &acme)).await.is_err(), "acme's own 3");
    }
}
