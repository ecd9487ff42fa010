//! The shape of `gateway.toml`, exactly as written by operators.
//!
//! Every struct denies unknown keys so that a typo (`lisen = ...`) is an error rather
//! than a silently ignored setting. Values stay strings here (`"15s"`, `"10MiB"`);
//! `validate.rs` turns them into the typed [`crate::config::Config`].

use serde::Deserialize;

/// `[server]`: listeners, limits, timeouts and header hygiene.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `/healthz` and `/readyz`; never expose it publicly.
    pub admin_listen: Option<String>,
    /// CIDRs (or single addresses) whose `X-Forwarded-*` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: String,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: String,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    #[serde(default = "default_shutdown_drain")]
    pub shutdown_drain: String,
    /// Tokio worker threads; 0 or absent = one per core.
    #[serde(default)]
    pub worker_threads: usize,
    /// Headers with this prefix are Portcullis' own; client copies are always removed.
    #[serde(default = "default_identity_prefix")]
    pub identity_header_prefix: String,
    #[serde(default = "default_true")]
    pub reject_underscore_headers: bool,
    #[serde(default = "default_true")]
    pub access_log: bool,
    /// Forward-auth endpoint for nginx auth_request / Traefik ForwardAuth; off if unset.
    pub forward_auth_path: Option<String>,
    /// Add X-Content-Type-Options, X-Frame-Options and Referrer-Policy to responses
    /// that lack them.
    #[serde(default)]
    pub security_headers: bool,
    /// Query parameters whose values the access log may show.
    #[serde(default)]
    pub access_log_query: Vec<String>,
    /// Write the access log to this file instead of stdout (restart to change).
    pub access_log_file: Option<String>,
    /// "daily" (default), "hourly", "minutely" or "never".
    #[serde(default = "default_rotation")]
    pub access_log_rotation: String,
    /// Application log level ("info"); RUST_LOG wins (restart to change).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// "json" (default) or "text"; PORTCULLIS_LOG_FORMAT wins.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Time a client has to send a whole request head (HTTP/1).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: String,
    /// Longest request target (path and query) accepted; longer ones get `414`.
    #[serde(default = "default_max_request_target_bytes")]
    pub max_request_target_bytes: String,
    /// Most header fields in one request; more get `431`.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Methods refused server-wide (`501`), whatever a route allows.
    #[serde(default = "default_refuse_methods")]
    pub refuse_methods: Vec<String>,
    /// Request headers always removed before a request is handled.
    #[serde(default = "default_strip_request_headers")]
    pub strip_request_headers: Vec<String>,
    /// Refuse `%25` followed by `2e`, `2f`, `5c` or `00` (double-encoded dot,
    /// slash, backslash or NUL) in paths.
    #[serde(default = "default_true")]
    pub reject_double_encoding: bool,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: default_listen(),
            admin_listen: None,
            trusted_proxies: Vec::new(),
            max_header_bytes: default_max_header_bytes(),
            max_body_bytes: default_max_body_bytes(),
            request_timeout: default_request_timeout(),
            shutdown_drain: default_shutdown_drain(),
            worker_threads: 0,
            identity_header_prefix: default_identity_prefix(),
            reject_underscore_headers: true,
            access_log: true,
            forward_auth_path: None,
            security_headers: false,
            access_log_query: Vec::new(),
            access_log_file: None,
            access_log_rotation: default_rotation(),
            log_level: default_log_level(),
            log_format: default_log_format(),
            header_read_timeout: default_header_read_timeout(),
            max_request_target_bytes: default_max_request_target_bytes(),
            max_headers: default_max_headers(),
            refuse_methods: default_refuse_methods(),
            strip_request_headers: default_strip_request_headers(),
            reject_double_encoding: true,
        }
    }
}

/// One `[[upstreams]]` entry: a base URL, or the built-in echo service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamFile {
    pub name: String,
    pub url: Option<String>,
    #[serde(default)]
    pub echo: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "default_response_timeout")]
    pub response_timeout: String,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: String,
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
}

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
    ["password", "refresh_token", "client_credentials"]
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

/// `[cors]`, or a route's `cors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorsFile {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default = "default_cors_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default = "default_cors_headers")]
    pub allow_headers: Vec<String>,
    #[serde(default = "default_cors_expose")]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "default_cors_max_age")]
    pub max_age: String,
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn default_cors_headers() -> Vec<String> {
    vec!["authorization".into(), "content-type".into()]
}
fn default_cors_expose() -> Vec<String> {
    vec!["x-request-id".into()]
}
fn default_cors_max_age() -> String {
    "10m".into()
}

/// `request_headers` / `response_headers` of a route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderTransformFile {
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub append: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// One `[rate_limits.NAME]` policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitFile {
    /// `ip`, `subject`, `client_id`, `route`, `header:NAME`, joined with `+`.
    pub key: String,
    /// `COUNT/PERIOD`, e.g. "100/1s".
    pub rate: String,
    /// Largest burst (default: COUNT).
    pub burst: Option<u32>,
    /// Keys tracked at most (default 100000).
    pub max_keys: Option<usize>,
    /// With a Redis backend: "allow" or "deny" when Redis fails (default: deny for
    /// `login` and `login_ip`, allow for the others).
    pub on_error: Option<String>,
    /// IPv6 clients keyed by this prefix (default: `[rate_limits] ipv6_prefix`, 64).
    pub ipv6_prefix: Option<u32>,
}

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

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub name: Option<String>,
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub host: Option<String>,
    pub upstream: String,
    pub strip_prefix: Option<String>,
    #[serde(default = "default_auth")]
    pub auth: String,
    /// All of these scopes are required.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// At least one of these scopes is required.
    #[serde(default)]
    pub any_scopes: Vec<String>,
    /// At least one of these roles is required.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Forward the client's `Authorization` header (removed by default).
    #[serde(default)]
    pub pass_authorization: bool,
    /// A `[rate_limits]` policy name, or "none"; absent: the `default` policy.
    pub rate_limit: Option<String>,
    /// Header changes on the way to the upstream.
    pub request_headers: Option<HeaderTransformFile>,
    /// Header changes on the upstream's response.
    pub response_headers: Option<HeaderTransformFile>,
    /// Overrides `server.request_timeout` for this route.
    pub request_timeout: Option<String>,
    /// Overrides `server.max_body_bytes` for this route.
    pub max_body_bytes: Option<String>,
    /// Replaces `[cors]` for this route.
    pub cors: Option<CorsFile>,
    /// Protocols a client may upgrade to on this route (`Upgrade`); h2c never.
    #[serde(default = "default_upgrades")]
    pub upgrades: Vec<String>,
}

fn default_rotation() -> String {
    "daily".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_format() -> String {
    "json".into()
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_header_bytes() -> String {
    "16KiB".into()
}
fn default_max_body_bytes() -> String {
    "10MiB".into()
}
fn default_request_timeout() -> String {
    "30s".into()
}
fn default_shutdown_drain() -> String {
    "10s".into()
}
fn default_identity_prefix() -> String {
    "x-auth-".into()
}
fn default_header_read_timeout() -> String {
    "10s".into()
}
fn default_max_request_target_bytes() -> String {
    "8KiB".into()
}
fn default_max_headers() -> usize {
    100
}
fn default_refuse_methods() -> Vec<String> {
    vec!["TRACE".into(), "CONNECT".into()]
}
fn default_strip_request_headers() -> Vec<String> {
    [
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ]
    .map(String::from)
    .to_vec()
}
fn default_upgrades() -> Vec<String> {
    vec!["websocket".into()]
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout() -> String {
    "2s".into()
}
fn default_response_timeout() -> String {
    "30s".into()
}
fn default_pool_idle_timeout() -> String {
    "90s".into()
}
fn default_pool_max_idle() -> usize {
    64
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
fn default_cache_max_age() -> String {
    "30s".into()
}
fn default_cache_size() -> usize {
    10_000
}
fn default_leeway() -> String {
    "60s".into()
}
fn default_auth() -> String {
    "required".into()
}
