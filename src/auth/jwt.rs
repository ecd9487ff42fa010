//! Verification of Portcullis' own access tokens (JWT, RFC 7519 / RFC 9068).
//!
//! Safe defaults (DESIGN.md principle 4):
//! - the key is chosen by `kid` (without one: the only key of the token's algorithm),
//!   and each key is pinned to one
//!   algorithm: `alg: none`, and any algorithm other than the key's, are refused — an
//!   RSA public key is never used as an HMAC secret;
//! - `exp` is required; `nbf` and `iat` are checked with a small leeway; `iss` must be
//!   the configured issuer and `aud` (string or array) must name a configured audience;
//!   an optional maximum lifetime bounds `exp - iat`;
//! - `jku`, `x5u` and embedded `jwk` headers are never followed; a `crit` header is
//!   refused (no extension is understood);
//! - oversized tokens are refused before any decoding.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::principal::Principal;

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
    validation: Validation,
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

/// Which registered claims are checked beyond `exp`/`nbf`/`iat` (both by default).
#[derive(Debug, Clone, Copy)]
pub struct ClaimChecks {
    pub issuer: bool,
    pub audience: bool,
}

impl Default for ClaimChecks {
    fn default() -> Self {
        ClaimChecks {
            issuer: true,
            audience: true,
        }
    }
}

/// Reads the JOSE header: the algorithm (`None` if not one Portcullis accepts) and the
/// `kid`. A `crit` header is refused: no extension is understood.
pub fn decode_header_checked(
    token: &str,
) -> Result<(Option<Algorithm>, Option<String>), TokenError> {
    let header_b64 = token.split('.').next().ok_or(TokenError::Malformed)?;
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    if header.contains_key("crit") {
        return Err(TokenError::BadHeader);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    Ok((parse_alg(alg), kid))
}

/// Whether the (already verified) token's header says `typ: at+jwt` (RFC 9068).
pub fn is_at_jwt(token: &str) -> bool {
    let Some(Ok(header)) = token.split('.').next().map(|h| URL_SAFE_NO_PAD.decode(h)) else {
        return false;
    };
    serde_json::from_slice::<Map<String, Value>>(&header)
        .ok()
        .and_then(|h| {
            h.get("typ").and_then(Value::as_str).map(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            })
        })
        .unwrap_or(false)
}

/// jsonwebtoken's error → the refusal reason.
pub fn map_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => TokenError::BadSignature,
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::WrongIssuer,
        K::InvalidAudience => TokenError::WrongAudience,
        K::InvalidAlgorithm => TokenError::WrongAlgorithm,
        K::MissingRequiredClaim(_) | K::Json(_) => TokenError::BadClaims,
        _ => TokenError::Malformed,
    }
}

/// Verifies tokens against the configured keys and claims rules.
#[derive(Debug)]
pub struct Verifier {
    /// How long a verified token may be served from the cache (0 = no cache).
    pub cache_max_age: Duration,
    /// Cached tokens per worker.
    pub cache_size: usize,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub max_lifetime: Option<Duration>,
    keys: Vec<VerifyKey>,
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    pub fn new(
        issuer: String,
        audiences: Vec<String>,
        leeway: Duration,
        max_lifetime: Option<Duration>,
        checks: ClaimChecks,
        keys: Vec<(String, Algorithm, DecodingKey)>,
    ) -> Verifier {
        let keys = keys
            .into_iter()
            .map(|(kid, alg, key)| {
                let mut v = Validation::new(alg);
                v.leeway = leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                let mut required = vec!["exp"];
                if checks.issuer {
                    required.push("iss");
                    v.set_issuer(&[issuer.as_str()]);
                }
                if checks.audience {
                    required.push("aud");
                    v.set_audience(&audiences);
                } else {
                    v.validate_aud = false;
                }
                v.set_required_spec_claims(&required);
                VerifyKey {
                    kid,
                    alg,
                    key,
                    validation: v,
                }
            })
            .collect();
        Verifier {
            cache_max_age: Duration::from_secs(30),
            cache_size: 10_000,
            issuer,
            audiences,
            leeway,
            max_lifetime,
            keys,
        }
    }

    /// The configured keys.
    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
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
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let (alg, kid) = decode_header_checked(token)?;
        let key = self.key_for(kid.as_deref(), alg)?;
        if alg != Some(key.alg) {
            return Err(TokenError::WrongAlgorithm);
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(map_error)?;
        let claims = data.claims;
        let now = now_secs();
        let iat = match claims.get("iat") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or(TokenError::BadClaims)?),
        };
        if iat.is_some_and(|iat| iat > now + self.leeway.as_secs()) {
            return Err(TokenError::NotYetValid);
        }
        if let Some(max) = self.max_lifetime {
            let exp = claims
                .get("exp")
                .and_then(Value::as_u64)
                .ok_or(TokenError::BadClaims)?;
            let iat = iat.ok_or(TokenError::BadClaims)?;
            if exp.saturating_sub(iat) > max.as_secs() {
                return Err(TokenError::LifetimeTooLong);
            }
        }
        let mut p = Principal::from_claims(claims, &self.issuer)?;
        p.expand_roles = !is_at_jwt(token);
        Ok(p)
    }
}

#[cfg(test)]
mod tests;
