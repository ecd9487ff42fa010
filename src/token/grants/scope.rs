//! Which scopes a grant may carry: the request's `scope` parsed by RFC 6749 §3.3,
//! bounded by what the user's roles and the client allow, narrowed or refused by
//! `scope_policy`.

use super::{Client, OAuthError};
use crate::token::ScopePolicy;

/// OpenID Connect's scopes: what the user's roles grant does not bound them; the
/// authorization code grant grants them when asked, within a client's `scopes` list
/// when it has one.
pub(crate) const IDENTITY_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// Whether a scope is one of [`IDENTITY_SCOPES`].
pub(crate) fn is_identity_scope(s: &str) -> bool {
    IDENTITY_SCOPES.contains(&s)
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, space-separated.
pub(crate) fn parse_scope(s: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for t in s.unwrap_or("").split(' ').filter(|t| !t.is_empty()) {
        if !t
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return Err(OAuthError::invalid_scope(
                "a scope contains a forbidden character",
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// The scopes to grant: the request within `allowed` (all of `allowed` when nothing is
/// requested), by the scope policy.
pub(crate) fn grant_scopes(
    policy: ScopePolicy,
    requested: &[String],
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(allowed.to_vec());
    }
    let granted: Vec<String> = requested
        .iter()
        .filter(|s| allowed.contains(s))
        .cloned()
        .collect();
    if granted.len() < requested.len() && policy == ScopePolicy::Reject {
        return Err(OAuthError::invalid_scope(
            "a requested scope is not available to this user or client",
        ));
    }
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes is available to this user or client",
        ));
    }
    Ok(granted)
}

/// Narrows `scopes` to what a client may obtain (no list = no limit).
pub(crate) fn within_client(scopes: Vec<String>, client: &Client) -> Vec<String> {
    if client.scopes.is_empty() {
        scopes
    } else {
        scopes
            .into_iter()
            .filter(|s| client.scopes.contains(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scopes_narrow_or_reject() {
        let allowed = v(&["items:read", "items:write"]);
        assert_eq!(
            grant_scopes(ScopePolicy::Narrow, &[], &allowed),
            Ok(allowed.clone())
        );
        assert_eq!(
            grant_scopes(ScopePolicy::Narrow, &v(&["items:read", "admin"]), &allowed),
            Ok(v(&["items:read"]))
        );
        assert_eq!(
            grant_scopes(ScopePolicy::Reject, &v(&["items:read", "admin"]), &allowed)
                .map_err(|e| e.code),
            Err("invalid_scope")
        );
        assert_eq!(
            grant_scopes(ScopePolicy::Narrow, &v(&["admin"]), &allowed).map_err(|e| e.code),
            Err("invalid_scope")
        );
    }

    #[test]
    fn scope_syntax_follows_rfc_6749() {
        assert_eq!(parse_scope(Some("a  b a")), Ok(v(&["a", "b"])));
        assert_eq!(parse_scope(None), Ok(vec![]));
        for bad in ["a\"b", "a\\b", "é"] {
            assert!(parse_scope(Some(bad)).is_err(), "{bad}");
        }
    }
}
