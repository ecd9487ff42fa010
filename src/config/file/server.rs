//! `[server]` as written: listeners, limits, timeouts, header hygiene and logging,
//! with the defaults every key has.

use serde::Deserialize;

use super::default_true;

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
    #[serde(default = "default_shutdown_delay")]
    pub shutdown_delay: String,
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
    /// Most bytes of access lines queued for the writer; more are dropped and counted.
    #[serde(default = "default_access_log_buffer")]
    pub access_log_buffer: String,
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
    /// `[server.tls]`: the public listener speaks TLS.
    pub tls: Option<TlsFile>,
    /// Client connections one worker holds at most; accepting pauses at the cap.
    #[serde(default = "default_max_connections")]
    pub max_connections_per_worker: usize,
    /// Requests in flight in the whole gateway; more are answered `503`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// A connection with no request for this long is closed (HTTP/2: GOAWAY).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    /// A response write that makes no progress for this long closes the connection.
    #[serde(default = "default_write_timeout")]
    pub write_timeout: String,
    /// TCP keepalive probes on client connections after this much silence ("0s": off).
    #[serde(default = "default_tcp_keepalive")]
    pub tcp_keepalive: String,
    /// HTTP/2 PING every this long on a connection ("0s": off); no answer within
    /// `http2_keepalive_timeout` closes it.
    #[serde(default = "default_h2_keepalive")]
    pub http2_keepalive_interval: String,
    #[serde(default = "default_h2_keepalive_timeout")]
    pub http2_keepalive_timeout: String,
    /// Upgraded connections (WebSocket) open at once; one more upgrade gets `503`.
    #[serde(default = "default_max_tunnels")]
    pub max_tunnels: usize,
    /// A tunnel with no byte either way for this long is closed.
    #[serde(default = "default_tunnel_idle")]
    pub tunnel_idle_timeout: String,
    /// Concurrent HTTP/2 streams per connection.
    #[serde(default = "default_h2_streams")]
    pub http2_max_concurrent_streams: u32,
}

fn default_max_tunnels() -> usize {
    10_000
}
fn default_tunnel_idle() -> String {
    "300s".into()
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_in_flight() -> usize {
    10_000
}
fn default_idle_timeout() -> String {
    "60s".into()
}
fn default_write_timeout() -> String {
    "30s".into()
}
fn default_tcp_keepalive() -> String {
    "60s".into()
}
fn default_h2_keepalive() -> String {
    "30s".into()
}
fn default_h2_keepalive_timeout() -> String {
    "10s".into()
}
fn default_h2_streams() -> u32 {
    100
}

/// `[telemetry]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetryFile {
    /// Whose `traceparent` is continued: "trusted" (default), "any" or "off".
    #[serde(default = "default_traceparent")]
    pub traceparent: String,
    /// OTLP/HTTP traces endpoint, e.g. "http://127.0.0.1:4318/v1/traces".
    pub otlp_endpoint: Option<String>,
    #[serde(default = "default_service_name")]
    pub service_name: String,
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

fn default_traceparent() -> String {
    "trusted".into()
}
fn default_service_name() -> String {
    "portcullis".into()
}
fn default_sample_ratio() -> f64 {
    1.0
}

/// `[server.tls]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// PEM certificate chain (leaf first).
    pub cert: String,
    /// PEM private key (PKCS#8, RSA or EC).
    pub key: String,
    /// PEM CA certificates for client certificates.
    pub client_ca: Option<String>,
    /// "none", "optional" or "required"; with `client_ca` the default is "required".
    pub client_auth: Option<String>,
    /// "1.2" (default) or "1.3".
    #[serde(default = "default_min_version")]
    pub min_version: String,
    /// `Strict-Transport-Security` max-age, e.g. "365d"; off when absent.
    pub hsts: Option<String>,
    #[serde(default)]
    pub hsts_include_subdomains: bool,
    /// A plain-HTTP listener that answers `308` to the HTTPS URL.
    pub redirect_listen: Option<String>,
    /// How often the files are checked for a change ("0s": only on reload).
    #[serde(default = "default_watch_interval")]
    pub watch_interval: String,
}

fn default_min_version() -> String {
    "1.2".into()
}
fn default_watch_interval() -> String {
    "10s".into()
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
            shutdown_delay: default_shutdown_delay(),
            worker_threads: 0,
            identity_header_prefix: default_identity_prefix(),
            reject_underscore_headers: true,
            access_log: true,
            forward_auth_path: None,
            security_headers: false,
            access_log_query: Vec::new(),
            access_log_file: None,
            access_log_rotation: default_rotation(),
            access_log_buffer: default_access_log_buffer(),
            log_level: default_log_level(),
            log_format: default_log_format(),
            header_read_timeout: default_header_read_timeout(),
            max_request_target_bytes: default_max_request_target_bytes(),
            max_headers: default_max_headers(),
            refuse_methods: default_refuse_methods(),
            strip_request_headers: default_strip_request_headers(),
            reject_double_encoding: true,
            tls: None,
            max_connections_per_worker: default_max_connections(),
            max_in_flight: default_max_in_flight(),
            idle_timeout: default_idle_timeout(),
            write_timeout: default_write_timeout(),
            tcp_keepalive: default_tcp_keepalive(),
            http2_keepalive_interval: default_h2_keepalive(),
            http2_keepalive_timeout: default_h2_keepalive_timeout(),
            http2_max_concurrent_streams: default_h2_streams(),
            max_tunnels: default_max_tunnels(),
            tunnel_idle_timeout: default_tunnel_idle(),
        }
    }
}

fn default_access_log_buffer() -> String {
    "64MiB".into()
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
fn default_shutdown_delay() -> String {
    "5s".into()
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
