//! The CORS origin matcher (`src/middleware/cors.rs`), through the policy's public
//! answers: the `Access-Control-Allow-Origin` of an ordinary answer and of a preflight.
//!
//! Input modes (first byte):
//! - `R` + text: `allow_origins` entries one per line, a line `=`, then the `Origin`
//!   value; a first line `credentials` turns credentials on.
//! - `P` + text: the same, then after the origin the
//!   `Access-Control-Request-Method` line and the `Access-Control-Request-Headers` line.
//! - anything else: a look-alike attack (structured): an allowed domain, a wildcard
//!   (`https://*.D`) or exact (`https://D`) rule, and origins built to resemble it.
//!
//! Properties:
//! - `grant-matches-spec`: an origin is granted exactly when an independent reading of
//!   the documented rules says so: exact origins byte for byte; `scheme://*.D[:port]`
//!   for origins `scheme://L.D[:port]` with `L` non-empty and made of `A-Z a-z 0-9 - .`
//!   (not the bare domain, same scheme, same port); `null` only when listed; `*` any
//!   origin but `null`.
//! - `grant-value`: the grant echoes the origin, or is `*` for an any-origin policy
//!   without credentials.
//! - `lookalike-refused`: `D.evil.net`, `evilD`, another scheme or port, userinfo,
//!   paths, queries, fragments, backslashes and whitespace around `D` never match.
//! - `genuine-accepted`: a real subdomain (wildcard) or the exact origin is granted.
//! - `preflight`: `204` only for a granted origin, an allowed method and allowed
//!   headers, and then with the grant; a `403` carries no grant.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{cors_grant, cors_policy, cors_preflight};
use portcullis_fuzz::check;

/// The documented meaning of one `allow_origins` entry (already accepted by `check`).
fn spec_matches(rule: &str, origin: &str) -> bool {
    match rule {
        "*" => origin != "null",
        "null" => origin == "null",
        _ => {
            let Some((scheme, rest)) = rule.split_once("://") else {
                return false;
            };
            let Some(domain_port) = rest.strip_prefix("*.") else {
                return origin == rule;
            };
            let Some(o_rest) = origin
                .strip_prefix(scheme)
                .and_then(|o| o.strip_prefix("://"))
            else {
                return false;
            };
            // `domain_port` is `D` or `D:port`; the origin's host must end in `.D` and
            // be followed by exactly the same port part.
            let Some(label) = o_rest.strip_suffix(domain_port) else {
                return false;
            };
            let Some(label) = label.strip_suffix('.') else {
                return false;
            };
            !label.is_empty()
                && label
                    .bytes()
                    // Host names are case-insensitive: `A.example.com` is under
                    // `example.com` too.
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    }
}

struct Policy<'a> {
    rules: Vec<&'a str>,
    credentials: bool,
}

fn parse_text(text: &str) -> Option<(Policy<'_>, Vec<&str>)> {
    let mut lines = text.split('\n');
    let mut rules = Vec::new();
    let mut credentials = false;
    for line in lines.by_ref() {
        match line {
            "=" => break,
            "credentials" if rules.is_empty() && !credentials => credentials = true,
            l => rules.push(l),
        }
    }
    Some((Policy { rules, credentials }, lines.collect()))
}

/// Checks one origin against a policy; returns whether it was granted (`None` when the
/// policy is refused at load time).
fn grant(p: &Policy<'_>, origin: &[u8]) -> Option<bool> {
    let policy = cors_policy(&p.rules, p.credentials).ok()?;
    let granted = cors_grant(&policy, origin);
    let ctx = || {
        format!(
            "rules {:?} (credentials {}), origin {:?} → {:?}",
            p.rules,
            p.credentials,
            String::from_utf8_lossy(origin),
            granted.as_deref().map(String::from_utf8_lossy)
        )
    };
    // Only a visible-ASCII header value is compared (`HeaderValue::to_str`).
    let spec = std::str::from_utf8(origin)
        .ok()
        .filter(|o| o.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t'))
        .is_some_and(|o| p.rules.iter().any(|r| spec_matches(r, o)));
    check("grant-matches-spec", granted.is_some() == spec, ctx);
    if let Some(value) = &granted {
        let any_without_credentials = p.rules.contains(&"*") && !p.credentials;
        check(
            "grant-value",
            value == origin || (any_without_credentials && value == b"*"),
            ctx,
        );
    }
    Some(granted.is_some())
}

fn preflight(p: &Policy<'_>, rest: &[&str]) {
    let Ok(policy) = cors_policy(&p.rules, p.credentials) else {
        return;
    };
    let mut h = HeaderMap::new();
    let mut add = |name: http::HeaderName, v: Option<&&str>| {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    };
    add(http::header::ORIGIN, rest.first());
    add(http::header::ACCESS_CONTROL_REQUEST_METHOD, rest.get(1));
    add(http::header::ACCESS_CONTROL_REQUEST_HEADERS, rest.get(2));
    let (status, allow) = cors_preflight(&policy, &h);
    let origin = h.get(http::header::ORIGIN);
    let granted = origin.and_then(|o| cors_grant(&policy, o.as_bytes()));
    let method_ok = h
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_some_and(|m| m == "GET" || m == "POST");
    let headers_ok = h
        .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok().map(str::to_string))
        .is_none_or(|v| {
            v.split(',')
                .map(|x| x.trim().to_ascii_lowercase())
                .all(|x| x.is_empty() || x == "authorization" || x == "content-type")
        });
    let ctx = || format!("{:?} {rest:?} → {status} {allow:?}", p.rules);
    match status {
        204 => check(
            "preflight",
            granted.is_some() && method_ok && headers_ok && allow == granted,
            ctx,
        ),
        403 => check("preflight", allow.is_none(), ctx),
        _ => check("preflight", false, ctx),
    }
}

#[derive(Debug, Arbitrary)]
struct LookAlike {
    labels: Vec<String>,
    sub: String,
    evil: String,
    port: Option<u16>,
    wildcard: bool,
    http: bool,
    credentials: bool,
}

/// `s` reduced to one DNS label (`a-z 0-9 -`, 1 to 20 characters).
fn label(s: &str, fallback: &str) -> String {
    let l: String = s
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(20)
        .collect();
    if l.is_empty() {
        fallback.to_string()
    } else {
        l
    }
}

fn lookalikes(l: &LookAlike) {
    let mut labels: Vec<String> = l
        .labels
        .iter()
        .take(3)
        .map(|s| label(s, "example"))
        .collect();
    if labels.is_empty() {
        labels = vec!["example".into()];
    }
    labels.push("com".into());
    let domain = labels.join(".");
    let scheme = if l.http { "http" } else { "https" };
    let other_scheme = if l.http { "https" } else { "http" };
    let port = l.port.map(|p| format!(":{p}")).unwrap_or_default();
    let other_port = match l.port {
        Some(p) => format!(":{}", p.wrapping_add(1)),
        None => ":8443".into(),
    };
    let sub = label(&l.sub, "app");
    let evil = label(&l.evil, "evil");
    let rule = if l.wildcard {
        format!("{scheme}://*.{domain}{port}")
    } else {
        format!("{scheme}://{domain}{port}")
    };
    let policy = Policy {
        rules: vec![rule.as_str()],
        credentials: l.credentials,
    };
    let host = if l.wildcard {
        format!("{sub}.{domain}")
    } else {
        domain.clone()
    };
    let genuine = format!("{scheme}://{host}{port}");
    check(
        "genuine-accepted",
        grant(&policy, genuine.as_bytes()) == Some(true),
        || format!("{rule} refused {genuine}"),
    );
    let bad = [
        format!("{scheme}://{host}.{evil}.net{port}"),
        format!("{scheme}://{host}{port}.{evil}.net"),
        // Another registrable domain that ends like the allowed one.
        format!("{scheme}://{evil}{domain}{port}"),
        format!("{scheme}://{sub}.{evil}-{domain}{port}"),
        format!("{other_scheme}://{host}{port}"),
        format!("{scheme}://{host}{other_port}"),
        format!("{scheme}://{host}{port}@{evil}.net"),
        format!("{scheme}://{evil}.net@{host}{port}"),
        format!("{scheme}://{evil}.net/.{host}{port}"),
        format!("{scheme}://{evil}.net?.{host}{port}"),
        format!("{scheme}://{evil}.net#.{host}{port}"),
        format!("{scheme}://{evil}.net\\.{host}{port}"),
        format!("{scheme}://{evil}.net .{host}{port}"),
        format!("{scheme}://{evil}.net%2e{host}{port}"),
        format!("{scheme}://{evil}.net:.{host}{port}"),
        format!("{scheme}://{host}{port}/"),
        format!("{scheme}:/{host}{port}"),
        format!("{scheme}://{host}{port} "),
        format!(" {scheme}://{host}{port}"),
        // The bare domain does not match its wildcard.
        if l.wildcard {
            format!("{scheme}://{domain}{port}")
        } else {
            format!("{scheme}://{sub}.{domain}{port}")
        },
        "null".into(),
    ];
    let portless = format!("{scheme}://{host}");
    let bad = bad.iter().chain(l.port.is_some().then_some(&portless));
    for origin in bad {
        check(
            "lookalike-refused",
            grant(&policy, origin.as_bytes()) != Some(true),
            || format!("{rule} granted {origin:?}"),
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'R', rest)) => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Some((policy, origin)) = parse_text(text) {
                grant(&policy, origin.join("\n").as_bytes());
            }
        }
        Some((b'P', rest)) => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Some((policy, rest)) = parse_text(text) {
                preflight(&policy, &rest);
                if let Some(o) = rest.first() {
                    grant(&policy, o.as_bytes());
                }
            }
        }
        _ => {
            if let Ok(l) = LookAlike::arbitrary(&mut Unstructured::new(data)) {
                lookalikes(&l);
            }
        }
    }
});
