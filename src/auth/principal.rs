//! The verified caller: who it is and what it may do, from a verified token's claims.
//!
//! Which claims carry scopes and roles is configuration ([`ClaimMapping`]), the same
//! shape for Portcullis' own tokens (`[tokens]`) and every external issuer
//! (`[[issuers]]`): an operator who says scopes are in `scope` gets scopes from `scope`
//! only, whatever else the token carries.

use serde_json::{Map, Value};

use super::jwt::TokenError;

/// A claim addressed by a path: a literal claim name (URLs with dots included) is
/// tried first, then the dotted path (`realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(pub String);

impl ClaimPath {
    pub fn get<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        if let Some(v) = claims.get(&self.0) {
            return Some(v);
        }
        let mut parts = self.0.split('.');
        let mut cur = claims.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    }
}

/// Where a token's scopes and roles are, and whether its roles add scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Scopes come from the first of these claims that is present (and not `null`):
    /// a space-separated string or an array of strings. No other claim is read.
    pub scope_claims: Vec<ClaimPath>,
    /// Roles come from this claim only (an array of strings, or one string).
    pub roles_claim: ClaimPath,
    /// Whether `[roles]` adds the scopes of the token's roles. Never for RFC 9068
    /// tokens (`typ: at+jwt`): their `scope` already is the grant.
    pub expand_roles: bool,
}

impl Default for ClaimMapping {
    /// `scope`, then `scp`; roles in `roles`; roles expanded (what Portcullis always
    /// did before the mapping was configurable).
    fn default() -> Self {
        ClaimMapping {
            scope_claims: vec![ClaimPath("scope".into()), ClaimPath("scp".into())],
            roles_claim: ClaimPath("roles".into()),
            expand_roles: true,
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    /// Scopes granted in the token (from the configured scope claims).
    pub scopes: Vec<String>,
    /// Roles from the configured roles claim.
    pub roles: Vec<String>,
    pub client_id: Option<String>,
    pub issuer: String,
    /// `exp`, whole seconds since the epoch (0 when unknown).
    pub expires_at: u64,
    /// Every claim, for configured claim → header mappings.
    pub claims: Map<String, Value>,
    /// Whether `[roles]` adds the scopes of `roles` to `scopes`. Off for RFC 9068
    /// tokens (`typ: at+jwt`, what the token service issues): their `scope` already is
    /// what the roles granted, narrowed to the request, and expanding again would undo
    /// the narrowing. Off too where the operator said so (`expand_roles = false`).
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
    /// Reads subject, scopes, roles and client id from verified claims, as `mapping`
    /// says. A subject or scope that could not be passed on safely in a header refuses
    /// the token. `at_jwt`: the header said `typ: at+jwt` (roles never expanded).
    pub fn from_claims(
        claims: Map<String, Value>,
        issuer: &str,
        mapping: &ClaimMapping,
        at_jwt: bool,
    ) -> Result<Principal, TokenError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() && header_safe(s) => s.clone(),
            _ => return Err(TokenError::BadClaims),
        };
        let scope_value = mapping
            .scope_claims
            .iter()
            .find_map(|c| c.get(&claims).filter(|v| !v.is_null()));
        let scopes = strings(scope_value, true)?;
        let roles = strings(mapping.roles_claim.get(&claims), false)?;
        let client_id = match claims.get("client_id") {
            None => None,
            Some(Value::String(c)) if header_safe(c) => Some(c.clone()),
            Some(_) => return Err(TokenError::BadClaims),
        };
        Ok(Principal {
            subject,
            scopes,
            roles,
            client_id,
            issuer: issuer.to_string(),
            expires_at: 0,
            claims,
            expand_roles: mapping.expand_roles && !at_jwt,
        })
    }
}
