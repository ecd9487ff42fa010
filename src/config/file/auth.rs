//! How callers are authenticated, as written: `[tokens]` (Portcullis' own tokens,
//! with the token service's issuance settings), `[[tokens.keys]]`, `[[issuers]]`,
//! `[identity]` and `[[api_keys]]`.

use serde::Deserialize;

use super::default_true;

/// `[tokens]`: how Portcullis' own access tokens are verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensFile {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway: String,
    pub max_lifetime: Option<String>,
    /// `iss` must equal `issuer` (default). Turn off only for tokens minted elsewhere.
    #[serde(default = "default_true")]
    pub verify_issuer: bool,
    /// `aud` must name one of `audiences` (default).
    #[serde(default = "default_true")]
    pub verify_audience: bool,
    /// Where scopes are: one claim, or several tried in order (first present wins).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: OneOrMany,
    /// Where roles are.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Whether `[roles]` adds the scopes of a token's roles (never for `at+jwt`).
    #[serde(default = "default_true")]
    pub expand_roles: bool,
    /// How long a verified token is served from the cache; "0s" turns it off.
    #[serde(default = "default_cache_max_age")]
    pub cache_max_age: String,
    /// Verified tokens cached per worker.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    /// The `kid` that signs issued tokens; set, it turns the token service on.
    pub signing_key: Option<String>,
    #[serde(default = "default_access_ttl")]
    pub access_ttl: String,
    #[serde(default = "default_refresh_ttl")]
    pub refresh_ttl: String,
    /// "narrow" (default) or "reject".
    #[serde(default = "default_scope_policy")]
    pub scope_policy: String,
    /// Public client used when a token request authenticates no client.
    pub default_client: Option<String>,
    /// Failed attempts on `/token` (password grant), and attempts on `/register`, per
    /// client IP + username (unless `[rate_limits.login]` is configured).
    #[serde(default = "default_login_rate")]
    pub login_rate: String,
    /// Failed `/token` password attempts per client IP, whatever the username (unless
    /// `[rate_limits.login_ip]` is configured).
    #[serde(default = "default_login_ip_rate")]
    pub login_ip_rate: String,
    /// Keys tracked by each of those two limiters.
    #[serde(default = "default_login_rate_keys")]
    pub login_rate_max_keys: usize,
    /// Path prefix for /token, /revoke, /register.
    #[serde(default)]
    pub endpoint_prefix: String,
    /// Refuse a /token request without grant_type. Off by default: a form with
    /// username and password is then the password grant, as FastAPI's
    /// OAuth2PasswordRequestForm (grant_type optional) accepts it.
    #[serde(default)]
    pub require_grant_type: bool,
    /// The grants `/token` serves at all; a client may list only these.
    #[serde(default = "default_grants")]
    pub grants: Vec<String>,
}

fn default_grants() -> Vec<String> {
    [
        "authorization_code",
        "password",
        "refresh_token",
        "client_credentials",
    ]
    .map(String::from)
    .to_vec()
}

fn default_access_ttl() -> String {
    "15m".into()
}
fn default_refresh_ttl() -> String {
    "7d".into()
}
fn default_scope_policy() -> String {
    "narrow".into()
}
fn default_login_rate() -> String {
    "5/5s".into()
}
fn default_login_ip_rate() -> String {
    "20/1m".into()
}
fn default_login_rate_keys() -> usize {
    100_000
}

/// One `[[tokens.keys]]` entry: a verification key, pinned to one algorithm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    pub kid: String,
    pub alg: String,
    /// HS256: name of an environment variable holding the secret.
    pub secret_env: Option<String>,
    /// HS256: file holding the secret.
    pub secret_file: Option<String>,
    /// RS256 / ES256 / EdDSA: PEM file with the public key.
    pub public_key: Option<String>,
    /// RS256 / ES256 / EdDSA: PEM file with the private key (signs; its public half
    /// verifies and is published).
    pub private_key: Option<String>,
    /// ES256 / EdDSA: create `private_key` with a new key when the file is missing.
    #[serde(default)]
    pub create_if_missing: bool,
}

/// One `[[issuers]]` entry: an external IdP whose tokens are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssuerFile {
    pub issuer: String,
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub discovery: bool,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default = "default_issuer_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway: String,
    pub max_lifetime: Option<String>,
    #[serde(default = "default_scope_claim")]
    pub scope_claim: OneOrMany,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default = "default_true")]
    pub expand_roles: bool,
    #[serde(default = "default_min_refresh")]
    pub min_refresh: String,
    #[serde(default = "default_max_refresh")]
    pub max_refresh: String,
    #[serde(default = "default_kid_cooldown")]
    pub unknown_kid_cooldown: String,
}

fn default_issuer_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
/// A string, or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

fn default_scope_claim() -> OneOrMany {
    OneOrMany::Many(vec!["scope".into(), "scp".into()])
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_min_refresh() -> String {
    "1m".into()
}
fn default_max_refresh() -> String {
    "1h".into()
}
fn default_kid_cooldown() -> String {
    "30s".into()
}

/// `[identity]`: what the upstream learns about the caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityFile {
    /// Claim name → header name (which must use the identity prefix).
    #[serde(default)]
    pub claim_headers: std::collections::BTreeMap<String, String>,
    /// Header that carries API keys.
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
}

impl Default for IdentityFile {
    fn default() -> Self {
        IdentityFile {
            claim_headers: Default::default(),
            api_key_header: default_api_key_header(),
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

/// One `[[api_keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeyFile {
    /// SHA-256 of the key, hex (`portcullis api-key hash`).
    pub sha256: String,
    pub subject: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

fn default_cache_max_age() -> String {
    "30s".into()
}
fn default_cache_size() -> usize {
    10_000
}
fn default_leeway() -> String {
    "60s".into()
}
