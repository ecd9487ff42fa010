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
//! Counters live in the configuration snapshot: a reload starts them afresh.

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
                _ => match p.strip_prefix("header:") {
                    Some(h) => KeyPart::Header(
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("\"{h}\" is not a header name"))?,
                    ),
                    None => {
                        return Err(format!(
                            "\"{p}\" is not a key part (ip, subject, client_id, route, header:NAME)"
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
}

/// A named policy and its counters.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub key: KeySpec,
    pub limiter: Limiter,
    pub burst: u32,
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
            }
        }
        out
    }

    /// Counts one request; `Err(retry-after seconds)` when refused.
    pub fn check(&self, k: &KeyInput<'_>) -> Result<(), u64> {
        match self.limiter.check(&self.key_of(k)) {
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

/// Every policy of a configuration.
#[derive(Debug, Default)]
pub struct RateLimits {
    pub policies: HashMap<String, Arc<Policy>>,
}

impl RateLimits {
    /// The policy of a route: its own (`None` when it says `"none"`), else `default`.
    pub fn for_route(&self, route_policy: Option<&str>) -> Option<&Arc<Policy>> {
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

    #[test]
    fn keys_separate_callers_and_fall_back_to_the_ip() {
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
        };
        assert_eq!(p.check(&k(Some("alice"), [1, 1, 1, 1])), Ok(()));
        assert!(
            p.check(&k(Some("alice"), [2, 2, 2, 2])).is_err(),
            "same subject, other IP"
        );
        assert_eq!(p.check(&k(Some("bob"), [1, 1, 1, 1])), Ok(()));
        assert_eq!(p.check(&k(None, [3, 3, 3, 3])), Ok(()), "anonymous: by IP");
        assert!(p.check(&k(None, [3, 3, 3, 3])).is_err());
        // A subject cannot collide with an IP's key.
        assert_eq!(p.check(&k(Some("ip:3.3.3.3"), [9, 9, 9, 9])), Ok(()));
        assert_eq!(p.policy_header(), "\"p\";q=1;w=60");
    }
}
