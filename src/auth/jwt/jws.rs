//! The compact JWS (RFC 7515 §7.1), taken apart once for every issuer: three
//! base64url segments, a JOSE header held to a short allow-list, the signature checked
//! with jsonwebtoken's primitives for the key's pinned algorithm, and the payload read
//! as one JSON object.
//!
//! Header rules (RFC 8725 §3.1, §3.11):
//! - `alg` is a string (the caller pins it to the key); `kid`, if present, a string;
//! - `typ` absent, `JWT` or `at+jwt`, compared as media types (case-insensitively,
//!   with or without `application/`, RFC 7515 §4.1.9): other `*+jwt` types (`dpop+jwt`,
//!   `secevent+jwt`, `logout+jwt`…) are other kinds of JWT that must not pass for access
//!   tokens;
//! - `crit` is refused (no extension is understood); `enc` and `zip` are refused: they
//!   belong to a JWE, and a header that carries them is a confusion attempt;
//! - `jku`, `x5u`, `x5c` and `jwk` are never read: keys come from configuration only.
//!
//! A header or payload naming a member twice is refused (RFC 7519 §4 lets a parser do
//! so; a first-wins parser elsewhere must not see another token than we did).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{parse_alg, TokenError, MAX_TOKEN_BYTES};

/// The JOSE header, after its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    /// `None` when `alg` names an algorithm Portcullis never accepts (`none`, …).
    pub alg: Option<Algorithm>,
    pub kid: Option<String>,
    /// `typ` is `at+jwt` (RFC 9068).
    pub at_jwt: bool,
}

/// A compact JWS, split but not yet verified.
pub struct Jws<'a> {
    pub header: JoseHeader,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl fmt::Debug for Jws<'_> {
    // Never prints the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jws")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// A JSON object whose members are each named once.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<UniqueObject, A::Error> {
                let mut m = Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    let v: Value = a.next_value()?;
                    if m.insert(k, v).is_some() {
                        return Err(A::Error::custom("a member is named twice"));
                    }
                }
                Ok(UniqueObject(m))
            }
        }
        d.deserialize_map(V)
    }
}

/// One base64url segment → a JSON object with unique members.
fn object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|o| o.0)
        .map_err(|_| TokenError::Malformed)
}

/// Whether a `typ` value names an access token Portcullis accepts.
fn typ_allowed(typ: &str) -> Option<bool> {
    // RFC 7515 §4.1.9: a value without '/' is read as if "application/" preceded it;
    // media types compare case-insensitively.
    let lower = typ.to_ascii_lowercase();
    let media = lower.strip_prefix("application/").unwrap_or(&lower);
    if lower.contains('/') && !lower.starts_with("application/") {
        return None;
    }
    match media {
        "jwt" => Some(false),
        "at+jwt" => Some(true),
        _ => None,
    }
}

/// Applies the header rules to a decoded header.
pub fn check_header(h: &Map<String, Value>) -> Result<JoseHeader, TokenError> {
    for refused in ["crit", "enc", "zip"] {
        if h.contains_key(refused) {
            return Err(TokenError::BadHeader);
        }
    }
    let alg = h
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?;
    let kid = match h.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    let at_jwt = match h.get("typ") {
        None => false,
        Some(Value::String(t)) => typ_allowed(t).ok_or(TokenError::BadHeader)?,
        Some(_) => return Err(TokenError::BadHeader),
    };
    Ok(JoseHeader {
        alg: parse_alg(alg),
        kid,
        at_jwt,
    })
}

impl<'a> Jws<'a> {
    /// Splits a compact JWS and checks its header. Oversized tokens are refused before
    /// anything is decoded.
    pub fn parse(token: &'a str) -> Result<Jws<'a>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = check_header(&object(h)?)?;
        Ok(Jws {
            header,
            signing_input: &token[..h.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    /// Checks the signature with `key` for `alg`, the algorithm the key is pinned to
    /// (the caller has compared it with the header's).
    pub fn verify_signature(&self, key: &DecodingKey, alg: Algorithm) -> Result<(), TokenError> {
        match jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, alg)
        {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(TokenError::BadSignature),
        }
    }

    /// The claims set: one JSON object. Read only after the signature was verified.
    pub fn claims(&self) -> Result<Map<String, Value>, TokenError> {
        object(self.payload).map_err(|_| TokenError::BadClaims)
    }
}
