//! `[tokens]` issuance settings (with `[users]`, `[[clients]]` and `[registration]`,
//! checked in their own files) → the typed [`TokenService`], with every problem named
//! by key and fix.
//!
//! The service is on only when `[tokens] signing_key` names a key Portcullis can sign
//! with; its sections are refused when it is off, so a half-configured service is
//! never silently ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::file::{ClientFile, LoginFile, RegistrationFile, TokensFile, UsersFile};
use crate::ratelimit::LoginDefaults;
use crate::ratelimit::Rate;
use crate::token::password::Hasher;
use crate::token::{ScopePolicy, TokenService};

use super::clients::clients;
use super::login::login;
use super::tokens::OwnKeys;
use super::users::{registration, users_section, UsersSection};
use super::Issues;

/// Everything the token service reads from the file.
pub(super) struct Files {
    pub users: Option<UsersFile>,
    pub clients: Vec<Option<ClientFile>>,
    pub registration: Option<RegistrationFile>,
    pub login: Option<LoginFile>,
}

/// The token service, when `[tokens] signing_key` turns it on.
pub(super) fn token_service(
    issues: &mut Issues,
    t: Option<&TokensFile>,
    own: OwnKeys,
    files: Files,
    roles: &BTreeMap<String, Vec<String>>,
    base_dir: &Path,
) -> Option<TokenService> {
    let jwks: Vec<serde_json::Value> = own.signing.iter().filter_map(|k| k.jwk.clone()).collect();
    let signing_kid = t.and_then(|t| t.signing_key.as_ref());
    let Some(signing_kid) = signing_kid else {
        let stray = [
            (files.users.is_some(), "users"),
            (!files.clients.is_empty(), "clients"),
            (
                files.registration.as_ref().is_some_and(|r| r.enabled),
                "registration",
            ),
            (files.login.is_some(), "login"),
        ];
        // A [tokens] that could not be read is reported once, not again by each
        // section that needs it.
        for (present, section) in stray {
            if present && !issues.unreadable("tokens") {
                issues.add(
                    section,
                    "is set but the token service is off",
                    "set [tokens] signing_key to the kid of a key that signs, or remove this section",
                );
            }
        }
        return None;
    };
    let t = t?;
    let signing = own.signing.into_iter().find(|k| &k.kid == signing_kid);
    if signing.is_none() {
        // Reported, and the rest still checked: one run lists every problem.
        issues.add(
            "tokens.signing_key",
            format!("no [[tokens.keys]] entry with kid \"{signing_kid}\" can sign"),
            "name a key with private_key (RS256/ES256/EdDSA) or an HS256 secret",
        );
    }
    if !t.verify_issuer || !t.verify_audience {
        issues.add(
            "tokens.verify_issuer",
            "the token service needs iss and aud checked on its own tokens",
            "remove verify_issuer = false / verify_audience = false",
        );
    }
    let issuer = t.issuer.trim_end_matches('/').to_string();
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
        issues.add(
            "tokens.issuer",
            format!("\"{}\" is not a URL", t.issuer),
            "the token service's issuer is its public base URL, e.g. \"https://auth.example.com\"",
        );
    }
    let audience = t.audiences.first().cloned().unwrap_or_default();
    let access_ttl = issues.duration("tokens.access_ttl".into(), &t.access_ttl);
    if access_ttl < Duration::from_secs(30) || access_ttl > Duration::from_secs(24 * 3600) {
        issues.add(
            "tokens.access_ttl",
            "must be between 30s and 24h",
            "access tokens should be short-lived, e.g. \"15m\"",
        );
    }
    let refresh_ttl = issues.duration("tokens.refresh_ttl".into(), &t.refresh_ttl);
    if refresh_ttl < access_ttl {
        issues.add(
            "tokens.refresh_ttl",
            "is shorter than access_ttl",
            "e.g. \"7d\"",
        );
    }
    let scope_policy = match t.scope_policy.as_str() {
        "narrow" => ScopePolicy::Narrow,
        "reject" => ScopePolicy::Reject,
        other => {
            issues.add(
                "tokens.scope_policy",
                format!("\"{other}\" is not a policy"),
                "use \"narrow\" or \"reject\"",
            );
            ScopePolicy::Narrow
        }
    };
    let login_rate = t.login_rate.parse::<Rate>().unwrap_or_else(|e| {
        issues.add("tokens.login_rate", e, "e.g. \"5/5s\"");
        Rate {
            count: 5,
            per: Duration::from_secs(5),
        }
    });
    let login_ip_rate = t.login_ip_rate.parse::<Rate>().unwrap_or_else(|e| {
        issues.add("tokens.login_ip_rate", e, "e.g. \"20/1m\"");
        Rate {
            count: 20,
            per: Duration::from_secs(60),
        }
    });
    let prefix = t.endpoint_prefix.trim_end_matches('/').to_string();
    if !prefix.is_empty()
        && crate::policy::path::canonicalize(&prefix).ok().as_deref() != Some(prefix.as_str())
    {
        issues.add(
            "tokens.endpoint_prefix",
            format!("\"{prefix}\" is not a canonical path"),
            "use \"\" or a path such as \"/oauth\"",
        );
    }

    let (enabled, clients) = clients(issues, t, &files.clients);
    let UsersSection {
        store_url,
        params,
        hash_limits,
        static_users,
        seed_users,
    } = users_section(issues, files.users, roles, base_dir);
    let registration = registration(issues, files.registration, roles);
    let configured = files.login.is_some();
    let mut login = login(
        issues,
        files.login.unwrap_or_default(),
        &clients,
        roles,
        base_dir,
    );
    login.configured = configured;
    let browser_clients = clients
        .values()
        .any(|c| c.grants.contains(&crate::token::Grant::AuthorizationCode));
    if browser_clients
        && signing
            .as_ref()
            .is_some_and(|k| k.alg == jsonwebtoken::Algorithm::HS256)
    {
        issues.add(
            "tokens.signing_key",
            "an HS256 key cannot sign id_tokens for the authorization_code grant",
            "sign with an RS256, ES256 or EdDSA key (clients verify id_tokens against the JWKS)",
        );
    }

    let signing = signing?;
    Some(TokenService {
        issuer,
        audience,
        signing: Arc::new(signing),
        jwks: serde_json::json!({ "keys": jwks }),
        access_ttl,
        refresh_ttl,
        scope_policy,
        default_client: t.default_client.clone(),
        clients,
        endpoint_prefix: prefix,
        require_grant_type: t.require_grant_type,
        grants: enabled,
        store_url,
        static_users: static_users
            .into_iter()
            .map(|u| (u.username.clone(), u))
            .collect(),
        seed_users,
        hasher: Hasher::new(params),
        login_defaults: LoginDefaults {
            per_user: login_rate,
            per_ip: login_ip_rate,
            max_keys: t.login_rate_max_keys.max(1),
        },
        hash_limits,
        registration,
        created_keys: own.created,
        login,
    })
}
