//! `[[upstreams]]` and `[[routes]]` as written, with what a route carries: header
//! transforms, a CORS policy (also the global `[cors]`) and the name of a
//! `[rate_limits.NAME]` policy (whose entries are here too).

use serde::Deserialize;

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
    /// Connections one worker opens to this upstream at most (busy and idle).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a request waits for a connection at the cap before `503`.
    #[serde(default = "default_pool_wait")]
    pub pool_wait_timeout: String,
    /// `https://` upstreams: PEM CA certificates to trust instead of the webpki roots.
    pub ca_file: Option<String>,
    /// `https://` upstreams: the server name to send and verify (default: the URL's host).
    pub sni: Option<String>,
    /// `https://` upstreams: a client certificate chain and key (mutual TLS).
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// HTTP/2: offered through ALPN to `https://` upstreams, spoken with prior
    /// knowledge (h2c) to `http://` ones.
    #[serde(default)]
    pub http2: bool,
}

fn default_max_connections() -> usize {
    1024
}
fn default_pool_wait() -> String {
    "2s".into()
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
    /// "required": only clients with a verified TLS client certificate.
    pub client_cert: Option<String>,
    /// The certificate must carry one of these subject alternative names
    /// (`"DNS:…"`, `"URI:…"`, `"email:…"`, `"IP:…"`); implies `client_cert`.
    #[serde(default)]
    pub client_cert_sans: Vec<String>,
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

fn default_upgrades() -> Vec<String> {
    vec!["websocket".into()]
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
fn default_auth() -> String {
    "required".into()
}
