//! `[[issuers]]` → [`IssuerConfig`](crate::auth::jwks::IssuerConfig)s: external
//! identity providers whose tokens are verified with keys from their JWKS.
//!
//! Each issuer is named once and never as Portcullis' own; HS256 is refused (a JWKS
//! publishes public keys); `aud` is always checked; refresh bounds must be ordered.

use std::collections::HashSet;
use std::time::Duration;

use crate::auth::jwt::{parse_alg, ClaimRules};
use crate::config::file::IssuerFile;

use super::tokens::{claim_mapping, leeway};
use super::Issues;

pub(super) fn issuers(
    issues: &mut Issues,
    files: &[Option<IssuerFile>],
    own: Option<&str>,
) -> Vec<crate::auth::jwks::IssuerConfig> {
    use crate::auth::jwks::{IssuerConfig, JwksSource};
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(f) = f else { continue };
        let key = |k: &str| format!("issuers[{i}].{k}");
        if f.issuer.is_empty() || !seen.insert(f.issuer.clone()) || Some(f.issuer.as_str()) == own {
            issues.add(
                key("issuer"),
                format!(
                    "\"{}\" is empty, repeated, or Portcullis' own issuer",
                    f.issuer
                ),
                "give each external issuer's exact `iss` value once",
            );
        }
        let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        let source = match (&f.jwks_url, f.discovery) {
            (Some(u), false) if url_ok(u) => Some(JwksSource::Url(u.clone())),
            (None, true) if url_ok(&f.issuer) => Some(JwksSource::Discovery),
            _ => {
                issues.add(key("jwks_url"), "needs exactly one of jwks_url (an http(s) URL) and discovery = true (with an http(s) issuer)", "set jwks_url = \"https://idp.example.com/.../jwks\" or discovery = true");
                None
            }
        };
        if f.audiences.is_empty() {
            issues.add(
                key("audiences"),
                "no audience configured; no token could be accepted",
                "list the audiences this gateway accepts, e.g. [\"api\"]",
            );
        }
        let mut algorithms = Vec::new();
        for a in &f.algorithms {
            match parse_alg(a) {
                Some(jsonwebtoken::Algorithm::HS256) | None => issues.add(
                    key("algorithms"),
                    format!("\"{a}\" is not accepted from a JWKS"),
                    "use RS256, ES256 or EdDSA",
                ),
                Some(alg) => algorithms.push(alg),
            }
        }
        let leeway = leeway(issues, &key("leeway"), &f.leeway);
        let max_lifetime = f
            .max_lifetime
            .as_deref()
            .map(|m| issues.duration(key("max_lifetime"), m));
        let mapping = claim_mapping(
            issues,
            &key(""),
            &f.scope_claim,
            &f.roles_claim,
            f.expand_roles,
        );
        let min_refresh = issues.duration(key("min_refresh"), &f.min_refresh);
        let max_refresh = issues.duration(key("max_refresh"), &f.max_refresh);
        let unknown_kid_cooldown =
            issues.duration_or_zero(key("unknown_kid_cooldown"), &f.unknown_kid_cooldown);
        if min_refresh > max_refresh {
            issues.add(
                key("min_refresh"),
                "is longer than max_refresh",
                "make min_refresh ≤ max_refresh",
            );
        }
        if let Some(source) = source {
            out.push(IssuerConfig {
                issuer: f.issuer.clone(),
                source,
                algorithms,
                rules: ClaimRules {
                    issuer: f.issuer.clone(),
                    verify_issuer: true,
                    audiences: f.audiences.clone(),
                    verify_audience: true,
                    leeway,
                    max_lifetime,
                    mapping,
                },
                min_refresh,
                max_refresh: max_refresh.max(Duration::from_secs(1)),
                unknown_kid_cooldown,
            });
        }
    }
    out
}
