//! `[login]` and `[[login.providers]]` → the typed [`LoginSettings`]: page branding,
//! session and code lifetimes, the demo client and external providers, each problem
//! named by key and fix.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::file::{LoginFile, ProviderFile};
use crate::token::browser::{LoginSettings, Provider};
use crate::token::{Client, Grant};

use super::Issues;

/// The typed `[login]`; `clients` to check `demo_client` against.
pub(super) fn login(
    issues: &mut Issues,
    f: LoginFile,
    clients: &std::collections::HashMap<String, Client>,
    roles: &std::collections::BTreeMap<String, Vec<String>>,
    base_dir: &Path,
) -> LoginSettings {
    let accent_ok = f
        .accent_color
        .strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !accent_ok {
        issues.add(
            "login.accent_color",
            format!("\"{}\" is not a colour", f.accent_color),
            "use #rgb or #rrggbb, e.g. \"#2f5bd3\"",
        );
    }
    if let Some(u) = &f.logo_url {
        if !(u.starts_with("https://") || u.starts_with('/')) {
            issues.add(
                "login.logo_url",
                format!("\"{u}\" is neither https nor a path here"),
                "use an https:// URL or a path such as \"/static/logo.png\"",
            );
        }
    }
    let session_ttl = issues.duration("login.session_ttl".into(), &f.session_ttl);
    if session_ttl < Duration::from_secs(60) || session_ttl > Duration::from_secs(30 * 86_400) {
        issues.add(
            "login.session_ttl",
            "must be between 1m and 30d",
            "e.g. \"1h\"",
        );
    }
    let code_ttl = issues.duration("login.code_ttl".into(), &f.code_ttl);
    if code_ttl < Duration::from_secs(5) || code_ttl > Duration::from_secs(600) {
        issues.add(
            "login.code_ttl",
            "must be between 5s and 10m",
            "codes should be short-lived: \"60s\" (RFC 6749 §4.1.2 recommends at most 10 minutes)",
        );
    }
    if let Some(d) = &f.demo_client {
        match clients.get(d) {
            Some(c) if c.secret_sha256.is_none() && c.grants.contains(&Grant::AuthorizationCode) => {}
            _ => issues.add(
                "login.demo_client",
                format!("\"{d}\" is not a public [[clients]] entry with the authorization_code grant"),
                "declare it with grants = [\"authorization_code\", \"refresh_token\"] and redirect_uris for /demo/, no secret",
            ),
        }
    }
    let mut providers: Vec<Arc<Provider>> = Vec::new();
    for (i, p) in f.providers.into_iter().enumerate() {
        if let Some(p) = provider(issues, i, p, roles, base_dir) {
            if providers.iter().any(|q| q.name == p.name) {
                issues.add(
                    format!("login.providers[{i}].name"),
                    format!("\"{}\" is used twice", p.name),
                    "give every provider its own name",
                );
            }
            providers.push(Arc::new(p));
        }
    }
    LoginSettings {
        title: f.title,
        accent_color: f.accent_color,
        logo_url: f.logo_url,
        session_ttl,
        code_ttl,
        demo_client: f.demo_client,
        providers,
        configured: true,
    }
}

fn provider(
    issues: &mut Issues,
    i: usize,
    p: ProviderFile,
    roles: &std::collections::BTreeMap<String, Vec<String>>,
    base_dir: &Path,
) -> Option<Provider> {
    let k = |f: &str| format!("login.providers[{i}].{f}");
    let name_ok = !p.name.is_empty()
        && p.name.len() <= 32
        && p.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        issues.add(
            k("name"),
            format!("\"{}\" is not a short name", p.name),
            "use letters, digits, '-' and '_' (it appears in /login/{name})",
        );
    }
    let issuer = p.issuer.trim_end_matches('/').to_string();
    let local = issuer.parse::<http::Uri>().is_ok_and(|u| {
        u.scheme_str() == Some("http") && u.host().is_some_and(crate::token::browser::is_loopback)
    });
    if !(issuer.starts_with("https://") || local) {
        issues.add(
            k("issuer"),
            format!("\"{}\" is not an https URL", p.issuer),
            "use the provider's https issuer URL (http only on loopback, for tests)",
        );
    }
    let secret = match (&p.client_secret_env, &p.client_secret_file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                issues.add(
                    k("client_secret_env"),
                    format!("environment variable {var} is not set"),
                    format!("export {var} with the client secret the provider gave"),
                );
                None
            }
        },
        (None, Some(file)) => match std::fs::read_to_string(base_dir.join(file)) {
            Ok(v) => Some(v.trim().to_string()),
            Err(e) => {
                issues.add(
                    k("client_secret_file"),
                    format!("cannot read {file}: {e}"),
                    "point it at a file holding the client secret",
                );
                None
            }
        },
        (None, None) => None,
        (Some(_), Some(_)) => {
            issues.add(
                k("client_secret_env"),
                "both client_secret_env and client_secret_file are set",
                "keep one",
            );
            None
        }
    };
    if !p.scopes.iter().any(|s| s == "openid") {
        issues.add(
            k("scopes"),
            "does not ask for openid",
            "add \"openid\": sign-in needs an id_token",
        );
    }
    for r in p.default_roles.iter().chain(p.role_map.values()) {
        if !roles.contains_key(r) {
            issues.add(
                k("default_roles"),
                format!("role \"{r}\" is not in [roles]"),
                "declare the role in [roles], or remove it",
            );
        }
    }
    if p.role_map.is_empty() != p.roles_claim.is_none() {
        issues.add(
            k("role_map"),
            "roles_claim and role_map go together",
            "set both (which claim, and what its values become), or neither",
        );
    }
    Some(Provider {
        display_name: p.display_name.unwrap_or_else(|| p.name.clone()),
        name: p.name,
        issuer,
        client_id: p.client_id,
        client_secret: secret,
        scopes: p.scopes,
        roles_claim: p.roles_claim,
        role_map: p.role_map,
        default_roles: p.default_roles,
        link_by_email: p.link_by_email,
        create_users: p.create_users,
    })
}
