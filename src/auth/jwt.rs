//! Verification of Portcullis' own access tokens (JWT, RFC 7519 / RFC 9068), and the
//! rules every token meets, whoever issued it.
//!
//! One pipeline for every issuer (DESIGN.md principle 4): [`jws::Jws::parse`] takes the
//! compact JWS apart and holds the header to its allow-list, the caller picks the key
//! and checks the signature with the key's pinned algorithm, then
//! [`claims::check`] applies the claim rules. `[tokens]` (this module's [`Verifier`])
//! and `[[issuers]]` (`super::jwks`) differ only in where keys come from and which
//! [`ClaimRules`] they hold.
//!
//! Safe defaults:
//! - the key is chosen by `kid` (without one: the only key of the token's algorithm),
//!   and each key is pinned to one algorithm: `alg: none`, and any algorithm other
//!   than the key's, are refused — an RSA public key is never used as an HMAC secret;
//! - `typ` only absent, `JWT` or `at+jwt`; `crit`, `enc` and `zip` headers refused;
//!   `jku`, `x5u` and embedded `jwk` headers never followed;
//! - `exp` is required; `nbf` and `iat` are checked with a small leeway; NumericDates
//!   may carry a fraction; `iss` must be a string equal to the issuer and `aud` (string
//!   or array of strings) must name a configured audience; an optional maximum
//!   lifetime bounds `exp - iat`;
//! - which claims carry scopes and roles is configured, never guessed;
//! - oversized tokens are refused before any decoding.
//!
//! jsonwebtoken is used for key parsing and signature primitives only: its own claim
//! validation reads NumericDates as integers and accepts `iss` arrays, so it is not used.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey};

use super::principal::Principal;

pub mod claims;
pub mod jws;

pub use claims::ClaimRules;
use jws::Jws;

/// Longest token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. Logged as the denial reason; clients only ever see a
/// generic `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token too large")]
    TooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token header")]
    BadHeader,
    #[error("unknown key id")]
    UnknownKey,
    #[error("algorithm not allowed for this key")]
    WrongAlgorithm,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("missing or invalid claim")]
    BadClaims,
    #[error("token lifetime too long")]
    LifetimeTooLong,
    #[error("token revoked")]
    Revoked,
}

/// One verification key, pinned to its algorithm.
pub struct VerifyKey {
    pub kid: String,
    pub alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// The key (for the token service's id_token hints).
    #[cfg(feature = "server")]
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// The algorithms Portcullis accepts for its own tokens.
pub fn parse_alg(s: &str) -> Option<Algorithm> {
    match s {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// Builds a decoding key from its material: the secret for HS256, a PEM public key
/// otherwise. The error is a sentence for the configuration report.
pub fn decoding_key(alg: Algorithm, material: &[u8]) -> Result<DecodingKey, String> {
    match alg {
        Algorithm::HS256 => {
            if material.len() < 32 {
                return Err(format!(
                    "the HS256 secret is {} bytes; use at least 32 random bytes",
                    material.len()
                ));
            }
            Ok(DecodingKey::from_secret(material))
        }
        Algorithm::RS256 => DecodingKey::from_rsa_pem(material)
            .map_err(|e| format!("not an RSA public key in PEM: {e}")),
        Algorithm::ES256 => DecodingKey::from_ec_pem(material)
            .map_err(|e| format!("not an EC P-256 public key in PEM: {e}")),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(material)
            .map_err(|e| format!("not an Ed25519 public key in PEM: {e}")),
        other => Err(format!("algorithm {other:?} is not supported")),
    }
}

/// Verifies tokens against the configured keys and claims rules.
#[derive(Debug)]
pub struct Verifier {
    /// How long a verified token may be served from the cache (0 = no cache).
    pub cache_max_age: Duration,
    /// Cached tokens per worker.
    pub cache_size: usize,
    /// The configured issuer (`[tokens] issuer`).
    pub issuer: String,
    rules: ClaimRules,
    keys: Vec<VerifyKey>,
    /// SHA-256 over every key's kid, algorithm and material, set by the configuration
    /// ([`Verifier::set_key_material`]); until then unique to this verifier, so two
    /// verifiers built without it never count as the same.
    key_digest: [u8; 32],
}

/// Seconds since the epoch.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    pub fn new(rules: ClaimRules, keys: Vec<(String, Algorithm, DecodingKey)>) -> Verifier {
        let keys = keys
            .into_iter()
            .map(|(kid, alg, key)| VerifyKey { kid, alg, key })
            .collect();
        static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unique = ring::digest::digest(
            &ring::digest::SHA256,
            format!("unset:{}:{n}", std::process::id()).as_bytes(),
        );
        let mut key_digest = [0u8; 32];
        key_digest.copy_from_slice(unique.as_ref());
        Verifier {
            cache_max_age: Duration::from_secs(30),
            cache_size: 10_000,
            issuer: rules.issuer.clone(),
            rules,
            keys,
            key_digest,
        }
    }

    /// Records what the keys are made of (kid, algorithm and key material of each, in
    /// order), so that [`Verifier::verifies_like`] can tell a reload that changed a
    /// key's material behind the same kid.
    pub fn set_key_material(&mut self, material: &[u8]) {
        let d = ring::digest::digest(&ring::digest::SHA256, material);
        self.key_digest.copy_from_slice(d.as_ref());
    }

    /// Whether `other` accepts exactly the tokens this one accepts, with the same
    /// claims, and caches them alike (what decides whether verified-token caches may
    /// outlive a reload).
    pub fn verifies_like(&self, other: &Verifier) -> bool {
        self.key_digest == other.key_digest
            && self.rules == other.rules
            && self.cache_max_age == other.cache_max_age
            && self.cache_size == other.cache_size
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.kid == b.kid && a.alg == b.alg)
    }

    /// The configured keys.
    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    /// The claim rules tokens are held to.
    pub fn rules(&self) -> &ClaimRules {
        &self.rules
    }

    /// The key named by `kid`; without a `kid`, the only key of the token's algorithm.
    fn key_for(&self, kid: Option<&str>, alg: Option<Algorithm>) -> Result<&VerifyKey, TokenError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid == kid)
                .ok_or(TokenError::UnknownKey),
            None => {
                let mut same_alg = self.keys.iter().filter(|k| Some(k.alg) == alg);
                match (same_alg.next(), same_alg.next()) {
                    (Some(k), None) => Ok(k),
                    _ => Err(TokenError::UnknownKey),
                }
            }
        }
    }

    /// Verifies a compact JWS and returns the caller it identifies.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.verify_at(token, claims::now_f64())
    }

    /// [`Verifier::verify`] at a given time (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: f64) -> Result<Principal, TokenError> {
        let jws = Jws::parse(token)?;
        let key = self.key_for(jws.header.kid.as_deref(), jws.header.alg)?;
        if jws.header.alg != Some(key.alg) {
            return Err(TokenError::WrongAlgorithm);
        }
        jws.verify_signature(&key.key, key.alg)?;
        claims::check(&self.rules, jws.claims()?, jws.header.at_jwt, now)
    }
}

#[cfg(test)]
mod tests;
