//! Stage 5: CORS (the Fetch standard's CORS protocol).
//!
//! Written here rather than taken from tower-http's `CorsLayer`: the policy is chosen
//! per route (a route's `cors` replaces `[cors]`), which is known only after routing
//! inside our pipeline, and one layer holds one policy.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//!   answered here, before authentication: `204` with the grants when the origin, the
//!   method and every requested header are allowed, else `403` `cors_denied` with no
//!   grant. It never reaches the upstream and never needs a token.
//! - Every other response — `401`, `403`, `429` and `5xx` included — carries
//!   `Access-Control-Allow-Origin` (the request's origin echoed, or `*` for an
//!   any-origin policy without credentials), `-Allow-Credentials`, `-Expose-Headers`
//!   when the origin is allowed, and `Vary: Origin` always.
//! - Origins: exact (`https://app.example.com`), wildcard subdomains
//!   (`https://*.example.com`, which does not match the bare domain), `null` only when
//!   listed, `*` for any (refused together with credentials at load time).

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::Body;
use crate::error::GatewayError;

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    Any,
    Null,
    Exact(String),
    /// `scheme://*.suffix[:port]`: `prefix` is `scheme://`, `suffix` is `.example.com`
    /// plus the port part if any.
    Subdomains {
        prefix: String,
        suffix: String,
    },
}

impl OriginRule {
    /// Parses an `allow_origins` entry; the error is a sentence for `check`.
    pub fn parse(s: &str) -> Result<OriginRule, String> {
        if s == "*" {
            return Ok(OriginRule::Any);
        }
        if s == "null" {
            return Ok(OriginRule::Null);
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("\"{s}\" is not an origin (scheme://host[:port])"))?;
        if !(scheme == "http" || scheme == "https") || rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "\"{s}\" is not an origin: http(s)://host[:port], no path or trailing '/'"
            ));
        }
        if s != s.to_ascii_lowercase() {
            return Err(format!(
                "\"{s}\": origins are compared in lower case; write it so"
            ));
        }
        match rest.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => {
                Ok(OriginRule::Subdomains {
                    prefix: format!("{scheme}://"),
                    suffix: format!(".{domain}"),
                })
            }
            Some(_) => Err(format!("\"{s}\": a wildcard needs a domain after '*.'")),
            None if rest.contains('*') => Err(format!(
                "\"{s}\": '*' is only allowed as the first label (https://*.example.com)"
            )),
            None => Ok(OriginRule::Exact(s.to_string())),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginRule::Any => origin != "null",
            OriginRule::Null => origin == "null",
            OriginRule::Exact(o) => o == origin,
            OriginRule::Subdomains { prefix, suffix } => origin
                .strip_prefix(prefix.as_str())
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                }),
        }
    }
}

/// A CORS policy with its header values rendered once.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub origins: Vec<OriginRule>,
    pub methods: Vec<Method>,
    /// Lower-case request header names a preflight may ask for.
    pub allow_headers: Vec<String>,
    pub credentials: bool,
    allow_methods_value: HeaderValue,
    allow_headers_value: Option<HeaderValue>,
    expose_value: Option<HeaderValue>,
    max_age_value: Option<HeaderValue>,
}

impl CorsPolicy {
    pub fn new(
        origins: Vec<OriginRule>,
        methods: Vec<Method>,
        allow_headers: Vec<String>,
        expose_headers: Vec<String>,
        credentials: bool,
        max_age_secs: Option<u64>,
    ) -> Result<CorsPolicy, String> {
        let join = |v: &[String]| v.join(", ");
        let methods_list: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        let value = |s: String| {
            HeaderValue::from_str(&s).map_err(|_| format!("\"{s}\" cannot be a header value"))
        };
        Ok(CorsPolicy {
            allow_methods_value: value(join(&methods_list))?,
            allow_headers_value: if allow_headers.is_empty() {
                None
            } else {
                Some(value(join(&allow_headers))?)
            },
            expose_value: if expose_headers.is_empty() {
                None
            } else {
                Some(value(join(&expose_headers))?)
            },
            max_age_value: max_age_secs.map(HeaderValue::from),
            origins,
            methods,
            allow_headers: allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            credentials,
        })
    }

    /// The `Access-Control-Allow-Origin` value for this origin, if it is allowed.
    fn grant(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let o = origin.to_str().ok()?;
        let rule = self.origins.iter().find(|r| r.matches(o))?;
        if *rule == OriginRule::Any && !self.credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            Some(origin.clone())
        }
    }

    /// Adds the CORS headers of a non-preflight response. The upstream's own
    /// `Access-Control-*` headers go first: the gateway's policy is the only one the
    /// browser sees (an upstream's `Access-Control-Allow-Origin: *` would otherwise
    /// open what the policy closes, or sit beside ours as a second value).
    pub fn decorate(&self, origin: Option<&HeaderValue>, h: &mut HeaderMap) {
        remove_access_control(h);
        h.append(VARY, HeaderValue::from_static("Origin"));
        let Some(allow) = origin.and_then(|o| self.grant(o)) else {
            return;
        };
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(e) = &self.expose_value {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }

    /// Answers a preflight: `204` with the grants, or `403` without any.
    pub fn preflight(&self, req: &HeaderMap) -> Result<Response<Body>, GatewayError> {
        let Some(allow) = req.get(ORIGIN).and_then(|o| self.grant(o)) else {
            return Err(GatewayError::CorsDenied);
        };
        let method_ok = req
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .is_some_and(|m| self.methods.contains(&m));
        let headers_ok = req
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .all(|h| self.allow_headers.contains(&h));
        if !method_ok || !headers_ok {
            return Err(GatewayError::CorsDenied);
        }
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods_value.clone(),
        );
        if let Some(v) = &self.allow_headers_value {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.max_age_value {
            h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        h.append(VARY, HeaderValue::from_static("Origin"));
        h.append(
            VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
        h.append(
            VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        Ok(r)
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight<B>(req: &http::Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(ORIGIN)
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Removes every `Access-Control-*` header (most answers carry none: one pass, no
/// allocation then).
fn remove_access_control(h: &mut HeaderMap) {
    let is_ac = |n: &http::HeaderName| n.as_str().starts_with("access-control-");
    if !h.keys().any(is_ac) {
        return;
    }
    let names: Vec<http::HeaderName> = h.keys().filter(|n| is_ac(n)).cloned().collect();
    for n in names {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy::new(
            origins
                .iter()
                .map(|o| OriginRule::parse(o).expect("origin"))
                .collect(),
            vec![Method::GET, Method::POST],
            vec!["authorization".into(), "content-type".into()],
            vec!["x-request-id".into()],
            credentials,
            Some(600),
        )
        .expect("policy")
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).expect("value")
    }

    #[test]
    fn upstream_access_control_headers_are_replaced() {
        let p = policy(&["https://app.example.com"], false);
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, hv("*"));
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, hv("true"));
        h.insert("access-control-allow-methods", hv("DELETE"));
        h.insert("content-type", hv("text/plain"));
        p.decorate(Some(&hv("https://evil.example")), &mut h);
        assert!(h.keys().all(|n| !n.as_str().starts_with("access-control-")));
        assert_eq!(h["content-type"], "text/plain");
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, hv("*"));
        p.decorate(Some(&hv("https://app.example.com")), &mut h);
        let got: Vec<_> = h.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().collect();
        assert_eq!(got, vec!["https://app.example.com"]);
    }

    #[test]
    fn origin_rules() {
        let p = policy(
            &["https://app.example.com", "https://*.example.org", "null"],
            true,
        );
        for (origin, allowed) in [
            ("https://app.example.com", true),
            ("http://app.example.com", false),
            ("https://app.example.com:8443", false),
            ("https://evil-app.example.com", false),
            ("https://a.example.org", true),
            ("https://a.b.example.org", true),
            ("https://example.org", false),
            ("https://a.example.org.evil.com", false),
            ("https://evilexample.org", false),
            ("null", true),
        ] {
            assert_eq!(p.grant(&hv(origin)).is_some(), allowed, "{origin}");
        }
        // `null` only when listed; `*` never matches it.
        assert!(policy(&["*"], false).grant(&hv("null")).is_none());
        assert_eq!(
            policy(&["*"], false).grant(&hv("https://x.test")),
            Some(hv("*"))
        );
        for bad in [
            "example.com",
            "https://example.com/",
            "https://a.*.com",
            "ftp://x",
            "https://*.",
            "HTTPS://X.COM",
        ] {
            assert!(OriginRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preflights_grant_or_deny() {
        let p = policy(&["https://app.example.com"], true);
        let mut req = HeaderMap::new();
        req.insert(ORIGIN, hv("https://app.example.com"));
        req.insert(ACCESS_CONTROL_REQUEST_METHOD, hv("POST"));
        req.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            hv("Authorization, Content-Type"),
        );
        let r = p.preflight(&req).expect("granted");
        assert_eq!(r.status(), 204);
        assert_eq!(
            r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(r.headers()[ACCESS_CONTROL_MAX_AGE], "600");
        // A method or header outside the policy, or another origin: no grant.
        for (k, v) in [
            (ACCESS_CONTROL_REQUEST_METHOD, "DELETE"),
            (ACCESS_CONTROL_REQUEST_HEADERS, "x-secret"),
            (ORIGIN, "https://evil.test"),
        ] {
            let mut bad = req.clone();
            bad.insert(k, hv(v));
            let r = p.preflight(&bad);
            assert!(matches!(r, Err(GatewayError::CorsDenied)), "{v}");
        }
    }

    #[test]
    fn responses_get_vary_always_and_grants_when_allowed() {
        let p = policy(&["https://app.example.com"], false);
        let mut h = HeaderMap::new();
        p.decorate(Some(&hv("https://evil.test")), &mut h);
        assert_eq!(h[VARY], "Origin");
        assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let mut h = HeaderMap::new();
        p.decorate(Some(&hv("https://app.example.com")), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], "x-request-id");
        assert!(h.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }
}
