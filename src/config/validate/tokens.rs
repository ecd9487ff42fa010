//! `[tokens]` → the [`Verifier`] for Portcullis' own tokens, plus the [`OwnKeys`] it
//! signs with; and the clock-skew and claim-mapping rules `[[issuers]]` share.
//!
//! Key material itself is read in [`super::keys`]; this file owns the rules about
//! issuer, audiences, lifetimes, caching and which claims carry scopes and roles.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::auth::jwt::{decoding_key, parse_alg, ClaimRules, Verifier};
use crate::auth::principal::{ClaimMapping, ClaimPath};
use crate::config::file::TokensFile;
use crate::token::keys::SigningKey;

use super::keys::{key_material, private_key};
use super::Issues;

/// Keys Portcullis holds the private half of (or the HMAC secret).
#[derive(Debug, Default)]
pub(super) struct OwnKeys {
    pub signing: Vec<SigningKey>,
    /// Files to create at start (`create_if_missing`).
    pub created: Vec<(std::path::PathBuf, String)>,
}

pub(super) fn tokens(
    issues: &mut Issues,
    t: &TokensFile,
    base_dir: &Path,
) -> Option<(Verifier, OwnKeys)> {
    let t = t.clone();
    let mut own = OwnKeys::default();
    if t.issuer.trim().is_empty() {
        issues.add(
            "tokens.issuer",
            "is empty",
            "set it to this gateway's public base URL, e.g. \"https://auth.example.com\"",
        );
    }
    if t.verify_audience && t.audiences.is_empty() {
        issues.add(
            "tokens.audiences",
            "no audience configured; no token could be accepted",
            "list the audiences tokens are issued for, e.g. audiences = [\"api\"]",
        );
    }
    let leeway = leeway(issues, "tokens.leeway", &t.leeway);
    let max_lifetime = t
        .max_lifetime
        .as_deref()
        .map(|m| issues.duration("tokens.max_lifetime".into(), m));
    let mapping = claim_mapping(
        issues,
        "tokens.",
        &t.scope_claim,
        &t.roles_claim,
        t.expand_roles,
    );
    if t.signing_key.is_some() && !mapping.scope_claims.iter().any(|c| c.0 == "scope") {
        issues.add(
            "tokens.scope_claim",
            "does not list \"scope\", where the token service writes the scopes it grants",
            "include \"scope\", e.g. scope_claim = \"scope\"",
        );
    }
    if t.signing_key.is_some() && mapping.roles_claim.0 != "roles" {
        issues.add(
            "tokens.roles_claim",
            "is not \"roles\", where the token service writes the roles it grants",
            "set roles_claim = \"roles\" (or leave it out)",
        );
    }
    if t.keys.is_empty() {
        issues.add(
            "tokens.keys",
            "no key configured; no token could be accepted",
            "add a [[tokens.keys]] entry (kid, alg and the key material)",
        );
    }
    let mut kids = HashSet::new();
    let mut keys = Vec::new();
    // kid, algorithm and material of every key: what tells a reload that keys changed.
    let mut material_seen = Vec::new();
    for (i, k) in t.keys.iter().enumerate() {
        let key = |f: &str| format!("tokens.keys[{i}].{f}");
        if k.kid.is_empty() || !kids.insert(k.kid.clone()) {
            issues.add(
                key("kid"),
                format!("\"{}\" is empty or used twice", k.kid),
                "give every key a unique kid",
            );
        }
        let Some(alg) = parse_alg(&k.alg) else {
            issues.add(
                key("alg"),
                format!("\"{}\" is not supported", k.alg),
                "use HS256, RS256, ES256 or EdDSA",
            );
            continue;
        };
        if k.private_key.is_some() || k.create_if_missing {
            if let Some((sk, dk)) = private_key(issues, &key(""), k, alg, base_dir, &mut own) {
                let public = sk.jwk.as_ref().map(ToString::to_string).unwrap_or_default();
                push_material(&mut material_seen, &k.kid, &k.alg, public.as_bytes());
                keys.push((k.kid.clone(), alg, dk));
                own.signing.push(sk);
            }
            continue;
        }
        if let Some(material) = key_material(issues, &key(""), k, alg, base_dir) {
            push_material(&mut material_seen, &k.kid, &k.alg, &material);
            if alg == jsonwebtoken::Algorithm::HS256 {
                own.signing.push(SigningKey::from_secret(&k.kid, &material));
            }
            match decoding_key(alg, &material) {
                Ok(dk) => keys.push((k.kid.clone(), alg, dk)),
                Err(e) => issues.add(
                    key(if alg == jsonwebtoken::Algorithm::HS256 {
                        "secret"
                    } else {
                        "public_key"
                    }),
                    e,
                    "point it at the right key material",
                ),
            }
        }
    }
    let cache_max_age = issues.duration_or_zero("tokens.cache_max_age".into(), &t.cache_max_age);
    if cache_max_age > Duration::from_secs(300) {
        issues.add(
            "tokens.cache_max_age",
            "is longer than 5 minutes",
            "revocation takes effect within this time; keep it short, e.g. \"30s\"",
        );
    }
    let rules = ClaimRules {
        issuer: t.issuer,
        verify_issuer: t.verify_issuer,
        audiences: t.audiences,
        verify_audience: t.verify_audience,
        leeway,
        max_lifetime,
        mapping,
    };
    let mut v = Verifier::new(rules, keys);
    v.set_key_material(&material_seen);
    v.cache_max_age = cache_max_age;
    v.cache_size = t.cache_size;
    Some((v, own))
}

/// A clock-skew allowance: at most 5 minutes, for `[tokens]` and every issuer alike.
pub(super) fn leeway(issues: &mut Issues, key: &str, value: &str) -> Duration {
    let leeway = issues.duration_or_zero(key.into(), value);
    if leeway > Duration::from_secs(300) {
        issues.add(
            key,
            "is longer than 5 minutes",
            "keep the clock-skew allowance small, e.g. \"60s\"",
        );
    }
    leeway
}

/// `scope_claim` / `roles_claim` / `expand_roles`, the same for `[tokens]` and
/// `[[issuers]]`. `prefix` ends with a dot.
pub(super) fn claim_mapping(
    issues: &mut Issues,
    prefix: &str,
    scope_claim: &crate::config::file::OneOrMany,
    roles_claim: &str,
    expand_roles: bool,
) -> ClaimMapping {
    let scope_claims = scope_claim.to_vec();
    if scope_claims.is_empty() || scope_claims.iter().any(|c| c.trim().is_empty()) {
        issues.add(
            format!("{prefix}scope_claim"),
            "is empty or names an empty claim",
            "name the claim(s) that carry scopes, e.g. \"scope\" or [\"scope\", \"scp\"]",
        );
    }
    if roles_claim.trim().is_empty() {
        issues.add(
            format!("{prefix}roles_claim"),
            "is empty",
            "name the claim that carries roles, e.g. \"roles\"",
        );
    }
    ClaimMapping {
        scope_claims: scope_claims.into_iter().map(ClaimPath).collect(),
        roles_claim: ClaimPath(roles_claim.to_string()),
        expand_roles,
    }
}

/// Appends one key's kid, algorithm and material, length-prefixed (no two lists of
/// keys give the same bytes).
fn push_material(out: &mut Vec<u8>, kid: &str, alg: &str, material: &[u8]) {
    for part in [kid.as_bytes(), alg.as_bytes(), material] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
}
