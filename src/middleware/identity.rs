//! Identity headers (DESIGN.md principle 3, "strip, then inject").
//!
//! Client copies of every header under the identity prefix were removed by the header
//! hygiene stage before routing; this stage runs after authorization and adds the
//! verified identity: `<prefix>subject`, `<prefix>scopes` (effective scopes, space
//! separated), `<prefix>roles` (space separated), `<prefix>client-id`,
//! `<prefix>issuer`, `<prefix>client-cert-sha256`, `-subject` and `-san` (the
//! verified TLS client certificate's thumbprint, subject and alternative names, on
//! any route, public ones too), plus any `[identity] claim_headers` mapping (those header names
//! are reserved too: client copies are removed like the prefix's). Values that could
//! not be carried safely in a header are left out.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::auth::principal::{header_safe, Principal};

/// The header names for one identity prefix, built once per configuration.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// The `[identity] claim_headers` names, reserved like the prefix.
    pub claim_header_names: Vec<HeaderName>,
    subject: HeaderName,
    scopes: HeaderName,
    roles: HeaderName,
    client_id: HeaderName,
    issuer: HeaderName,
    /// `<prefix>client-cert-sha256`, `-subject` and `-san`: the verified TLS client
    /// certificate's thumbprint (RFC 8705 `x5t#S256`), subject and subject
    /// alternative names, on every route.
    pub client_cert: HeaderName,
    pub client_cert_subject: HeaderName,
    pub client_cert_san: HeaderName,
}

impl IdentityHeaders {
    pub fn new(prefix: &str, claim_headers: &[(String, HeaderName)]) -> IdentityHeaders {
        let name = |s: &str| {
            HeaderName::from_bytes(format!("{prefix}{s}").as_bytes())
                .unwrap_or_else(|_| HeaderName::from_static("x-auth-invalid"))
        };
        IdentityHeaders {
            claim_header_names: claim_headers.iter().map(|(_, n)| n.clone()).collect(),
            subject: name("subject"),
            scopes: name("scopes"),
            roles: name("roles"),
            client_id: name("client-id"),
            issuer: name("issuer"),
            client_cert: name("client-cert-sha256"),
            client_cert_subject: name("client-cert-subject"),
            client_cert_san: name("client-cert-san"),
        }
    }

    /// Adds the verified identity to a request going upstream.
    pub fn inject(
        &self,
        h: &mut HeaderMap,
        p: &Principal,
        effective_scopes: &[String],
        claim_headers: &[(String, HeaderName)],
    ) {
        let mut set = |name: &HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name.clone(), v);
            }
        };
        set(&self.subject, &p.subject);
        set(&self.scopes, &effective_scopes.join(" "));
        set(&self.roles, &p.roles.join(" "));
        if let Some(c) = &p.client_id {
            set(&self.client_id, c);
        }
        set(&self.issuer, &p.issuer);
        for (claim, name) in claim_headers {
            let value = match p.claims.get(claim) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                // Space-separated: an item holding a space or comma would read as
                // two items to the upstream, so such items are left out.
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty() && !s.contains([' ', ',']))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => continue,
            };
            if header_safe(&value) {
                set(name, &value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_claims_never_split_into_more_items_upstream() {
        let claims = serde_json::json!({"groups": ["eng", "eng admins", "ops,root", "", "qa"]});
        let p = Principal {
            subject: "alice".into(),
            scopes: vec![],
            roles: vec![],
            client_id: None,
            issuer: "https://gw.test".into(),
            expires_at: 0,
            claims: claims.as_object().cloned().unwrap_or_default(),
            expand_roles: false,
        };
        let mapping = vec![(
            "groups".to_string(),
            HeaderName::from_static("x-auth-groups"),
        )];
        let ids = IdentityHeaders::new("x-auth-", &mapping);
        let mut h = HeaderMap::new();
        ids.inject(&mut h, &p, &[], &mapping);
        assert_eq!(h["x-auth-groups"], "eng qa");
        assert_eq!(h["x-auth-subject"], "alice");
    }
}
