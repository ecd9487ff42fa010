//! `[[routes]]` → [`Route`]s: path pattern, methods, host, upstream, auth mode,
//! scopes and roles, upgrades, per-route limits, transforms and CORS.
//!
//! Also refuses routes that can never be chosen (same shape, host and an overlapping
//! method as an earlier route) and protocol upgrades that would bypass the policy.

use std::collections::HashSet;
use std::sync::Arc;

use http::Method;

use crate::config::file::RouteFile;
use crate::config::{AuthMode, Route, Upstream};
use crate::policy::matcher::Pattern;

use super::cors::cors;
use super::headers::transform;
use super::Issues;

/// A route's `upgrades`: protocol names (RFC 9110 §7.8 tokens), lower-cased; `h2c`
/// is refused (an h2c upgrade would tunnel HTTP/2 past every route policy).
fn upgrades(issues: &mut Issues, key: &str, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let lower = n.to_ascii_lowercase();
        let token = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        if !token {
            issues.add(
                format!("{key}[{i}]"),
                format!("\"{n}\" is not a protocol name"),
                "write a protocol token such as \"websocket\"",
            );
        } else if lower == "h2c" || lower.starts_with("h2c/") {
            issues.add(
                format!("{key}[{i}]"),
                "h2c upgrades are never forwarded",
                "remove \"h2c\"; use HTTP/2 with prior knowledge to reach the gateway instead",
            );
        } else {
            out.push(lower);
        }
    }
    out
}

/// A route's `client_cert` / `client_cert_sans`: `Some(sans)` when a verified client
/// certificate is required (whether the listener asks for one is checked with
/// `[server.tls]`, in `validate.rs`).
fn client_cert(
    issues: &mut Issues,
    key: &dyn Fn(&str) -> String,
    r: &RouteFile,
) -> Option<Vec<String>> {
    let required = match r.client_cert.as_deref() {
        None | Some("none") => !r.client_cert_sans.is_empty(),
        Some("required") => true,
        Some(other) => {
            issues.add(
                key("client_cert"),
                format!("\"{other}\" is not a choice"),
                "use \"required\" (or leave it out)",
            );
            return None;
        }
    };
    for (i, san) in r.client_cert_sans.iter().enumerate() {
        let typed = ["DNS:", "URI:", "email:", "IP:"].iter().any(|p| {
            san.strip_prefix(p)
                .is_some_and(|v| !v.is_empty() && !v.contains([' ', ',']))
        });
        if !typed {
            issues.add(
                key(&format!("client_cert_sans[{i}]")),
                format!("\"{san}\" is not a typed name"),
                "write e.g. \"URI:spiffe://example.org/billing\", \"DNS:svc.internal\", \"email:ops@example.com\" or \"IP:10.0.0.7\"",
            );
        }
    }
    // Compared as the certificate's are written: DNS names in lower case, IP
    // addresses in their canonical form.
    let sans = r
        .client_cert_sans
        .iter()
        .map(|s| match s.split_once(':') {
            Some(("DNS", d)) => format!("DNS:{}", d.to_ascii_lowercase()),
            Some(("IP", ip)) => ip
                .parse::<std::net::IpAddr>()
                .map_or_else(|_| s.clone(), |ip| format!("IP:{ip}")),
            _ => s.clone(),
        })
        .collect();
    required.then_some(sans)
}

pub(super) fn routes(
    issues: &mut Issues,
    files: &[Option<RouteFile>],
    upstreams: &[Arc<Upstream>],
    declared: &HashSet<&str>,
    prefix: &str,
) -> Vec<Route> {
    if files.is_empty() {
        issues.add(
            "routes",
            "no [[routes]] defined; every request would be 404",
            "add at least one [[routes]] entry",
        );
    }
    let mut out: Vec<(usize, Route)> = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in files.iter().enumerate() {
        let Some(r) = r else { continue };
        let key = |k: &str| format!("routes[{i}].{k}");
        let pattern = Pattern::parse(&r.path)
            .map_err(|e| {
                issues.add(
                    key("path"),
                    e,
                    "write a canonical path pattern such as \"/items/{id}\" or \"/public/**\"",
                )
            })
            .ok();
        let methods = r.methods.as_ref().map(|ms| {
            ms.iter()
                .filter_map(|m| {
                    let upper = m.to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) if upper == *m => Some(method),
                        _ => {
                            issues.add(
                                key("methods"),
                                format!("\"{m}\" is not an upper-case HTTP method"),
                                "write methods like \"GET\", \"POST\"",
                            );
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        });
        if methods.as_ref().is_some_and(Vec::is_empty)
            && r.methods.as_ref().is_some_and(Vec::is_empty)
        {
            issues.add(
                key("methods"),
                "is an empty list; the route could never match",
                "list the methods, or remove the key to accept every method",
            );
        }
        let host = r.host.as_ref().map(|h| h.to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty()
                || h.contains(':')
                || h.contains('/')
                || h.parse::<http::uri::Authority>().is_err()
            {
                issues.add(
                    key("host"),
                    format!("\"{h}\" is not a host name"),
                    "write a bare host name without scheme or port, e.g. \"api.example.com\"",
                );
            }
        }
        let upstream = upstreams.iter().find(|u| u.name == r.upstream).cloned();
        if !declared.contains(r.upstream.as_str()) {
            let mut known: Vec<&str> = declared.iter().copied().collect();
            known.sort_unstable();
            issues.add(
                key("upstream"),
                format!("unknown upstream \"{}\"", r.upstream),
                if known.is_empty() {
                    "declare it in an [[upstreams]] entry".to_string()
                } else {
                    format!("use one of: {}", known.join(", "))
                },
            );
        }
        if let (Some(prefix), Some(p)) = (&r.strip_prefix, &pattern) {
            let lit = p.literal_prefix();
            let ok = prefix.starts_with('/')
                && !prefix.ends_with('/')
                && (lit == *prefix || lit.starts_with(&format!("{prefix}/")));
            if !ok {
                issues.add(
                    key("strip_prefix"),
                    format!(
                        "\"{prefix}\" is not a leading part of the path \"{}\"",
                        r.path
                    ),
                    format!(
                        "use whole leading segments of the path, e.g. \"{}\"",
                        if lit.is_empty() { "/api" } else { &lit }
                    ),
                );
            }
        }
        let auth = match r.auth.as_str() {
            "none" => AuthMode::None,
            "required" => AuthMode::Required,
            "optional" => AuthMode::Optional,
            other => {
                issues.add(
                    key("auth"),
                    format!("\"{other}\" is not an auth mode"),
                    "use \"required\" (default), \"optional\" or \"none\"",
                );
                AuthMode::Required
            }
        };
        if auth == AuthMode::None
            && !(r.scopes.is_empty() && r.any_scopes.is_empty() && r.roles.is_empty())
        {
            issues.add(
                key("auth"),
                "a public route (auth = \"none\") cannot require scopes or roles",
                "remove auth = \"none\" to require a token, or remove scopes/any_scopes/roles",
            );
        }
        for (k, list) in [
            ("scopes", &r.scopes),
            ("any_scopes", &r.any_scopes),
            ("roles", &r.roles),
        ] {
            if let Some(bad) = list.iter().find(|s| {
                s.is_empty()
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"' && b != b'\\')
            }) {
                issues.add(
                    key(k),
                    format!("\"{bad}\" is not a usable scope or role name"),
                    "use visible ASCII without spaces, commas, quotes or backslashes",
                );
            }
        }
        let name = r.name.clone().unwrap_or_else(|| r.path.clone());
        if r.name.is_some() && !names.insert(name.clone()) {
            issues.add(
                key("name"),
                format!("\"{name}\" is used by another route"),
                "give every named route a unique name",
            );
        }
        if let (Some(pattern), Some(upstream)) = (pattern, upstream) {
            out.push((
                i,
                Route {
                    scopes: r.scopes.clone(),
                    any_scopes: r.any_scopes.clone(),
                    roles: r.roles.clone(),
                    pass_authorization: r.pass_authorization,
                    upgrades: upgrades(issues, &key("upgrades"), &r.upgrades),
                    client_cert: client_cert(issues, &key, r),
                    rate_limit: r.rate_limit.clone(),
                    request_headers: transform(
                        issues,
                        &key("request_headers"),
                        r.request_headers.as_ref(),
                        prefix,
                    ),
                    response_headers: transform(
                        issues,
                        &key("response_headers"),
                        r.response_headers.as_ref(),
                        prefix,
                    ),
                    request_timeout: r
                        .request_timeout
                        .as_deref()
                        .map(|t| issues.duration(key("request_timeout"), t)),
                    max_body_bytes: r
                        .max_body_bytes
                        .as_deref()
                        .map(|s| issues.size(key("max_body_bytes"), s)),
                    cors: r.cors.as_ref().and_then(|c| cors(issues, &key("cors"), c)),
                    name,
                    pattern,
                    methods,
                    host,
                    upstream,
                    strip_prefix: r.strip_prefix.clone(),
                    auth,
                },
            ));
        }
    }
    // A route with the same path shape, host and an overlapping method as an earlier
    // one can never be chosen.
    for (a, (ia, ra)) in out.iter().enumerate() {
        for (ib, rb) in out.iter().skip(a + 1) {
            let overlap = match (&ra.methods, &rb.methods) {
                (Some(x), Some(y)) => x.iter().find(|m| y.contains(m)).map(|m| m.to_string()),
                (None, Some(y)) => y.first().map(|m| m.to_string()),
                (_, None) => Some("any method".into()),
            };
            if let (true, true, Some(m)) = (
                ra.pattern.same_shape(&rb.pattern),
                ra.host == rb.host,
                overlap,
            ) {
                issues.add(
                    format!("routes[{ib}]"),
                    format!("can never match {m}: routes[{ia}] (\"{}\") has the same path, host and methods and comes first", ra.pattern.as_str()),
                    "remove one of the two routes, or give them disjoint methods or hosts",
                );
            }
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}
