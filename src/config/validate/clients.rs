//! `[tokens] grants` and `[[clients]]` → the grants the server serves and the
//! [`Client`]s that may use them.
//!
//! A client may only list grants the server serves; client_credentials needs a
//! secret; the `default_client` (used without authentication) must be public.

use std::collections::HashMap;

use crate::config::file::{ClientFile, TokensFile};
use crate::token::{Client, Grant};

use super::Issues;

/// The grants served (`[tokens] grants`, in order, once each) and the clients by id.
pub(super) fn clients(
    issues: &mut Issues,
    t: &TokensFile,
    files: &[Option<ClientFile>],
) -> (Vec<Grant>, HashMap<String, Client>) {
    let mut enabled = Vec::new();
    for (i, g) in t.grants.iter().enumerate() {
        match Grant::parse(g) {
            Some(g) if !enabled.contains(&g) => enabled.push(g),
            Some(_) => {}
            None => issues.add(
                format!("tokens.grants[{i}]"),
                format!("\"{g}\" is not a supported grant"),
                "use authorization_code, password, refresh_token or client_credentials",
            ),
        }
    }
    let mut clients = HashMap::new();
    for (i, c) in files.iter().enumerate() {
        let Some(c) = c else { continue };
        let k = |f: &str| format!("clients[{i}].{f}");
        if c.client_id.is_empty()
            || !c
                .client_id
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) && b != b':')
            || clients.contains_key(&c.client_id)
        {
            issues.add(
                k("client_id"),
                format!(
                    "\"{}\" is empty, has spaces or ':', or is used twice",
                    c.client_id
                ),
                "give every client a unique id of visible characters",
            );
        }
        if t.audiences.contains(&c.client_id) {
            issues.add(
                k("client_id"),
                format!("\"{}\" is also one of [tokens] audiences", c.client_id),
                "give the client an id of its own: an id_token's aud is its client, and must never open an API",
            );
        }
        if let Some(h) = &c.secret_sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                issues.add(
                    k("secret_sha256"),
                    "is not a SHA-256 digest in hex",
                    "make one with `portcullis api-key generate` (prints a secret and its digest)",
                );
            }
        }
        let mut grants = Vec::new();
        for g in &c.grants {
            match Grant::parse(g) {
                Some(Grant::ClientCredentials) if c.secret_sha256.is_none() => issues.add(
                    k("grants"),
                    "client_credentials needs a secret",
                    "set secret_sha256, or drop the grant",
                ),
                Some(g) if !enabled.contains(&g) => issues.add(
                    k("grants"),
                    format!("\"{}\" is not enabled in tokens.grants", g.as_str()),
                    "add it to tokens.grants, or remove it from this client",
                ),
                Some(g) => grants.push(g),
                None => issues.add(
                    k("grants"),
                    format!("\"{g}\" is not a supported grant"),
                    "use authorization_code, password, refresh_token or client_credentials",
                ),
            }
        }
        redirects(issues, i, c, &grants);
        clients.insert(
            c.client_id.clone(),
            Client {
                client_id: c.client_id.clone(),
                secret_sha256: c.secret_sha256.as_ref().map(|h| h.to_ascii_lowercase()),
                grants,
                scopes: c.scopes.clone(),
                redirect_uris: c.redirect_uris.clone(),
                post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                require_consent: c.require_consent,
                require_pkce: c.require_pkce || c.secret_sha256.is_none(),
            },
        );
    }
    if let Some(d) = &t.default_client {
        match clients.get(d) {
            None => issues.add("tokens.default_client", format!("no [[clients]] entry \"{d}\""), "declare the client, or remove default_client to require client authentication"),
            Some(c) if c.secret_sha256.is_some() => issues.add("tokens.default_client", format!("\"{d}\" has a secret"), "the default client is used without authentication: make it a public client (no secret_sha256)"),
            Some(_) => {}
        }
    }
    (enabled, clients)
}

/// `redirect_uris` and `post_logout_redirect_uris`: absolute, no fragment, `https`,
/// loopback `http` or a private-use scheme (RFC 8252 §7.1); the code grant needs one.
fn redirects(issues: &mut Issues, i: usize, c: &ClientFile, grants: &[Grant]) {
    let k = |f: &str| format!("clients[{i}].{f}");
    if grants.contains(&Grant::AuthorizationCode) && c.redirect_uris.is_empty() {
        issues.add(
            k("redirect_uris"),
            "the authorization_code grant needs at least one redirect URI",
            "list the exact URIs the client's callback is at, e.g. [\"https://app.example.com/callback\"]",
        );
    }
    if !c.redirect_uris.is_empty() && !grants.contains(&Grant::AuthorizationCode) {
        issues.add(
            k("redirect_uris"),
            "is set but the client may not use the authorization_code grant",
            "add \"authorization_code\" to grants, or remove redirect_uris",
        );
    }
    if !c.require_pkce && c.secret_sha256.is_none() {
        issues.add(
            k("require_pkce"),
            "a public client must use PKCE (RFC 9700 §2.1.1)",
            "remove require_pkce = false",
        );
    }
    for (field, list) in [
        ("redirect_uris", &c.redirect_uris),
        ("post_logout_redirect_uris", &c.post_logout_redirect_uris),
    ] {
        for (j, u) in list.iter().enumerate() {
            if let Err(why) = crate::token::browser::check_redirect_uri(u) {
                issues.add(
                    format!("clients[{i}].{field}[{j}]"),
                    format!("\"{u}\" {why}"),
                    "use an absolute https URI (http only on 127.0.0.1, [::1] or localhost), without a fragment",
                );
            }
        }
    }
}
