//! `[rate_limits]` → [`RateLimits`](crate::ratelimit::RateLimits): the
//! named policies, the shared backend (memory or Redis) and the IPv6 prefix keying.
//!
//! Kept apart because the section mixes backend settings and policies in one table,
//! and because routes may only name policies declared here (checked at the end).

use crate::config::file::RouteFile;

use super::{key_segment, Issues};

/// An `ipv6_prefix` value: 1 to 128 bits.
fn ipv6_prefix(issues: &mut Issues, key: &str, n: i64) -> u8 {
    match u8::try_from(n) {
        Ok(p @ 1..=128) => p,
        _ => {
            issues.add(
                key,
                "must be a prefix length from 1 to 128",
                "64 (the default) keys each IPv6 client by its /64; 128 by its address",
            );
            crate::ratelimit::DEFAULT_IPV6_PREFIX
        }
    }
}

/// `[rate_limits]`: each entry a policy; routes may only name existing ones.
pub(super) fn rate_limits(
    issues: &mut Issues,
    table: Option<toml::Value>,
    routes: &[Option<RouteFile>],
) -> crate::ratelimit::RateLimits {
    use crate::ratelimit::{KeySpec, PolicySpec, RateLimits};
    let mut out = RateLimits::default();
    let entries = match table {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            issues.add(
                "rate_limits",
                "must be a table of policies",
                "write [rate_limits.NAME] tables",
            );
            toml::Table::new()
        }
    };
    // Backend settings share the table with the policies.
    let mut entries = entries;
    let text = |issues: &mut Issues, k: &str, v: Option<toml::Value>| -> Option<String> {
        match v {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => {
                issues.add(
                    format!("rate_limits.{k}"),
                    "must be a string",
                    "e.g. \"redis://127.0.0.1:6379\"",
                );
                None
            }
        }
    };
    let backend = text(issues, "backend", entries.remove("backend"));
    let backend_env = text(issues, "backend_env", entries.remove("backend_env"));
    let timeout = text(issues, "redis_timeout", entries.remove("redis_timeout"))
        .map(|t| issues.duration("rate_limits.redis_timeout".into(), &t))
        .unwrap_or(std::time::Duration::from_millis(50));
    out.ipv6_prefix = match entries.remove("ipv6_prefix") {
        None => crate::ratelimit::DEFAULT_IPV6_PREFIX,
        Some(toml::Value::Integer(n)) => ipv6_prefix(issues, "rate_limits.ipv6_prefix", n),
        Some(_) => ipv6_prefix(issues, "rate_limits.ipv6_prefix", -1),
    };
    let url = match (backend, backend_env) {
        (Some(_), Some(_)) => {
            issues.add(
                "rate_limits.backend",
                "both backend and backend_env are set",
                "keep one",
            );
            None
        }
        (Some(u), None) => Some(u),
        (None, Some(var)) => match std::env::var(&var) {
            Ok(u) => Some(u),
            Err(_) => {
                issues.add(
                    "rate_limits.backend_env",
                    format!("environment variable {var} is not set"),
                    format!("export {var}=redis://host:6379"),
                );
                None
            }
        },
        (None, None) => None,
    };
    let redis = url.and_then(|u| {
        if u == "memory" {
            return None;
        }
        crate::ratelimit::check_url(&u)
            .map_err(|e| {
                issues.add(
                    "rate_limits.backend",
                    e,
                    "use \"memory\" (default) or \"redis://host:6379\"",
                )
            })
            .ok()
            .map(|()| crate::ratelimit::RedisSpec { url: u, timeout })
    });
    out.backend = redis.clone();
    // Every policy the file names, valid or not: a route naming one with an error of
    // its own is not reported again as naming no policy.
    let declared: std::collections::BTreeSet<String> = entries.keys().cloned().collect();
    for (name, value) in entries {
        let key = format!("rate_limits.{}", key_segment(&name));
        let Some(f) = issues.section::<crate::config::file::RateLimitFile>(key.clone(), value)
        else {
            continue;
        };
        if name == "none" {
            issues.add(
                key.clone(),
                "\"none\" is reserved",
                "give the policy another name",
            );
        }
        let spec = KeySpec::parse(&f.key)
            .map_err(|e| {
                issues.add(
                    format!("{key}.key"),
                    e,
                    "e.g. key = \"ip\" or \"subject+route\"",
                )
            })
            .ok();
        let rate = f
            .rate
            .parse::<crate::ratelimit::Rate>()
            .map_err(|e| issues.add(format!("{key}.rate"), e, "e.g. rate = \"100/1s\""))
            .ok();
        if f.burst == Some(0) {
            issues.add(
                format!("{key}.burst"),
                "is 0: nothing would pass",
                "leave it out (= the rate's count) or set at least 1",
            );
        }
        if !crate::ratelimit::LOGIN_POLICIES.contains(&name.as_str())
            && spec
                .as_ref()
                .is_some_and(|s| s.0.contains(&crate::ratelimit::KeyPart::Username))
        {
            issues.add(
                format!("{key}.key"),
                "username is only known to the login and login_ip policies",
                "use ip, subject, client_id, route or header:NAME",
            );
        }
        let on_error = match f.on_error.as_deref() {
            None => None,
            Some("allow") => Some(crate::ratelimit::OnError::Allow),
            Some("deny") => Some(crate::ratelimit::OnError::Deny),
            Some(other) => {
                issues.add(
                    format!("{key}.on_error"),
                    format!("\"{other}\" is not allow or deny"),
                    "on_error = \"allow\" or \"deny\"",
                );
                None
            }
        };
        if let (Some(spec), Some(rate)) = (spec, rate) {
            let mut policy = PolicySpec::new(
                &name,
                spec,
                rate,
                f.burst,
                f.max_keys.unwrap_or(100_000).max(1),
            );
            if let Some(o) = on_error {
                policy.on_error = o;
            }
            policy.backend = redis.clone();
            policy.ipv6_prefix = f.ipv6_prefix.map_or(out.ipv6_prefix, |n| {
                ipv6_prefix(issues, &format!("{key}.ipv6_prefix"), i64::from(n))
            });
            out.policies.insert(name, policy);
        }
    }
    for (i, r) in routes.iter().enumerate() {
        if let Some(Some(name)) = r.as_ref().map(|r| r.rate_limit.as_ref()) {
            if name != "none" && !declared.contains(name) {
                let known: Vec<&str> = declared.iter().map(String::as_str).collect();
                issues.add(
                    format!("routes[{i}].rate_limit"),
                    format!("no [rate_limits.{name}] policy"),
                    format!("use one of: {}, or \"none\"", known.join(", ")),
                );
            }
        }
    }
    out
}
