//! The verified caller: who it is and what it may do, from a verified token's claims.

use serde_json::{Map, Value};

use super::jwt::TokenError;

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    /// Scopes granted in the token (`scope`, space-delimited, or `scp`).
    pub scopes: Vec<String>,
    /// Roles from the `roles` claim.
    pub roles: Vec<String>,
    pub client_id: Option<String>,
    pub issuer: String,
    /// `exp`, seconds since the epoch (0 when unknown).
    pub expires_at: u64,
    /// Every claim, for configured claim → header mappings.
    pub claims: Map<String, Value>,
    /// Whether `[roles]` adds the scopes of `roles` to `scopes`. Off for RFC 9068
    /// tokens (`typ: at+jwt`, what the token service issues): their `scope` already is
    /// what the roles granted, narrowed to the request, and expanding again would undo
    /// the narrowing.
    pub expand_roles: bool,
}

/// Whether a claim value can travel in a header as it is (visible ASCII and spaces).
pub(crate) fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn strings(v: Option<&Value>, split_spaces: bool) -> Result<Vec<String>, TokenError> {
    let out: Vec<String> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if split_spaces => s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(TokenError::BadClaims))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(TokenError::BadClaims),
    };
    if out
        .iter()
        .all(|s| header_safe(s) && !s.contains(' ') && !s.contains(','))
    {
        Ok(out)
    } else {
        Err(TokenError::BadClaims)
    }
}

impl Principal {
    /// Reads subject, scopes, roles and client id from verified claims. A subject or
    /// scope that could not be passed on safely in a header refuses the token.
    pub fn from_claims(claims: Map<String, Value>, issuer: &str) -> Result<Principal, TokenError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() && header_safe(s) => s.clone(),
            _ => return Err(TokenError::BadClaims),
        };
        let mut scopes = strings(claims.get("scope"), true)?;
        if scopes.is_empty() {
            scopes = strings(claims.get("scp"), true)?;
        }
        let roles = strings(claims.get("roles"), false)?;
        let client_id = match claims.get("client_id") {
            None => None,
            Some(Value::String(c)) if header_safe(c) => Some(c.clone()),
            Some(_) => return Err(TokenError::BadClaims),
        };
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok(Principal {
            subject,
            scopes,
            roles,
            client_id,
            issuer: issuer.to_string(),
            expires_at,
            claims,
            expand_roles: true,
        })
    }
}
