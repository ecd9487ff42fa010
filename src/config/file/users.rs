//! The token service's own sections, as written: `[users]` (the store and password
//! hashing), `[[users.static]]`/`[[users.seed]]` entries, `[[clients]]` and
//! `[registration]`.

use serde::Deserialize;

/// `[users]`: where users live and how passwords are hashed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersFile {
    /// `sqlite://path` (relative to the config file's folder) or `postgres://…`.
    pub store: Option<String>,
    /// Environment variable holding the store URL (for URLs with a password).
    pub store_env: Option<String>,
    #[serde(default = "default_argon2_memory")]
    pub argon2_memory: String,
    #[serde(default = "default_argon2_iterations")]
    pub argon2_iterations: u32,
    #[serde(default = "default_argon2_parallelism")]
    pub argon2_parallelism: u32,
    /// Password hashes computed at once (default: one per CPU).
    pub max_concurrent_hashes: Option<usize>,
    /// Logins waiting for a hashing turn; beyond them `/token` answers 503 at once.
    pub max_queued_hashes: Option<usize>,
    /// Read-only users (sidecar / GitOps deployments).
    #[serde(default, rename = "static")]
    pub static_users: Vec<UserFile>,
    /// Inserted into the store on start when the username does not exist yet.
    #[serde(default)]
    pub seed: Vec<UserFile>,
}

fn default_argon2_memory() -> String {
    "64MiB".into()
}
fn default_argon2_iterations() -> u32 {
    3
}
fn default_argon2_parallelism() -> u32 {
    4
}

/// A user declared in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserFile {
    pub username: String,
    /// argon2 PHC string (`portcullis hash-password`) or a bcrypt hash.
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One `[[clients]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFile {
    pub client_id: String,
    /// SHA-256 of the secret, hex; absent for a public client.
    pub secret_sha256: Option<String>,
    pub grants: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[registration]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistrationFile {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_registration_roles")]
    pub default_roles: Vec<String>,
    #[serde(default = "default_min_password_length")]
    pub min_password_length: usize,
}

fn default_registration_roles() -> Vec<String> {
    vec!["user".into()]
}
fn default_min_password_length() -> usize {
    12
}
