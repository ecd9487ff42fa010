//! Configuration: `gateway.toml` → a typed, validated [`Config`].
//!
//! `file.rs` mirrors the file (serde, unknown keys refused); `validate.rs` turns it
//! into [`Config`], collecting every problem as a [`ConfigIssue`] that names the file,
//! the key and the fix (`errors.rs`). The rest of the crate only ever sees a valid
//! `Config`.

mod errors;
mod file;
pub(crate) mod units;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use std::collections::HashMap;

use http::{HeaderName, Method};
use ipnet::IpNet;

use crate::auth::api_key::ApiKeys;
use crate::auth::jwks::IssuerConfig;
use crate::auth::jwt::Verifier;
use crate::policy::matcher::{Pattern, Routable, Router};

pub use errors::{ConfigErrors, ConfigIssue};
pub use validate::parse_str;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[upstreams]]`, in file order.
    pub upstreams: Vec<Arc<Upstream>>,
    /// `[[routes]]`, ready to match requests.
    pub router: Router<Route>,
    /// `[tokens]`: verification of Portcullis' own access tokens; `None` = no key is
    /// configured, so no token can be valid.
    pub tokens: Option<Verifier>,
    /// The token service (`/token`, JWKS, …), on when `[tokens] signing_key` is set.
    pub token_service: Option<crate::token::TokenService>,
    /// `[roles]`: role → the scopes it grants.
    pub roles: HashMap<String, Vec<String>>,
    /// `[identity] claim_headers`: claim → header injected for authenticated requests.
    pub claim_headers: Vec<(String, HeaderName)>,
    /// `[[api_keys]]` and the header they come in; `None` when none is configured.
    pub api_keys: Option<ApiKeys>,
    /// `[[issuers]]`: external IdPs.
    pub issuers: Vec<IssuerConfig>,
    /// `[rate_limits]`: named policies.
    pub rate_limits: crate::ratelimit::RateLimits,
    /// `[telemetry]`: trace context and span export.
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// `[cors]`: the policy of routes without their own.
    pub cors: Option<Arc<crate::middleware::cors::CorsPolicy>>,
}

/// `[server]`, typed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The proxy listener (`listen`).
    pub listen: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`), if any.
    pub admin_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest total size of the request headers (`431`).
    pub max_header_bytes: usize,
    /// Largest request body (`413`); a route may override it.
    pub max_body_bytes: u64,
    /// Deadline until the response headers (`504`); a route may override it.
    pub request_timeout: Duration,
    /// How long in-flight requests may finish on shutdown.
    pub shutdown_drain: Duration,
    /// On SIGTERM: how long `/readyz` answers `503` while the listeners keep serving,
    /// before they stop accepting (load balancers remove the endpoint first).
    pub shutdown_delay: Duration,
    /// Worker threads (one runtime each); `None`: one per CPU.
    pub worker_threads: Option<usize>,
    /// Lower-case, ends with `-`.
    pub identity_header_prefix: String,
    /// `400` for header names with `_` or `.` (some servers read them as `-`).
    pub reject_underscore_headers: bool,
    /// Whether the access log is written.
    pub access_log: bool,
    /// Canonical path of the forward-auth endpoint, if enabled.
    pub forward_auth_path: Option<String>,
    /// Add `nosniff`, `X-Frame-Options` and `Referrer-Policy` to responses lacking them.
    pub security_headers: bool,
    /// Query parameters whose values the access log shows.
    pub access_log_query: Vec<String>,
    /// Access log file (stdout when `None`), and its rotation.
    pub access_log_file: Option<PathBuf>,
    /// "daily", "hourly", "minutely" or "never".
    pub access_log_rotation: String,
    /// Bytes of access lines the writer may queue; beyond, lines are dropped (counted).
    pub access_log_buffer: u64,
    /// Application logs: level (an EnvFilter directive) and "json" or "text".
    pub log_level: String,
    /// "json" or "text".
    pub log_format: String,
    /// HTTP/1 request heads must arrive within this time (`408`).
    pub header_read_timeout: Duration,
    /// Longest request target (`414`).
    pub max_request_target_bytes: usize,
    /// Most header fields per request (`431`).
    pub max_headers: usize,
    /// Refused server-wide (`501`).
    pub refuse_methods: Vec<Method>,
    /// Removed from every request before it is handled.
    pub strip_request_headers: Vec<http::HeaderName>,
    /// `%252e` and friends refused in paths.
    pub reject_double_encoding: bool,
    /// `[server.tls]`: TLS on the public listener.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Resource bounds of the listeners (docs/configuration.md, "Resource bounds").
    pub bounds: Bounds,
}

/// The listeners' resource bounds; each has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// Client connections per worker; accepting pauses at the cap.
    pub max_connections_per_worker: usize,
    /// Requests in flight in the gateway; more get `503` + `Retry-After`.
    pub max_in_flight: usize,
    /// No request for this long: the connection is closed (HTTP/2 with GOAWAY).
    pub idle_timeout: Duration,
    /// A response write without progress for this long closes the connection.
    pub write_timeout: Duration,
    /// TCP keepalive idle time (`None`: off).
    pub tcp_keepalive: Option<Duration>,
    /// HTTP/2 PING interval (`None`: off) and the time its answer may take.
    pub http2_keepalive_interval: Option<Duration>,
    pub http2_keepalive_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Upgraded connections open at once; one more upgrade gets `503`.
    pub max_tunnels: usize,
    /// A tunnel idle (no byte either way) for this long is closed.
    pub tunnel_idle_timeout: Duration,
}

/// Where an upstream's requests go.
#[derive(Debug, Clone)]
pub enum UpstreamTarget {
    /// Answered in-process with a JSON description of the request it received.
    Echo,
    /// An HTTP server: scheme, authority and an optional base path (no trailing `/`).
    Http {
        /// The URL's scheme (`http`).
        scheme: Scheme,
        /// The URL's `host[:port]`.
        authority: Authority,
        /// `authority` as a `Host` header value.
        host_header: http::HeaderValue,
        /// `host:port` to connect to: the URL's port, else the scheme's default.
        connect_to: String,
        /// Path prefix for every forwarded request (no trailing `/`).
        base_path: String,
    },
}

/// One `[[upstreams]]` entry, typed.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its unique name, as routes refer to it.
    pub name: String,
    /// Where its requests go.
    pub target: UpstreamTarget,
    /// Connect deadline (`502`).
    pub connect_timeout: Duration,
    /// Deadline for the response head (`504`).
    pub response_timeout: Duration,
    /// Forward the client's `Host` instead of the upstream's.
    pub preserve_host: bool,
    /// How long an idle keep-alive connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle keep-alive connections kept.
    pub pool_max_idle_per_host: usize,
    /// Most connections per worker; a request waits `pool_wait_timeout` for one.
    pub max_connections: usize,
    pub pool_wait_timeout: Duration,
    /// `https://`: how the upstream is verified and what is presented to it.
    pub tls: Option<crate::proxy::connect::UpstreamTls>,
    /// Speak HTTP/2 (ALPN over TLS, prior knowledge over plain TCP).
    pub http2: bool,
}

/// Whether a route needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Public: no token needed, none checked.
    None,
    /// A valid token is required (the default).
    Required,
    /// A token is checked when present; requests without one pass anonymously.
    Optional,
}

/// One `[[routes]]` entry, typed.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its name (the path pattern when unnamed), in logs and metrics.
    pub name: String,
    /// The canonical path pattern it matches.
    pub pattern: Pattern,
    /// Methods it matches; `None`: every method.
    pub methods: Option<Vec<Method>>,
    /// Lower-case, without port.
    pub host: Option<String>,
    /// Where its requests are forwarded.
    pub upstream: Arc<Upstream>,
    /// Leading path segments removed before forwarding.
    pub strip_prefix: Option<String>,
    /// Whether a token is needed.
    pub auth: AuthMode,
    /// Every one of these scopes is required.
    pub scopes: Vec<String>,
    /// At least one of these scopes is required (when not empty).
    pub any_scopes: Vec<String>,
    /// At least one of these roles is required (when not empty).
    pub roles: Vec<String>,
    /// Whether the client's `Authorization` header reaches the upstream.
    pub pass_authorization: bool,
    /// `[rate_limits]` policy by name, `"none"`, or `None` for the `default` policy.
    pub rate_limit: Option<String>,
    /// Header changes on the way to the upstream.
    pub request_headers: Option<Arc<crate::middleware::transform::HeaderTransform>>,
    /// Header changes on the way back to the client.
    pub response_headers: Option<Arc<crate::middleware::transform::HeaderTransform>>,
    /// Overrides `server.request_timeout`.
    pub request_timeout: Option<Duration>,
    /// Overrides `server.max_body_bytes`.
    pub max_body_bytes: Option<u64>,
    /// Replaces `[cors]` for this route.
    pub cors: Option<Arc<crate::middleware::cors::CorsPolicy>>,
    /// Lower-case protocol names a client may `Upgrade` to here (never `h2c`).
    pub upgrades: Vec<String>,
    /// A verified TLS client certificate is required (with one of these SANs, when
    /// not empty).
    pub client_cert: Option<Vec<String>>,
}

impl Routable for Route {
    fn pattern(&self) -> &Pattern {
        &self.pattern
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: path.to_path_buf(),
            issues: vec![ConfigIssue {
                key: "(file)".into(),
                problem: format!("cannot read the file: {e}"),
                fix: "pass an existing, readable file with --config or PORTCULLIS_CONFIG".into(),
            }],
        })?;
        parse_str(&text, path)
    }

    /// The upstream of that name.
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

impl Route {
    /// A route to an echo upstream with the given pattern and policy, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(
        pattern: &str,
        strip_prefix: Option<&str>,
        scopes: &[&str],
        any_scopes: &[&str],
        roles: &[&str],
    ) -> Route {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Route {
            name: pattern.to_string(),
            pattern: Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}")),
            methods: None,
            host: None,
            upstream: Arc::new(Upstream {
                name: "echo".into(),
                target: UpstreamTarget::Echo,
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(1),
                preserve_host: false,
                pool_idle_timeout: Duration::from_secs(1),
                pool_max_idle_per_host: 1,
                max_connections: 1,
                pool_wait_timeout: Duration::from_secs(1),
                tls: None,
                http2: false,
            }),
            strip_prefix: strip_prefix.map(str::to_string),
            auth: AuthMode::Required,
            scopes: v(scopes),
            any_scopes: v(any_scopes),
            roles: v(roles),
            pass_authorization: false,
            upgrades: vec!["websocket".into()],
            client_cert: None,
            rate_limit: None,
            request_headers: None,
            response_headers: None,
            request_timeout: None,
            max_body_bytes: None,
            cors: None,
        }
    }
}
