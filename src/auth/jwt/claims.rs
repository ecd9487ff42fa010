//! The claims check: one function, [`check`], for Portcullis' own tokens and every
//! external issuer, so a rule can never hold for one and be forgotten for the other.
//!
//! It reads the decoded JSON itself (jsonwebtoken only verifies signatures), because
//! the registered claims' types are part of the rules (RFC 7519 §4.1):
//! - `exp` (required), `nbf`, `iat` are NumericDates: JSON numbers, fractions allowed
//!   (RFC 7519 §2), never negative, never past year 9999; a string, a boolean or a
//!   huge number refuses the token;
//! - `exp` must be after now − leeway, `nbf` and `iat` before now + leeway; with a
//!   maximum lifetime, `iat` is required and `exp − iat` may not exceed it;
//! - `iss` is a string (an array such as `["https://evil", "<ours>"]` is refused),
//!   equal to the issuer; `sub` a non-empty string; `aud` a string or an array of
//!   strings naming one of the audiences; `jti` and `client_id` strings.
//!
//! Each type is checked whenever the claim is present, also where its value check is
//! turned off (`verify_issuer = false`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::TokenError;
use crate::auth::principal::{ClaimMapping, Principal};

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// What a verified token's claims must satisfy, for one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// The issuer's name: `iss` must equal it when `verify_issuer`; the principal's
    /// `issuer` either way.
    pub issuer: String,
    pub verify_issuer: bool,
    /// `aud` must name one of these when `verify_audience`.
    pub audiences: Vec<String>,
    pub verify_audience: bool,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Bound on `exp − iat`; set, `iat` is required.
    pub max_lifetime: Option<Duration>,
    /// Where scopes and roles are.
    pub mapping: ClaimMapping,
}

impl ClaimRules {
    /// Rules checking issuer and audience, with the default mapping and no lifetime
    /// bound.
    pub fn new(issuer: String, audiences: Vec<String>, leeway: Duration) -> ClaimRules {
        ClaimRules {
            issuer,
            verify_issuer: true,
            audiences,
            verify_audience: true,
            leeway,
            max_lifetime: None,
            mapping: ClaimMapping::default(),
        }
    }
}

/// Now, in seconds since the epoch, with its fraction.
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A NumericDate claim: absent, or a finite number in `[0, year 9999]`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(d) if d.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&d) => Ok(Some(d)),
            _ => Err(TokenError::BadClaims),
        },
        Some(_) => Err(TokenError::BadClaims),
    }
}

/// A claim that must be a string when present.
fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::BadClaims),
    }
}

/// `aud`: absent, a string, or an array of strings.
fn audiences(claims: &Map<String, Value>) -> Result<Option<Vec<&str>>, TokenError> {
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().ok_or(TokenError::BadClaims))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(TokenError::BadClaims),
    }
}

/// Checks a verified token's claims against `rules` at time `now` (seconds since the
/// epoch) and returns the caller they identify. `at_jwt`: the header said
/// `typ: at+jwt`. The one claims check for every issuer.
pub fn check(
    rules: &ClaimRules,
    claims: Map<String, Value>,
    at_jwt: bool,
    now: f64,
) -> Result<Principal, TokenError> {
    let leeway = rules.leeway.as_secs_f64();
    let exp = numeric_date(&claims, "exp")?.ok_or(TokenError::BadClaims)?;
    let nbf = numeric_date(&claims, "nbf")?;
    let iat = numeric_date(&claims, "iat")?;
    let iss = string(&claims, "iss")?;
    let aud = audiences(&claims)?;
    string(&claims, "jti")?;

    if rules.verify_issuer && iss.ok_or(TokenError::BadClaims)? != rules.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if rules.verify_audience {
        let aud = aud.ok_or(TokenError::BadClaims)?;
        if !aud.iter().any(|a| rules.audiences.iter().any(|c| c == a)) {
            return Err(TokenError::WrongAudience);
        }
    }
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now + leeway) || iat.is_some_and(|iat| iat > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if let Some(max) = rules.max_lifetime {
        let iat = iat.ok_or(TokenError::BadClaims)?;
        if exp - iat > max.as_secs_f64() {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    let mut p = Principal::from_claims(claims, &rules.issuer, &rules.mapping, at_jwt)?;
    // In [0, year 9999] by `numeric_date`: the cast is exact.
    p.expires_at = exp.floor() as u64;
    Ok(p)
}
