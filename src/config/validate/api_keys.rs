//! `[[api_keys]]` (and `[identity] api_key_header`) → [`ApiKeys`](crate::auth::api_key::ApiKeys):
//! SHA-256 digests of the keys, each with its subject, scopes and roles.
//!
//! Only digests are configured, never the keys, and a key configured twice is refused
//! (two clients sharing one key could not be told apart).

use std::collections::HashSet;

use crate::config::file::ApiKeyFile;

use super::Issues;

pub(super) fn api_keys(
    issues: &mut Issues,
    files: &[Option<ApiKeyFile>],
    header: &str,
) -> Option<crate::auth::api_key::ApiKeys> {
    use crate::auth::api_key::{ApiKeyEntry, ApiKeys};
    let name = match http::HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes()) {
        // `Authorization` in any case: that header is read as a bearer credential.
        Ok(n) if !header.contains('_') && n != http::header::AUTHORIZATION => n,
        _ => {
            issues.add(
                "identity.api_key_header",
                format!("\"{header}\" is not a usable header name"),
                "use e.g. \"x-api-key\"",
            );
            return None;
        }
    };
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for (i, k) in files.iter().enumerate() {
        let Some(k) = k else { continue };
        let key = |f: &str| format!("api_keys[{i}].{f}");
        let digest = k.sha256.to_ascii_lowercase();
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            issues.add(
                key("sha256"),
                "is not a SHA-256 digest (64 hex digits)",
                "run `portcullis api-key hash` on the key, or `portcullis api-key generate`",
            );
        } else if !seen.insert(digest.clone()) {
            issues.add(
                key("sha256"),
                "the same key is configured twice",
                "give every client its own key",
            );
        }
        if k.subject.is_empty() || !k.subject.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            issues.add(
                key("subject"),
                format!("\"{}\" is not a usable subject", k.subject),
                "use visible ASCII without spaces, e.g. \"svc-reports\"",
            );
        }
        keys.push((
            digest,
            ApiKeyEntry {
                subject: k.subject.clone(),
                scopes: k.scopes.clone(),
                roles: k.roles.clone(),
            },
        ));
    }
    (!keys.is_empty()).then(|| ApiKeys::new(name, keys))
}
