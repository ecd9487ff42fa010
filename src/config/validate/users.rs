//! `[users]`, `[[users.static]]`, `[[users.seed]]` and `[registration]`: where users
//! are stored, how passwords are hashed (RFC 9106 argon2id parameters and the bounded
//! hashing gate), the users declared in the file, and self-registration.
//!
//! A user's password is never written in the file, only its hash; every role a user
//! or registration names must be defined in `[roles]`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::config::file::{RegistrationFile, UserFile, UsersFile};
use crate::token::password::{is_supported_hash, Argon2Params};
use crate::token::store::Backend;
use crate::token::{ConfigUser, HashLimits, Registration};

use super::Issues;

/// Default `[users] max_queued_hashes`.
const DEFAULT_QUEUED_HASHES: usize = 16;

/// What `[users]` decides.
pub(super) struct UsersSection {
    pub store_url: String,
    pub params: Argon2Params,
    pub hash_limits: HashLimits,
    pub static_users: Vec<ConfigUser>,
    pub seed_users: Vec<ConfigUser>,
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

/// `[users]` (the defaults when it is absent) and the users it declares.
pub(super) fn users_section(
    issues: &mut Issues,
    file: Option<UsersFile>,
    roles: &BTreeMap<String, Vec<String>>,
    base_dir: &Path,
) -> UsersSection {
    let u = file.unwrap_or(UsersFile {
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
    UsersSection {
        store_url,
        params,
        hash_limits,
        static_users,
        seed_users,
    }
}

/// `[registration]`, when enabled.
pub(super) fn registration(
    issues: &mut Issues,
    file: Option<RegistrationFile>,
    roles: &BTreeMap<String, Vec<String>>,
) -> Option<Registration> {
    match file {
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
    }
}
