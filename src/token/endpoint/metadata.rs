//! The authorization server metadata document (RFC 8414), served at
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::token::TokenService;

/// RFC 8414 authorization server metadata.
pub fn metadata(svc: &TokenService, roles: &HashMap<String, Vec<String>>) -> Value {
    let base = &svc.issuer;
    let prefix = &svc.endpoint_prefix;
    // What is served: a grant the server enables and some client may use (a client
    // can list enabled grants only, `check` makes sure).
    let mut grants: Vec<&str> = Vec::new();
    for c in svc.clients.values() {
        for g in c.grants.iter().filter(|g| svc.grants.contains(g)) {
            if !grants.contains(&g.as_str()) {
                grants.push(g.as_str());
            }
        }
    }
    grants.sort_unstable();
    let mut scopes: Vec<&str> = roles
        .values()
        .flatten()
        .chain(svc.clients.values().flat_map(|c| c.scopes.iter()))
        .map(String::as_str)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut algs: Vec<&str> = vec![crate::token::keys::alg_name(svc.signing.alg)];
    algs.dedup();
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "issuer": base,
        "token_endpoint": format!("{base}{prefix}/token"),
        "revocation_endpoint": format!("{base}{prefix}/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": grants,
        "response_types_supported": [],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "access_token_signing_alg_values_supported": algs,
    })
}
