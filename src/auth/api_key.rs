//! API keys (the OpenAPI `apiKey` scheme): long random secrets sent in a configured
//! header, for machine clients that cannot run an OAuth flow.
//!
//! Only SHA-256 digests of the keys are configured (`portcullis api-key hash` prints
//! one). A fast digest is enough here, unlike for passwords: keys are generated with
//! 256 bits of randomness, so there is nothing to brute-force. A key found in the table
//! becomes a [`Principal`] that goes through the same route policy and identity headers
//! as a token's; the key header itself never reaches the upstream.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName};
use ring::digest::{digest, SHA256};

use super::principal::Principal;

/// The SHA-256 digest of a key, lower-case hex.
pub fn hash(key: &str) -> String {
    digest(&SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random key: 32 bytes from the system's CSPRNG, URL-safe base64.
pub fn generate() -> Result<String, ring::error::Unspecified> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(format!(
        "pk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What a configured key stands for.
#[derive(Debug, Clone)]
pub struct ApiKeyEntry {
    /// The `sub` the upstream is told.
    pub subject: String,
    /// Scopes the key grants.
    pub scopes: Vec<String>,
    /// Roles the key grants.
    pub roles: Vec<String>,
}

/// The configured keys, by digest.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    /// The header the key is read from (`[identity] api_key_header`).
    pub header: HeaderName,
    by_hash: HashMap<String, ApiKeyEntry>,
}

/// What the API key header holds.
#[derive(Debug)]
pub(crate) enum Presented {
    Missing,
    Known(Principal),
    Unknown,
}

impl ApiKeys {
    pub(crate) fn new(header: HeaderName, keys: Vec<(String, ApiKeyEntry)>) -> ApiKeys {
        ApiKeys {
            header,
            by_hash: keys.into_iter().collect(),
        }
    }

    /// Looks up the key the request presents (exactly one header value).
    pub(crate) fn check(&self, headers: &HeaderMap) -> Presented {
        let mut values = headers.get_all(&self.header).iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return if headers.contains_key(&self.header) {
                Presented::Unknown
            } else {
                Presented::Missing
            };
        };
        let Ok(key) = v.to_str() else {
            return Presented::Unknown;
        };
        match self.by_hash.get(&hash(key.trim())) {
            Some(e) => Presented::Known(Principal {
                subject: e.subject.clone(),
                scopes: e.scopes.clone(),
                roles: e.roles.clone(),
                client_id: None,
                issuer: "api-key".into(),
                expires_at: 0,
                claims: Default::default(),
                expand_roles: true,
            }),
            None => Presented::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keys_are_matched_by_digest() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let key = generate().expect("random");
        assert!(key.starts_with("pk_") && key.len() > 40);
        assert_ne!(key, generate().expect("random"));
        let keys = ApiKeys::new(
            HeaderName::from_static("x-api-key"),
            vec![(
                hash(&key),
                ApiKeyEntry {
                    subject: "svc-reports".into(),
                    scopes: vec!["items:read".into()],
                    roles: vec![],
                },
            )],
        );
        let mut h = HeaderMap::new();
        assert!(matches!(keys.check(&h), Presented::Missing));
        h.insert("x-api-key", HeaderValue::from_str(&key).expect("hv"));
        match keys.check(&h) {
            Presented::Known(p) => assert_eq!(p.subject, "svc-reports"),
            other => panic!("{other:?}"),
        }
        h.insert("x-api-key", HeaderValue::from_static("pk_wrong"));
        assert!(matches!(keys.check(&h), Presented::Unknown));
        h.append("x-api-key", HeaderValue::from_str(&key).expect("hv"));
        assert!(
            matches!(keys.check(&h), Presented::Unknown),
            "two values are refused"
        );
    }
}
