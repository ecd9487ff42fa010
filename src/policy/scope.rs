//! Per-route authorization: does the verified principal hold what the route asks for?
//!
//! A principal's effective scopes are the scopes in its token plus, for each of its
//! roles, the scopes `[roles]` maps that role to (not for RFC 9068 tokens such as the
//! token service's, whose `scope` is already the roles' grant, narrowed). A route may ask for `scopes` (all of
//! them), `any_scopes` (at least one) and `roles` (at least one); every condition it
//! states must hold.

use std::collections::HashMap;

use crate::auth::principal::Principal;
#[cfg(feature = "server")]
use crate::config::Route;

/// The principal's effective scopes: token scopes, then role-granted ones, no repeats.
pub fn effective_scopes(p: &Principal, roles: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut out = p.scopes.clone();
    if !p.expand_roles {
        return out;
    }
    for role in &p.roles {
        for s in roles.get(role).into_iter().flatten() {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

/// What a route (a gateway `[[routes]]` entry, or the library layer's route policy
/// and `RequireScopes`) asks of a verified caller.
#[derive(Debug, Clone, Copy)]
pub struct Requirement<'a> {
    /// Every one of these scopes.
    pub scopes: &'a [String],
    /// At least one of these scopes (when not empty).
    pub any_scopes: &'a [String],
    /// At least one of these roles (when not empty).
    pub roles: &'a [String],
}

/// `Ok(effective scopes)`, or `Err(the scopes to name in the 403)`.
#[cfg(feature = "server")]
pub fn authorize(
    route: &Route,
    p: &Principal,
    roles: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let req = Requirement {
        scopes: &route.scopes,
        any_scopes: &route.any_scopes,
        roles: &route.roles,
    };
    check(req, p, roles)
}

/// The one authorization rule, for the gateway's routes and the library layer alike:
/// `Ok(effective scopes)`, or `Err(the scopes to name in the 403)`.
pub fn check(
    req: Requirement<'_>,
    p: &Principal,
    roles: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let effective = effective_scopes(p, roles);
    check_effective(req, &effective, &p.roles)?;
    Ok(effective)
}

/// [`check`] for a caller whose effective scopes are already known.
pub fn check_effective(
    req: Requirement<'_>,
    effective: &[String],
    caller_roles: &[String],
) -> Result<(), String> {
    let has = |s: &String| effective.contains(s);
    if !req.scopes.iter().all(has) {
        return Err(req.scopes.join(" "));
    }
    if !req.any_scopes.is_empty() && !req.any_scopes.iter().any(has) {
        return Err(req.any_scopes.join(" "));
    }
    if !req.roles.is_empty() && !req.roles.iter().any(|r| caller_roles.contains(r)) {
        return Err(req.scopes.join(" "));
    }
    Ok(())
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    fn route(scopes: &[&str], any: &[&str], roles: &[&str]) -> Route {
        Route::for_tests("/x", None, scopes, any, roles)
    }

    fn principal(scopes: &[&str], roles: &[&str]) -> Principal {
        Principal {
            subject: "alice".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            client_id: None,
            issuer: "i".into(),
            expires_at: 0,
            claims: Default::default(),
            expand_roles: true,
        }
    }

    #[test]
    fn all_any_and_roles() {
        let roles: HashMap<String, Vec<String>> = [(
            "admin".to_string(),
            vec!["items:write".to_string(), "users:admin".to_string()],
        )]
        .into();
        // all of `scopes`
        assert!(authorize(
            &route(&["a", "b"], &[], &[]),
            &principal(&["a", "b", "c"], &[]),
            &roles
        )
        .is_ok());
        assert_eq!(
            authorize(
                &route(&["a", "b"], &[], &[]),
                &principal(&["a"], &[]),
                &roles
            ),
            Err("a b".to_string())
        );
        // one of `any_scopes`
        assert!(authorize(
            &route(&[], &["x", "y"], &[]),
            &principal(&["y"], &[]),
            &roles
        )
        .is_ok());
        assert_eq!(
            authorize(
                &route(&[], &["x", "y"], &[]),
                &principal(&["z"], &[]),
                &roles
            ),
            Err("x y".to_string())
        );
        // roles expand to scopes
        let ok = authorize(
            &route(&["items:write"], &[], &[]),
            &principal(&["items:read"], &["admin"]),
            &roles,
        )
        .expect("expanded");
        assert_eq!(ok, vec!["items:read", "items:write", "users:admin"]);
        assert!(authorize(
            &route(&["items:write"], &[], &[]),
            &principal(&["items:read"], &["user"]),
            &roles
        )
        .is_err());
        // one of `roles`
        assert!(authorize(
            &route(&[], &[], &["admin", "ops"]),
            &principal(&[], &["ops"]),
            &roles
        )
        .is_ok());
        assert!(
            authorize(
                &route(&[], &[], &["admin"]),
                &principal(&["admin"], &["user"]),
                &roles
            )
            .is_err(),
            "a scope named like a role is not the role"
        );
        // no requirement: any valid token
        assert!(authorize(&route(&[], &[], &[]), &principal(&[], &[]), &roles).is_ok());
    }
}
