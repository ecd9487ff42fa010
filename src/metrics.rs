//! Prometheus metrics, served on the admin listener at `GET /metrics`
//! (OpenMetrics text, which Prometheus scrapes natively).
//!
//! Names follow the OpenTelemetry HTTP semantic conventions in base units
//! (`http.server.request.duration` → `http_server_request_duration_seconds`), and
//! Portcullis' own are prefixed `portcullis_`. Every label value comes from the
//! configuration or a closed set — route and upstream names, issuers, policy names,
//! a method out of the standard ones (else `_OTHER`), a status code, a reason code —
//! never from a path, subject, client id or other unbounded input.
//!
//! The metrics belong to the process (one gateway per process in production): a
//! process-wide [`metrics()`] is recorded into from every worker, the background
//! runtime and the admin listener; gauges that describe the current snapshot (pool
//! sizes) are read when scraped.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// A label value that is either a configured name (shared, never copied per request)
/// or a fixed one; equal when the text is.
#[derive(Debug, Clone)]
pub enum Name {
    /// A name from the configuration (a route, an upstream).
    Configured(Arc<str>),
    /// A fixed name (an own endpoint, `""` for none).
    Fixed(&'static str),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Configured(s) => s,
            Name::Fixed(s) => s,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Name {}
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}
impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}
impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// `http_server_request_duration_seconds`' labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServerLabels {
    pub http_route: Name,
    pub http_request_method: &'static str,
    pub http_response_status_code: u16,
}

/// `http_client_request_duration_seconds`' labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClientLabels {
    pub upstream: Name,
    pub http_request_method: &'static str,
    pub http_response_status_code: u16,
}

/// Two labels from closed sets or the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant_type: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: Name,
    pub decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct IssuerResult {
    pub issuer: String,
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct IssuerLabel {
    pub issuer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamError {
    pub upstream: Name,
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamLabel {
    pub upstream: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn latency() -> Histogram {
    // OpenTelemetry's advised boundaries, with three below 5 ms for a gateway's own
    // answers.
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
        5.0, 7.5, 10.0,
    ])
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub server_duration: Histograms<ServerLabels>,
    pub server_active: Gauge,
    pub client_duration: Histograms<ClientLabels>,
    pub auth: Family<Outcome, Counter>,
    pub grants: Family<GrantLabels, Counter>,
    pub rate_limit: Family<PolicyLabels, Counter>,
    pub jwks_fetches: Family<IssuerResult, Counter>,
    pub jwks_last_success: Family<IssuerLabel, FloatGauge>,
    pub upstream_errors: Family<UpstreamError, Counter>,
    pub upstream_idle: Family<UpstreamLabel, Gauge>,
    pub open_connections: Family<ListenerLabel, Gauge>,
    pub tls_handshakes: Family<ResultLabel, Counter>,
    pub shed: Family<ResultLabel, Counter>,
    pub reloads: Family<ResultLabel, Counter>,
    pub reload_last_success: FloatGauge,
    pub access_log_dropped: Counter,
    /// `portcullis_token_cache_lookups_total{result="hit"}` and `…"miss"}`: handles
    /// on the family's two series, so the hot path adds to an atomic without a
    /// label lookup.
    pub token_cache_hit: Counter,
    pub token_cache_miss: Counter,
    token_cache: Family<ResultLabel, Counter>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            server_duration: Family::new_with_constructor(latency),
            server_active: Gauge::default(),
            client_duration: Family::new_with_constructor(latency),
            auth: Family::default(),
            grants: Family::default(),
            rate_limit: Family::default(),
            jwks_fetches: Family::default(),
            jwks_last_success: Family::default(),
            upstream_errors: Family::default(),
            upstream_idle: Family::default(),
            open_connections: Family::default(),
            tls_handshakes: Family::default(),
            shed: Family::default(),
            reloads: Family::default(),
            reload_last_success: FloatGauge::default(),
            access_log_dropped: Counter::default(),
            token_cache_hit: Counter::default(),
            token_cache_miss: Counter::default(),
            token_cache: Family::default(),
            registry: Registry::default(),
        };
        r.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests, until the response head",
            Unit::Seconds,
            m.server_duration.clone(),
        );
        r.register(
            "http_server_active_requests",
            "HTTP server requests in flight",
            m.server_active.clone(),
        );
        r.register_with_unit(
            "http_client_request_duration",
            "Duration of requests to upstreams, until the response head",
            Unit::Seconds,
            m.client_duration.clone(),
        );
        let p = r.sub_registry_with_prefix("portcullis");
        p.register(
            "auth_decisions",
            "Authentication and authorization decisions on routes, by outcome and reason",
            m.auth.clone(),
        );
        p.register(
            "token_grants",
            "Token service requests, by grant type and outcome",
            m.grants.clone(),
        );
        p.register(
            "rate_limit_decisions",
            "Rate-limit decisions, by policy and decision",
            m.rate_limit.clone(),
        );
        p.register(
            "jwks_fetches",
            "JWKS fetches of external issuers, by result",
            m.jwks_fetches.clone(),
        );
        p.register(
            "jwks_last_success_timestamp_seconds",
            "When an issuer's keys were last fetched successfully (Unix time)",
            m.jwks_last_success.clone(),
        );
        p.register(
            "upstream_errors",
            "Requests to upstreams that got no response, by kind",
            m.upstream_errors.clone(),
        );
        p.register(
            "upstream_pool_idle_connections",
            "Idle keep-alive connections to each upstream, all workers",
            m.upstream_idle.clone(),
        );
        p.register(
            "open_connections",
            "Client connections open, by listener",
            m.open_connections.clone(),
        );
        p.register(
            "tls_handshakes",
            "TLS handshakes on the public listener, by result",
            m.tls_handshakes.clone(),
        );
        p.register(
            "load_shed",
            "Requests or connections refused by a resource bound, by bound",
            m.shed.clone(),
        );
        p.register(
            "config_reloads",
            "Configuration reloads, by result",
            m.reloads.clone(),
        );
        p.register(
            "config_last_reload_success_timestamp_seconds",
            "When a configuration was last applied (Unix time; the start counts)",
            m.reload_last_success.clone(),
        );
        p.register(
            "access_log_dropped_lines",
            "Access lines dropped because the writer's queue was full",
            m.access_log_dropped.clone(),
        );
        p.register(
            "token_cache_lookups",
            "Verified-token cache lookups of Bearer tokens on routes, by result (hit, miss)",
            m.token_cache.clone(),
        );
        let token_cache_hit = m
            .token_cache
            .get_or_create(&ResultLabel { result: "hit" })
            .clone();
        let token_cache_miss = m
            .token_cache
            .get_or_create(&ResultLabel { result: "miss" })
            .clone();
        // Series of closed sets exist from the start, at zero, so that alerts on
        // them have something to read before the first event.
        for result in ["success", "failure", "timeout"] {
            drop(m.tls_handshakes.get_or_create(&ResultLabel { result }));
        }
        for result in ["success", "refused"] {
            drop(m.reloads.get_or_create(&ResultLabel { result }));
        }
        for result in ["in_flight", "connections", "tunnels"] {
            drop(m.shed.get_or_create(&ResultLabel { result }));
        }
        Metrics {
            registry: r,
            token_cache_hit,
            token_cache_miss,
            ..m
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

/// The process' metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Seconds since the Unix epoch, for timestamp gauges.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// A method as a bounded label: the standard ones, else `_OTHER` (OpenTelemetry).
pub fn method_label(m: &http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}

/// Keeps `http_server_active_requests` (or another gauge) raised while alive.
#[derive(Debug)]
pub struct Raised(&'static Gauge);

impl Raised {
    pub fn new(g: &'static Gauge) -> Raised {
        g.inc();
        Raised(g)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_equal_by_text_and_methods_are_bounded() {
        assert_eq!(Name::Configured(Arc::from("x")), Name::Fixed("x"));
        assert_eq!(method_label(&http::Method::GET), "GET");
        let odd = http::Method::from_bytes(b"PROPFIND").expect("method");
        assert_eq!(method_label(&odd), "_OTHER");
    }

    #[test]
    fn the_text_has_the_otel_names_in_base_units() {
        let m = metrics();
        m.server_duration
            .get_or_create(&ServerLabels {
                http_route: Name::Fixed("unit-test"),
                http_request_method: "GET",
                http_response_status_code: 200,
            })
            .observe(0.002);
        let text = m.encode();
        assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
        assert!(text.contains("http_server_request_duration_seconds_bucket{le=\"0.0025\",http_route=\"unit-test\",http_request_method=\"GET\",http_response_status_code=\"200\"} 1"), "{text}");
        assert!(text.contains("# TYPE portcullis_config_reloads counter"));
        assert!(text.ends_with("# EOF\n"));
    }
}
