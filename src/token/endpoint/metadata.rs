//! The authorization server metadata document (RFC 8414), served at
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::token::{Grant, TokenService};

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
    // With a `[login]` section, store-backed clients may use the code grant whatever
    // the config's clients do.
    let hs256 = svc.signing.alg == jsonwebtoken::Algorithm::HS256;
    if hs256 {
        // Browser sign-in needs id_tokens clients can verify (/authorize says so).
        grants.retain(|g| *g != "authorization_code");
    } else if svc.grants.contains(&Grant::AuthorizationCode)
        && svc.login.configured
        && !grants.contains(&"authorization_code")
    {
        grants.push("authorization_code");
        grants.sort_unstable();
    }
    let code = grants.contains(&"authorization_code");
    if code {
        for s in crate::token::grants::scope::IDENTITY_SCOPES {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        scopes.sort_unstable();
    }
    let mut doc = json!({
        "issuer": base,
        "token_endpoint": format!("{base}{prefix}/token"),
        "revocation_endpoint": format!("{base}{prefix}/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": grants,
        "response_types_supported": if code { vec!["code"] } else { vec![] },
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "access_token_signing_alg_values_supported": algs,
    });
    if code {
        // OpenID Connect Discovery 1.0 §3, RFC 9207, RP-initiated logout.
        let extra = json!({
            "authorization_endpoint": format!("{base}{prefix}/authorize"),
            "userinfo_endpoint": format!("{base}{prefix}/userinfo"),
            "end_session_endpoint": format!("{base}{prefix}/logout"),
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "preferred_username", "roles", "email", "email_verified"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
    }
    doc
}
