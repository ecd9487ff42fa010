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
    /// Where `/authorize` may send codes (exact match; loopback ports may vary).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where `/logout` may send the browser back.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Ask the user before the first code for this client (false: first-party).
    #[serde(default = "super::default_true")]
    pub require_consent: bool,
    /// PKCE (S256) on every authorization request; only a confidential client may
    /// turn it off.
    #[serde(default = "super::default_true")]
    pub require_pkce: bool,
}

/// `[login]`: the sign-in pages, sessions and external providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginFile {
    /// Shown as the pages' title.
    #[serde(default = "default_login_title")]
    pub title: String,
    /// The pages' accent colour (`#rgb` or `#rrggbb`).
    #[serde(default = "default_accent")]
    pub accent_color: String,
    /// An image shown above the forms (an https URL or a path on this gateway).
    pub logo_url: Option<String>,
    /// How long a browser stays signed in.
    #[serde(default = "default_session_ttl")]
    pub session_ttl: String,
    /// How long an authorization code may wait to be redeemed.
    #[serde(default = "default_code_ttl")]
    pub code_ttl: String,
    /// Serve the demo single-page app at `/demo/` for this public client.
    pub demo_client: Option<String>,
    /// External OpenID Connect providers offered on the login page.
    #[serde(default)]
    pub providers: Vec<ProviderFile>,
}

impl Default for LoginFile {
    fn default() -> Self {
        LoginFile {
            title: default_login_title(),
            accent_color: default_accent(),
            logo_url: None,
            session_ttl: default_session_ttl(),
            code_ttl: default_code_ttl(),
            demo_client: None,
            providers: Vec::new(),
        }
    }
}

fn default_login_title() -> String {
    "Sign in".into()
}
fn default_accent() -> String {
    "#2f5bd3".into()
}
fn default_session_ttl() -> String {
    "1h".into()
}
fn default_code_ttl() -> String {
    "60s".into()
}

/// One `[[login.providers]]` entry: an OpenID Connect provider users may sign in with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderFile {
    /// In URLs (`/login/{name}`) and stored identities: letters, digits, `-`, `_`.
    pub name: String,
    /// On the button ("Sign in with …"); defaults to the name.
    pub display_name: Option<String>,
    /// Its issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// File holding the client secret.
    pub client_secret_file: Option<String>,
    #[serde(default = "default_provider_scopes")]
    pub scopes: Vec<String>,
    /// A claim with the user's groups or roles at the provider, mapped by `role_map`.
    pub roles_claim: Option<String>,
    /// Provider value → local role.
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, String>,
    /// Roles every user created by this provider gets.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// Link to an existing local user with the same verified email.
    #[serde(default)]
    pub link_by_email: bool,
    /// Create a local user at the first sign-in (else only linked users get in).
    #[serde(default = "super::default_true")]
    pub create_users: bool,
}

fn default_provider_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
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
