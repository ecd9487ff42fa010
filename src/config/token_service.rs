//! `[tokens]` issuance settings, `[users]`, `[[clients]]` and `[registration]` → the
//! typed [`TokenService`], with every problem named by key and fix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::file::{ClientFile, RegistrationFile, TokensFile, UserFile, UsersFile};
use super::validate::{Issues, OwnKeys};
use crate::middleware::rate_limit::LoginDefaults;
use crate::ratelimit::Rate;
use crate::token::HashLimits;

/// Default `[users] max_queued_hashes`.
const DEFAULT_QUEUED_HASHES: usize = 16;
use crate::token::password::{is_supported_hash, Argon2Params, Hasher};
use crate::token::store::Backend;
use crate::token::{Client, ConfigUser, Grant, Registration, ScopePolicy, TokenService};

/// Everything the token service reads from the file.
pub(super) struct Files {
    pub users: Option<UsersFile>,
    pub clients: Vec<Option<ClientFile>>,
    pub registration: Option<RegistrationFile>,
}

fn users(
    issues: &mut Issues,
    key: &str,
    files: &[UserFile],
    roles: &BTreeMap<String, Vec<String>>,
) -> Vec<ConfigUser> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, u) in files.iter().enumerate() {
        let k = |f: &str| format!("{key}[{i}].{f}");
        if !crate::token::valid_username(&u.username) || !seen.insert(u.username.clone()) {
            issues.add(
                k("username"),
                format!(
                    "\"{}\" is not a valid username or is used twice",
                    u.username
                ),
                "use 3 to 64 of letters, digits, '.', '_', '-', '@', each once",
            );
        }
        if !is_supported_hash(&u.password_hash) {
            issues.add(
                k("password_hash"),
                "is not an argon2 or bcrypt hash",
                "make one with `portcullis hash-password` (never write a password here)",
            );
        }
        for r in &u.roles {
            if !roles.contains_key(r) {
                issues.add(
                    k("roles"),
                    format!("role \"{r}\" is not defined in [roles]"),
                    "define it in [roles] or fix the name",
                );
            }
        }
        out.push(ConfigUser {
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            roles: u.roles.clone(),
        });
    }
    out
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
        ];
        for (present, section) in stray {
            if present {
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

    // [[clients]]
    let mut enabled = Vec::new();
    for (i, g) in t.grants.iter().enumerate() {
        match Grant::parse(g) {
            Some(g) if !enabled.contains(&g) => enabled.push(g),
            Some(_) => {}
            None => issues.add(
                format!("tokens.grants[{i}]"),
                format!("\"{g}\" is not a supported grant"),
                "use password, refresh_token or client_credentials",
            ),
        }
    }
    let mut clients = HashMap::new();
    for (i, c) in files.clients.iter().enumerate() {
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
                    "use password, refresh_token or client_credentials",
                ),
            }
        }
        clients.insert(
            c.client_id.clone(),
            Client {
                client_id: c.client_id.clone(),
                secret_sha256: c.secret_sha256.as_ref().map(|h| h.to_ascii_lowercase()),
                grants,
                scopes: c.scopes.clone(),
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

    // [users]
    let u = files.users.unwrap_or(UsersFile {
        store: None,
        store_env: None,
        argon2_memory: "64MiB".into(),
        argon2_iterations: 3,
        argon2_parallelism: 4,
        max_concurrent_hashes: None,
        max_queued_hashes: None,
        static_users: Vec::new(),
        seed: Vec::new(),
    });
    let store_url = match (&u.store, &u.store_env) {
        (Some(_), Some(_)) => {
            issues.add(
                "users.store",
                "both store and store_env are set",
                "keep one",
            );
            String::new()
        }
        (None, Some(var)) => std::env::var(var).unwrap_or_else(|_| {
            issues.add(
                "users.store_env",
                format!("environment variable {var} is not set"),
                format!("export {var}=postgres://user:password@host/db"),
            );
            String::new()
        }),
        (Some(url), None) => url.clone(),
        (None, None) => "sqlite://portcullis.db".into(),
    };
    let store_url = match Backend::of(&store_url) {
        Some(Backend::Sqlite) => {
            let rest = store_url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            if rest.starts_with('/') || rest.starts_with(":memory:") {
                store_url
            } else {
                format!("sqlite://{}", base_dir.join(rest).display())
            }
        }
        Some(Backend::Postgres) => store_url,
        None => {
            if !store_url.is_empty() {
                issues.add(
                    "users.store",
                    "is not a sqlite:// or postgres:// URL",
                    "e.g. \"sqlite://portcullis.db\" or store_env = \"DATABASE_URL\"",
                );
            }
            store_url
        }
    };
    let memory = issues.size("users.argon2_memory".into(), &u.argon2_memory);
    let params = Argon2Params {
        memory_kib: u32::try_from(memory / 1024).unwrap_or(u32::MAX),
        iterations: u.argon2_iterations,
        parallelism: u.argon2_parallelism,
    };
    if let Err(e) = params.validate() {
        issues.add(
            "users.argon2_memory",
            e,
            "the defaults (64MiB, 3 iterations, parallelism 4) follow RFC 9106",
        );
    }
    let hash_limits = HashLimits {
        concurrent: u
            .max_concurrent_hashes
            .unwrap_or_else(crate::token::hashing::HashGate::default_concurrency),
        queued: u.max_queued_hashes.unwrap_or(DEFAULT_QUEUED_HASHES),
    };
    if hash_limits.concurrent == 0 || hash_limits.concurrent > 256 {
        issues.add(
            "users.max_concurrent_hashes",
            format!("{} is not from 1 to 256", hash_limits.concurrent),
            "leave it out (one per CPU) or set a small number; each hash holds argon2_memory",
        );
    }
    if hash_limits.queued > 10_000 {
        issues.add(
            "users.max_queued_hashes",
            format!("{} is more than 10000", hash_limits.queued),
            "keep the queue short (default 16): beyond it a login is answered 503 at once",
        );
    }
    let static_users = users(issues, "users.static", &u.static_users, roles);
    let seed_users = users(issues, "users.seed", &u.seed, roles);

    let registration = match files.registration {
        Some(r) if r.enabled => {
            for role in &r.default_roles {
                if !roles.contains_key(role) {
                    issues.add(
                        "registration.default_roles",
                        format!("role \"{role}\" is not defined in [roles]"),
                        "define it in [roles]",
                    );
                }
            }
            if r.min_password_length < 8 {
                issues.add(
                    "registration.min_password_length",
                    "is below 8",
                    "NIST SP 800-63B asks for at least 8; 12 is the default",
                );
            }
            Some(Registration {
                default_roles: r.default_roles,
                min_password_length: r.min_password_length,
            })
        }
        _ => None,
    };

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
    })
}
