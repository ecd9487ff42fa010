//! Per-route header transforms and the optional security response headers.
//!
//! `request_headers` change what the upstream receives (after identity headers are
//! set); `response_headers` what the client receives from the upstream. Both are
//! checked at load time: they can never name a header of the reserved identity prefix,
//! a hop-by-hop header, framing headers, or the `X-Forwarded-*` set Portcullis owns.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Set, append, remove — applied in the order remove, set, append.
#[derive(Debug, Clone, Default)]
pub struct HeaderTransform {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub append: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderTransform {
    pub fn apply(&self, h: &mut HeaderMap) {
        for name in &self.remove {
            h.remove(name);
        }
        for (name, value) in &self.set {
            h.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.append {
            h.append(name.clone(), value.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }
}

/// Headers no transform may touch (besides the identity prefix).
pub const PROTECTED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-request-id",
];

/// Whether a transform may name this header, given the identity prefix (lower-case)
/// and the configured claim header names.
pub fn allowed(name: &str, identity_prefix: &str, claim_headers: &[HeaderName]) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    !n.starts_with(identity_prefix)
        && !PROTECTED.contains(&n.as_str())
        && !claim_headers.iter().any(|c| c.as_str() == n)
}

/// `[server] security_headers = true`: set on every response unless already present.
pub fn security_headers(h: &mut HeaderMap) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_remove_set_append() {
        let t = HeaderTransform {
            set: vec![(
                HeaderName::from_static("x-v"),
                HeaderValue::from_static("2"),
            )],
            append: vec![(
                HeaderName::from_static("x-tag"),
                HeaderValue::from_static("b"),
            )],
            remove: vec![
                HeaderName::from_static("x-debug"),
                HeaderName::from_static("x-v"),
            ],
        };
        let mut h = HeaderMap::new();
        h.insert("x-debug", HeaderValue::from_static("1"));
        h.insert("x-v", HeaderValue::from_static("1"));
        h.insert("x-tag", HeaderValue::from_static("a"));
        t.apply(&mut h);
        assert!(h.get("x-debug").is_none());
        assert_eq!(h["x-v"], "2");
        assert_eq!(h.get_all("x-tag").iter().count(), 2);
    }

    #[test]
    fn reserved_names_are_not_allowed() {
        for bad in [
            "X-Auth-Subject",
            "x_auth_scopes",
            "Connection",
            "content-length",
            "X-Forwarded-For",
            "x-email",
        ] {
            assert!(
                !allowed(bad, "x-auth-", &[HeaderName::from_static("x-email")]),
                "{bad}"
            );
        }
        assert!(allowed("x-api-version", "x-auth-", &[]));
        assert!(allowed("authorization", "x-auth-", &[]));
    }
}
