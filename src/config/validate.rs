//! File structs → typed [`Config`], collecting every problem with its key and fix.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Uri};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::file::{
    ApiKeyFile, IdentityFile, IssuerFile, KeyFile, RouteFile, ServerFile, TokensFile, UpstreamFile,
};
use super::units::{parse_duration, parse_size};
use super::{
    AuthMode, Config, ConfigErrors, ConfigIssue, Route, ServerConfig, Upstream, UpstreamTarget,
};
use crate::auth::jwt::{decoding_key, parse_alg, ClaimRules, Verifier};
use crate::auth::principal::{ClaimMapping, ClaimPath};
use crate::policy::matcher::{Pattern, Router};
use crate::token::keys::{self, SigningKey};

const SECTIONS: &str = "server, upstreams, routes, tokens, roles, identity, api_keys, issuers, users, clients, registration, rate_limits, cors";

/// Collects issues while validating.
#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<ConfigIssue>);

impl Issues {
    pub(super) fn add(
        &mut self,
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(ConfigIssue {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    /// A duration that must be longer than zero (timeouts, lifetimes, intervals): a
    /// zero timeout would fail every request, a zero lifetime every token.
    pub(super) fn duration(&mut self, key: String, value: &str) -> Duration {
        let d = self.duration_or_zero(key.clone(), value);
        if d.is_zero() && parse_duration(value).is_ok() {
            self.add(
                key,
                format!("\"{value}\" is zero"),
                "give a duration longer than zero, e.g. \"5s\"",
            );
        }
        d
    }

    /// A duration where zero means "none" (a leeway, a cache age).
    pub(super) fn duration_or_zero(&mut self, key: String, value: &str) -> Duration {
        parse_duration(value).unwrap_or_else(|e| {
            self.add(key, format!("\"{value}\" is not a duration"), e);
            Duration::ZERO
        })
    }

    pub(super) fn size(&mut self, key: String, value: &str) -> u64 {
        parse_size(value).unwrap_or_else(|e| {
            self.add(key, format!("\"{value}\" is not a size"), e);
            0
        })
    }

    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        key: String,
        value: toml::Value,
    ) -> Option<T> {
        match value.try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string().trim().replace('\n', " ");
                self.add(
                    key,
                    msg,
                    "correct the key or value; every key is described in docs/configuration.md",
                );
                None
            }
        }
    }

    pub(super) fn array<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: toml::Value,
    ) -> Vec<Option<T>> {
        match value {
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| self.section(format!("{key}[{i}]"), v))
                .collect(),
            _ => {
                self.add(
                    key,
                    "must be an array of tables",
                    format!("write each entry as [[{key}]]"),
                );
                Vec::new()
            }
        }
    }
}

/// A table key as it is written in TOML: bare when it may be (`A-Za-z0-9_-`), quoted
/// otherwise, so that a report names `""`, `"a b"` or `"x.y"` unambiguously.
pub(super) fn key_segment(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}

/// Parses and validates configuration text; `path` is only used in messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut issues = Issues::default();
    let fail = |issues: Issues| ConfigErrors {
        file: path.to_path_buf(),
        issues: issues.0,
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            issues.add(
                "(syntax)",
                e.to_string().trim().replace('\n', " "),
                "fix the TOML syntax at the position shown",
            );
            return Err(fail(issues));
        }
    };

    let mut server_file = Some(ServerFile::default());
    let mut upstream_files = Vec::new();
    let mut route_files = Vec::new();
    let mut tokens_file: Option<TokensFile> = None;
    let mut roles_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut identity_file = Some(IdentityFile::default());
    let mut api_key_files: Vec<Option<ApiKeyFile>> = Vec::new();
    let mut issuer_files: Vec<Option<IssuerFile>> = Vec::new();
    let mut rate_limit_table: Option<toml::Value> = None;
    let mut cors_file: Option<super::file::CorsFile> = None;
    let mut service_files = super::token_service::Files {
        users: None,
        clients: Vec::new(),
        registration: None,
    };
    for (key, value) in table {
        match key.as_str() {
            "server" => server_file = issues.section("server".into(), value),
            "tokens" => tokens_file = issues.section("tokens".into(), value),
            "roles" => roles_file = issues.section("roles".into(), value).unwrap_or_default(),
            "identity" => identity_file = issues.section("identity".into(), value),
            "api_keys" => api_key_files = issues.array("api_keys", value),
            "issuers" => issuer_files = issues.array("issuers", value),
            "users" => service_files.users = issues.section("users".into(), value),
            "clients" => service_files.clients = issues.array("clients", value),
            "rate_limits" => rate_limit_table = Some(value),
            "cors" => cors_file = issues.section::<super::file::CorsFile>("cors".into(), value),
            "registration" => {
                service_files.registration = issues.section("registration".into(), value)
            }
            "upstreams" => upstream_files = issues.array("upstreams", value),
            "routes" => route_files = issues.array("routes", value),
            other => issues.add(
                key_segment(other),
                "unknown section",
                format!("known sections are: {SECTIONS}; check the spelling"),
            ),
        }
    }

    let server = server_file.map(|s| server(&mut issues, s));
    let upstreams: Vec<Arc<Upstream>> = upstreams(&mut issues, &upstream_files);
    let declared: HashSet<&str> = upstream_files
        .iter()
        .flatten()
        .map(|u| u.name.as_str())
        .collect();
    let identity_prefix = server
        .as_ref()
        .map_or("x-auth-", |s| s.identity_header_prefix.as_str())
        .to_string();
    let routes = routes(
        &mut issues,
        &route_files,
        &upstreams,
        &declared,
        &identity_prefix,
    );

    let base_dir = path.parent().unwrap_or(Path::new("."));
    let (tokens, own) = match tokens_file
        .as_ref()
        .and_then(|t| tokens(&mut issues, t, base_dir))
    {
        Some((v, own)) => (Some(v), own),
        None => (None, OwnKeys::default()),
    };
    let token_service = super::token_service::token_service(
        &mut issues,
        tokens_file.as_ref(),
        own,
        service_files,
        &roles_file,
        base_dir,
    );
    let prefix = server
        .as_ref()
        .map_or("x-auth-", |s| s.identity_header_prefix.as_str())
        .to_string();
    let api_key_header = identity_file.as_ref().map(|i| i.api_key_header.clone());
    let claim_headers = identity_file
        .map(|i| claim_headers(&mut issues, i, &prefix))
        .unwrap_or_default();
    let issuers = issuers(
        &mut issues,
        &issuer_files,
        tokens.as_ref().map(|t| t.issuer.as_str()),
    );
    let api_keys = api_keys(
        &mut issues,
        &api_key_files,
        api_key_header.as_deref().unwrap_or("x-api-key"),
    );

    let mut rate_limits = rate_limits(&mut issues, rate_limit_table, &route_files);
    if let Some(svc) = &token_service {
        rate_limits.add_login_defaults(svc.login_defaults);
    }
    let cors_policy = cors_file.and_then(|c| cors(&mut issues, "cors", &c));

    match server {
        Some(server) if issues.0.is_empty() => Ok(Config {
            source: path.to_path_buf(),
            server,
            upstreams,
            router: Router::new(routes),
            tokens,
            token_service,
            roles: roles_file.into_iter().collect(),
            claim_headers,
            api_keys,
            issuers,
            rate_limits,
            cors: cors_policy,
        }),
        _ => Err(fail(issues)),
    }
}

/// An `ipv6_prefix` value: 1 to 128 bits.
fn ipv6_prefix(issues: &mut Issues, key: &str, n: i64) -> u8 {
    match u8::try_from(n) {
        Ok(p @ 1..=128) => p,
        _ => {
            issues.add(
                key,
                "must be a prefix length from 1 to 128",
                "64 (the default) keys each IPv6 client by its /64; 128 by its address",
            );
            crate::middleware::rate_limit::DEFAULT_IPV6_PREFIX
        }
    }
}

/// `[rate_limits]`: each entry a policy; routes may only name existing ones.
fn rate_limits(
    issues: &mut Issues,
    table: Option<toml::Value>,
    routes: &[Option<RouteFile>],
) -> crate::middleware::rate_limit::RateLimits {
    use crate::middleware::rate_limit::{KeySpec, Policy, RateLimits};
    let mut out = RateLimits::default();
    let entries = match table {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            issues.add(
                "rate_limits",
                "must be a table of policies",
                "write [rate_limits.NAME] tables",
            );
            toml::Table::new()
        }
    };
    // Backend settings share the table with the policies.
    let mut entries = entries;
    let text = |issues: &mut Issues, k: &str, v: Option<toml::Value>| -> Option<String> {
        match v {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => {
                issues.add(
                    format!("rate_limits.{k}"),
                    "must be a string",
                    "e.g. \"redis://127.0.0.1:6379\"",
                );
                None
            }
        }
    };
    let backend = text(issues, "backend", entries.remove("backend"));
    let backend_env = text(issues, "backend_env", entries.remove("backend_env"));
    let timeout = text(issues, "redis_timeout", entries.remove("redis_timeout"))
        .map(|t| issues.duration("rate_limits.redis_timeout".into(), &t))
        .unwrap_or(std::time::Duration::from_millis(50));
    out.ipv6_prefix = match entries.remove("ipv6_prefix") {
        None => crate::middleware::rate_limit::DEFAULT_IPV6_PREFIX,
        Some(toml::Value::Integer(n)) => ipv6_prefix(issues, "rate_limits.ipv6_prefix", n),
        Some(_) => ipv6_prefix(issues, "rate_limits.ipv6_prefix", -1),
    };
    let url = match (backend, backend_env) {
        (Some(_), Some(_)) => {
            issues.add(
                "rate_limits.backend",
                "both backend and backend_env are set",
                "keep one",
            );
            None
        }
        (Some(u), None) => Some(u),
        (None, Some(var)) => match std::env::var(&var) {
            Ok(u) => Some(u),
            Err(_) => {
                issues.add(
                    "rate_limits.backend_env",
                    format!("environment variable {var} is not set"),
                    format!("export {var}=redis://host:6379"),
                );
                None
            }
        },
        (None, None) => None,
    };
    let redis = url.and_then(|u| {
        if u == "memory" {
            return None;
        }
        crate::middleware::rate_limit::RedisBackend::new(&u, timeout)
            .map(Arc::new)
            .map_err(|e| {
                issues.add(
                    "rate_limits.backend",
                    e,
                    "use \"memory\" (default) or \"redis://host:6379\"",
                )
            })
            .ok()
    });
    out.redis = redis.clone();
    for (name, value) in entries {
        let key = format!("rate_limits.{}", key_segment(&name));
        let Some(f) = issues.section::<super::file::RateLimitFile>(key.clone(), value) else {
            continue;
        };
        if name == "none" {
            issues.add(
                key.clone(),
                "\"none\" is reserved",
                "give the policy another name",
            );
        }
        let spec = KeySpec::parse(&f.key)
            .map_err(|e| {
                issues.add(
                    format!("{key}.key"),
                    e,
                    "e.g. key = \"ip\" or \"subject+route\"",
                )
            })
            .ok();
        let rate = f
            .rate
            .parse::<crate::ratelimit::Rate>()
            .map_err(|e| issues.add(format!("{key}.rate"), e, "e.g. rate = \"100/1s\""))
            .ok();
        if f.burst == Some(0) {
            issues.add(
                format!("{key}.burst"),
                "is 0: nothing would pass",
                "leave it out (= the rate's count) or set at least 1",
            );
        }
        if !crate::middleware::rate_limit::LOGIN_POLICIES.contains(&name.as_str())
            && spec.as_ref().is_some_and(|s| {
                s.0.contains(&crate::middleware::rate_limit::KeyPart::Username)
            })
        {
            issues.add(
                format!("{key}.key"),
                "username is only known to the login and login_ip policies",
                "use ip, subject, client_id, route or header:NAME",
            );
        }
        let on_error = match f.on_error.as_deref() {
            None => None,
            Some("allow") => Some(crate::middleware::rate_limit::OnError::Allow),
            Some("deny") => Some(crate::middleware::rate_limit::OnError::Deny),
            Some(other) => {
                issues.add(
                    format!("{key}.on_error"),
                    format!("\"{other}\" is not allow or deny"),
                    "on_error = \"allow\" or \"deny\"",
                );
                None
            }
        };
        if let (Some(spec), Some(rate)) = (spec, rate) {
            let mut policy = Policy::new(
                &name,
                spec,
                rate,
                f.burst,
                f.max_keys.unwrap_or(100_000).max(1),
            );
            if let Some(o) = on_error {
                policy.on_error = o;
            }
            policy.redis = redis.clone();
            policy.ipv6_prefix = f.ipv6_prefix.map_or(out.ipv6_prefix, |n| {
                ipv6_prefix(issues, &format!("{key}.ipv6_prefix"), i64::from(n))
            });
            out.policies.insert(name, Arc::new(policy));
        }
    }
    for (i, r) in routes.iter().enumerate() {
        if let Some(Some(name)) = r.as_ref().map(|r| r.rate_limit.as_ref()) {
            if name != "none" && !out.policies.contains_key(name) {
                let mut known: Vec<&str> = out.policies.keys().map(String::as_str).collect();
                known.sort_unstable();
                issues.add(
                    format!("routes[{i}].rate_limit"),
                    format!("no [rate_limits.{name}] policy"),
                    format!("use one of: {}, or \"none\"", known.join(", ")),
                );
            }
        }
    }
    out
}

fn server(issues: &mut Issues, s: ServerFile) -> ServerConfig {
    let addr = |issues: &mut Issues, key: &str, v: &str| -> Option<SocketAddr> {
        v.parse()
            .map_err(|_| {
                issues.add(
                    format!("server.{key}"),
                    format!("\"{v}\" is not an IP address with a port"),
                    "write it as IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
                )
            })
            .ok()
    };
    let listen = addr(issues, "listen", &s.listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let admin_listen = s
        .admin_listen
        .as_deref()
        .and_then(|a| addr(issues, "admin_listen", a));
    if admin_listen.is_some() && admin_listen == Some(listen) && listen.port() != 0 {
        issues.add(
            "server.admin_listen",
            "is the same address as server.listen",
            "give the admin listener its own port",
        );
    }
    let mut trusted_proxies = Vec::new();
    for (i, p) in s.trusted_proxies.iter().enumerate() {
        match p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => issues.add(
                format!("server.trusted_proxies[{i}]"),
                format!("\"{p}\" is not an IP address or CIDR"),
                "write e.g. \"10.0.0.0/8\" or \"192.0.2.7\"",
            ),
        }
    }
    let max_header_bytes = issues.size("server.max_header_bytes".into(), &s.max_header_bytes);
    if max_header_bytes != 0 && !(1024..=1 << 20).contains(&max_header_bytes) {
        issues.add(
            "server.max_header_bytes",
            "must be between 1KiB and 1MiB",
            "pick e.g. \"16KiB\"",
        );
    }
    let max_body_bytes = issues.size("server.max_body_bytes".into(), &s.max_body_bytes);
    let request_timeout = issues.duration("server.request_timeout".into(), &s.request_timeout);
    let shutdown_drain = issues.duration("server.shutdown_drain".into(), &s.shutdown_drain);
    let header_read_timeout =
        issues.duration("server.header_read_timeout".into(), &s.header_read_timeout);
    let max_request_target_bytes = issues.size(
        "server.max_request_target_bytes".into(),
        &s.max_request_target_bytes,
    );
    if !(256..=1 << 20).contains(&max_request_target_bytes) && max_request_target_bytes != 0 {
        issues.add(
            "server.max_request_target_bytes",
            "must be between 256B and 1MiB",
            "pick e.g. \"8KiB\"",
        );
    }
    if !(8..=10_000).contains(&s.max_headers) {
        issues.add(
            "server.max_headers",
            format!("{} is out of range", s.max_headers),
            "pick a count between 8 and 10000, e.g. 100",
        );
    }
    let mut refuse_methods = Vec::new();
    for (i, m) in s.refuse_methods.iter().enumerate() {
        match http::Method::from_bytes(m.as_bytes()) {
            Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => refuse_methods.push(method),
            _ => issues.add(
                format!("server.refuse_methods[{i}]"),
                format!("\"{m}\" is not a method name"),
                "write methods in upper case, e.g. \"TRACE\"",
            ),
        }
    }
    let mut strip_request_headers = Vec::new();
    for (i, h) in s.strip_request_headers.iter().enumerate() {
        match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) if name != http::header::HOST => strip_request_headers.push(name),
            _ => issues.add(
                format!("server.strip_request_headers[{i}]"),
                format!("\"{h}\" is not a header name that can be removed"),
                "write a header name such as \"X-Original-URL\" (Host cannot be removed)",
            ),
        }
    }
    let prefix = s.identity_header_prefix.to_ascii_lowercase();
    if prefix.len() < 2
        || !prefix.ends_with('-')
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        issues.add(
            "server.identity_header_prefix",
            format!(
                "\"{}\" is not a usable header prefix",
                s.identity_header_prefix
            ),
            "use letters, digits and '-', ending with '-', e.g. \"x-auth-\"",
        );
    }
    if !["daily", "hourly", "minutely", "never"].contains(&s.access_log_rotation.as_str()) {
        issues.add(
            "server.access_log_rotation",
            format!("\"{}\" is not a rotation", s.access_log_rotation),
            "use \"daily\", \"hourly\", \"minutely\" or \"never\"",
        );
    }
    if !["json", "text"].contains(&s.log_format.as_str()) {
        issues.add(
            "server.log_format",
            format!("\"{}\" is not a format", s.log_format),
            "use \"json\" or \"text\"",
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&s.log_level).is_err() {
        issues.add(
            "server.log_level",
            format!("\"{}\" is not a level", s.log_level),
            "use error, warn, info, debug or trace (or a RUST_LOG-style directive)",
        );
    }
    if let Some(f) = &s.access_log_file {
        let p = std::path::Path::new(f);
        if p.file_name().is_none()
            || p.parent()
                .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            issues.add(
                "server.access_log_file",
                format!("\"{f}\" is not a file in an existing directory"),
                "create the directory, or fix the path",
            );
        }
    }
    if let Some(p) = &s.forward_auth_path {
        if crate::policy::path::canonicalize(p).ok().as_deref() != Some(p.as_str()) || p == "/" {
            issues.add(
                "server.forward_auth_path",
                format!("\"{p}\" is not a canonical path"),
                "use a path of its own such as \"/_portcullis/auth\"",
            );
        }
    }
    ServerConfig {
        forward_auth_path: s.forward_auth_path.clone(),
        security_headers: s.security_headers,
        access_log_query: s.access_log_query.clone(),
        access_log_file: s.access_log_file.as_ref().map(std::path::PathBuf::from),
        access_log_rotation: s.access_log_rotation.clone(),
        log_level: s.log_level.clone(),
        log_format: s.log_format.clone(),
        listen,
        admin_listen,
        trusted_proxies,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_body_bytes,
        request_timeout,
        shutdown_drain,
        worker_threads: (s.worker_threads > 0).then_some(s.worker_threads),
        identity_header_prefix: prefix,
        reject_underscore_headers: s.reject_underscore_headers,
        access_log: s.access_log,
        header_read_timeout,
        max_request_target_bytes: usize::try_from(max_request_target_bytes).unwrap_or(usize::MAX),
        max_headers: s.max_headers,
        refuse_methods,
        strip_request_headers,
        reject_double_encoding: s.reject_double_encoding,
    }
}

/// A route's `upgrades`: protocol names (RFC 9110 §7.8 tokens), lower-cased; `h2c`
/// is refused (an h2c upgrade would tunnel HTTP/2 past every route policy).
fn upgrades(issues: &mut Issues, key: &str, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let lower = n.to_ascii_lowercase();
        let token = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        if !token {
            issues.add(
                format!("{key}[{i}]"),
                format!("\"{n}\" is not a protocol name"),
                "write a protocol token such as \"websocket\"",
            );
        } else if lower == "h2c" || lower.starts_with("h2c/") {
            issues.add(
                format!("{key}[{i}]"),
                "h2c upgrades are never forwarded",
                "remove \"h2c\"; use HTTP/2 with prior knowledge to reach the gateway instead",
            );
        } else {
            out.push(lower);
        }
    }
    out
}

fn upstreams(issues: &mut Issues, files: &[Option<UpstreamFile>]) -> Vec<Arc<Upstream>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, u) in files.iter().enumerate() {
        let Some(u) = u else { continue };
        let key = |k: &str| format!("upstreams[{i}].{k}");
        if u.name.trim().is_empty() {
            issues.add(key("name"), "is empty", "give every upstream a unique name");
        } else if !seen.insert(u.name.clone()) {
            issues.add(
                key("name"),
                format!("\"{}\" is used by another upstream", u.name),
                "give every upstream a unique name",
            );
        }
        let target = match (&u.url, u.echo) {
            (Some(_), true) => {
                issues.add(
                    key("url"),
                    "both url and echo = true are set",
                    "keep url for a real server, or echo = true for the built-in echo service",
                );
                None
            }
            (None, false) => {
                issues.add(
                    key("url"),
                    "missing",
                    "set url = \"http://host:port\", or echo = true for the built-in echo service",
                );
                None
            }
            (None, true) => Some(UpstreamTarget::Echo),
            (Some(url), false) => upstream_url(issues, key("url"), url),
        };
        let connect_timeout = issues.duration(key("connect_timeout"), &u.connect_timeout);
        let response_timeout = issues.duration(key("response_timeout"), &u.response_timeout);
        let pool_idle_timeout = issues.duration(key("pool_idle_timeout"), &u.pool_idle_timeout);
        if let Some(target) = target {
            out.push(Arc::new(Upstream {
                name: u.name.clone(),
                target,
                connect_timeout,
                response_timeout,
                preserve_host: u.preserve_host,
                pool_idle_timeout,
                pool_max_idle_per_host: u.pool_max_idle_per_host,
            }));
        }
    }
    out
}

fn upstream_url(issues: &mut Issues, key: String, url: &str) -> Option<UpstreamTarget> {
    let uri: Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            issues.add(
                key,
                format!("\"{url}\" is not a URL: {e}"),
                "write e.g. \"http://127.0.0.1:9000\"",
            );
            return None;
        }
    };
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        issues.add(
            key,
            format!("\"{url}\" has no scheme or host"),
            "write e.g. \"http://127.0.0.1:9000\"",
        );
        return None;
    };
    if scheme.as_str() != "http" {
        issues.add(
            key,
            format!("scheme \"{scheme}\" is not supported"),
            "use an http:// upstream (TLS to upstreams is not built yet)",
        );
        return None;
    }
    if uri.query().is_some() || authority.as_str().contains('@') {
        issues.add(
            key,
            format!("\"{url}\" carries a query or user info"),
            "give only scheme, host, port and an optional base path",
        );
        return None;
    }
    let Ok(host_header) = http::HeaderValue::from_str(authority.as_str()) else {
        issues.add(
            key,
            format!("\"{url}\" has an unusable host"),
            "write e.g. \"http://127.0.0.1:9000\"",
        );
        return None;
    };
    let port = authority.port_u16().unwrap_or(80);
    let connect_to = format!("{}:{port}", authority.host());
    Some(UpstreamTarget::Http {
        scheme: scheme.clone(),
        authority: authority.clone(),
        host_header,
        connect_to,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

/// A CORS policy (`[cors]` or a route's `cors`).
fn cors(
    issues: &mut Issues,
    key: &str,
    f: &super::file::CorsFile,
) -> Option<Arc<crate::middleware::cors::CorsPolicy>> {
    use crate::middleware::cors::{CorsPolicy, OriginRule};
    let mut origins = Vec::new();
    for (i, o) in f.allow_origins.iter().enumerate() {
        match OriginRule::parse(o) {
            Ok(r) => origins.push(r),
            Err(e) => issues.add(
                format!("{key}.allow_origins[{i}]"),
                e,
                "e.g. \"http://localhost:3000\" or \"https://*.example.com\"",
            ),
        }
    }
    if f.allow_credentials && origins.contains(&OriginRule::Any) {
        issues.add(
            format!("{key}.allow_origins"),
            "\"*\" together with allow_credentials = true would let any site act with the user's credentials",
            "list the origins, or turn allow_credentials off",
        );
    }
    let mut methods = Vec::new();
    for m in &f.allow_methods {
        match Method::from_bytes(m.as_bytes()) {
            Ok(method) if m.to_ascii_uppercase() == *m => methods.push(method),
            _ => issues.add(
                format!("{key}.allow_methods"),
                format!("\"{m}\" is not an upper-case method"),
                "e.g. [\"GET\", \"POST\"]",
            ),
        }
    }
    for (field, list) in [
        ("allow_headers", &f.allow_headers),
        ("expose_headers", &f.expose_headers),
    ] {
        for h in list {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                issues.add(
                    format!("{key}.{field}"),
                    format!("\"{h}\" is not a header name"),
                    "use names like \"authorization\"",
                );
            }
        }
    }
    let max_age = issues.duration_or_zero(format!("{key}.max_age"), &f.max_age);
    CorsPolicy::new(
        origins,
        methods,
        f.allow_headers.clone(),
        f.expose_headers.clone(),
        f.allow_credentials,
        Some(max_age.as_secs()),
    )
    .map_err(|e| issues.add(key.to_string(), e, "fix the values"))
    .ok()
    .map(Arc::new)
}

/// A route's header transform; names that touch reserved headers are errors.
fn transform(
    issues: &mut Issues,
    key: &str,
    f: Option<&super::file::HeaderTransformFile>,
    prefix: &str,
) -> Option<Arc<crate::middleware::transform::HeaderTransform>> {
    use crate::middleware::transform::{allowed, HeaderTransform};
    let f = f?;
    let mut t = HeaderTransform::default();
    let name = |issues: &mut Issues, k: String, n: &str| -> Option<http::HeaderName> {
        if !allowed(n, prefix, &[]) {
            issues.add(
                k,
                format!(
                    "\"{n}\" is reserved (identity prefix, hop-by-hop, framing or X-Forwarded-*)"
                ),
                "transforms cannot touch headers Portcullis owns; pick another name",
            );
            return None;
        }
        http::HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| {
                issues.add(
                    k,
                    format!("\"{n}\" is not a header name"),
                    "use letters, digits and '-'",
                )
            })
            .ok()
    };
    for (op, map, out) in [
        ("set", &f.set, &mut t.set),
        ("append", &f.append, &mut t.append),
    ] {
        for (n, v) in map {
            let k = format!("{key}.{op}.{n}");
            let Some(hn) = name(issues, k.clone(), n) else {
                continue;
            };
            match http::HeaderValue::from_str(v) {
                Ok(hv) => out.push((hn, hv)),
                Err(_) => issues.add(k, "is not a valid header value", "use visible ASCII"),
            }
        }
    }
    for (i, n) in f.remove.iter().enumerate() {
        if let Some(hn) = name(issues, format!("{key}.remove[{i}]"), n) {
            t.remove.push(hn);
        }
    }
    (!t.is_empty()).then(|| Arc::new(t))
}

fn routes(
    issues: &mut Issues,
    files: &[Option<RouteFile>],
    upstreams: &[Arc<Upstream>],
    declared: &HashSet<&str>,
    prefix: &str,
) -> Vec<Route> {
    if files.is_empty() {
        issues.add(
            "routes",
            "no [[routes]] defined; every request would be 404",
            "add at least one [[routes]] entry",
        );
    }
    let mut out: Vec<(usize, Route)> = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in files.iter().enumerate() {
        let Some(r) = r else { continue };
        let key = |k: &str| format!("routes[{i}].{k}");
        let pattern = Pattern::parse(&r.path)
            .map_err(|e| {
                issues.add(
                    key("path"),
                    e,
                    "write a canonical path pattern such as \"/items/{id}\" or \"/public/**\"",
                )
            })
            .ok();
        let methods = r.methods.as_ref().map(|ms| {
            ms.iter()
                .filter_map(|m| {
                    let upper = m.to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) if upper == *m => Some(method),
                        _ => {
                            issues.add(
                                key("methods"),
                                format!("\"{m}\" is not an upper-case HTTP method"),
                                "write methods like \"GET\", \"POST\"",
                            );
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        });
        if methods.as_ref().is_some_and(Vec::is_empty)
            && r.methods.as_ref().is_some_and(Vec::is_empty)
        {
            issues.add(
                key("methods"),
                "is an empty list; the route could never match",
                "list the methods, or remove the key to accept every method",
            );
        }
        let host = r.host.as_ref().map(|h| h.to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty()
                || h.contains(':')
                || h.contains('/')
                || h.parse::<http::uri::Authority>().is_err()
            {
                issues.add(
                    key("host"),
                    format!("\"{h}\" is not a host name"),
                    "write a bare host name without scheme or port, e.g. \"api.example.com\"",
                );
            }
        }
        let upstream = upstreams.iter().find(|u| u.name == r.upstream).cloned();
        if !declared.contains(r.upstream.as_str()) {
            let mut known: Vec<&str> = declared.iter().copied().collect();
            known.sort_unstable();
            issues.add(
                key("upstream"),
                format!("unknown upstream \"{}\"", r.upstream),
                if known.is_empty() {
                    "declare it in an [[upstreams]] entry".to_string()
                } else {
                    format!("use one of: {}", known.join(", "))
                },
            );
        }
        if let (Some(prefix), Some(p)) = (&r.strip_prefix, &pattern) {
            let lit = p.literal_prefix();
            let ok = prefix.starts_with('/')
                && !prefix.ends_with('/')
                && (lit == *prefix || lit.starts_with(&format!("{prefix}/")));
            if !ok {
                issues.add(
                    key("strip_prefix"),
                    format!(
                        "\"{prefix}\" is not a leading part of the path \"{}\"",
                        r.path
                    ),
                    format!(
                        "use whole leading segments of the path, e.g. \"{}\"",
                        if lit.is_empty() { "/api" } else { &lit }
                    ),
                );
            }
        }
        let auth = match r.auth.as_str() {
            "none" => AuthMode::None,
            "required" => AuthMode::Required,
            "optional" => AuthMode::Optional,
            other => {
                issues.add(
                    key("auth"),
                    format!("\"{other}\" is not an auth mode"),
                    "use \"required\" (default), \"optional\" or \"none\"",
                );
                AuthMode::Required
            }
        };
        if auth == AuthMode::None
            && !(r.scopes.is_empty() && r.any_scopes.is_empty() && r.roles.is_empty())
        {
            issues.add(
                key("auth"),
                "a public route (auth = \"none\") cannot require scopes or roles",
                "remove auth = \"none\" to require a token, or remove scopes/any_scopes/roles",
            );
        }
        for (k, list) in [
            ("scopes", &r.scopes),
            ("any_scopes", &r.any_scopes),
            ("roles", &r.roles),
        ] {
            if let Some(bad) = list.iter().find(|s| {
                s.is_empty()
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"' && b != b'\\')
            }) {
                issues.add(
                    key(k),
                    format!("\"{bad}\" is not a usable scope or role name"),
                    "use visible ASCII without spaces, commas, quotes or backslashes",
                );
            }
        }
        let name = r.name.clone().unwrap_or_else(|| r.path.clone());
        if r.name.is_some() && !names.insert(name.clone()) {
            issues.add(
                key("name"),
                format!("\"{name}\" is used by another route"),
                "give every named route a unique name",
            );
        }
        if let (Some(pattern), Some(upstream)) = (pattern, upstream) {
            out.push((
                i,
                Route {
                    scopes: r.scopes.clone(),
                    any_scopes: r.any_scopes.clone(),
                    roles: r.roles.clone(),
                    pass_authorization: r.pass_authorization,
                    upgrades: upgrades(issues, &key("upgrades"), &r.upgrades),
                    rate_limit: r.rate_limit.clone(),
                    request_headers: transform(
                        issues,
                        &key("request_headers"),
                        r.request_headers.as_ref(),
                        prefix,
                    ),
                    response_headers: transform(
                        issues,
                        &key("response_headers"),
                        r.response_headers.as_ref(),
                        prefix,
                    ),
                    request_timeout: r
                        .request_timeout
                        .as_deref()
                        .map(|t| issues.duration(key("request_timeout"), t)),
                    max_body_bytes: r
                        .max_body_bytes
                        .as_deref()
                        .map(|s| issues.size(key("max_body_bytes"), s)),
                    cors: r.cors.as_ref().and_then(|c| cors(issues, &key("cors"), c)),
                    name,
                    pattern,
                    methods,
                    host,
                    upstream,
                    strip_prefix: r.strip_prefix.clone(),
                    auth,
                },
            ));
        }
    }
    // A route with the same path shape, host and an overlapping method as an earlier
    // one can never be chosen.
    for (a, (ia, ra)) in out.iter().enumerate() {
        for (ib, rb) in out.iter().skip(a + 1) {
            let overlap = match (&ra.methods, &rb.methods) {
                (Some(x), Some(y)) => x.iter().find(|m| y.contains(m)).map(|m| m.to_string()),
                (None, Some(y)) => y.first().map(|m| m.to_string()),
                (_, None) => Some("any method".into()),
            };
            if let (true, true, Some(m)) = (
                ra.pattern.same_shape(&rb.pattern),
                ra.host == rb.host,
                overlap,
            ) {
                issues.add(
                    format!("routes[{ib}]"),
                    format!("can never match {m}: routes[{ia}] (\"{}\") has the same path, host and methods and comes first", ra.pattern.as_str()),
                    "remove one of the two routes, or give them disjoint methods or hosts",
                );
            }
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// Keys Portcullis holds the private half of (or the HMAC secret).
#[derive(Debug, Default)]
pub(super) struct OwnKeys {
    pub signing: Vec<SigningKey>,
    /// Files to create at start (`create_if_missing`).
    pub created: Vec<(std::path::PathBuf, String)>,
}

fn tokens(issues: &mut Issues, t: &TokensFile, base_dir: &Path) -> Option<(Verifier, OwnKeys)> {
    let t = t.clone();
    let mut own = OwnKeys::default();
    if t.issuer.trim().is_empty() {
        issues.add(
            "tokens.issuer",
            "is empty",
            "set it to this gateway's public base URL, e.g. \"https://auth.example.com\"",
        );
    }
    if t.verify_audience && t.audiences.is_empty() {
        issues.add(
            "tokens.audiences",
            "no audience configured; no token could be accepted",
            "list the audiences tokens are issued for, e.g. audiences = [\"api\"]",
        );
    }
    let leeway = leeway(issues, "tokens.leeway", &t.leeway);
    let max_lifetime = t
        .max_lifetime
        .as_deref()
        .map(|m| issues.duration("tokens.max_lifetime".into(), m));
    let mapping = claim_mapping(
        issues,
        "tokens.",
        &t.scope_claim,
        &t.roles_claim,
        t.expand_roles,
    );
    if t.signing_key.is_some() && !mapping.scope_claims.iter().any(|c| c.0 == "scope") {
        issues.add(
            "tokens.scope_claim",
            "does not list \"scope\", where the token service writes the scopes it grants",
            "include \"scope\", e.g. scope_claim = \"scope\"",
        );
    }
    if t.signing_key.is_some() && mapping.roles_claim.0 != "roles" {
        issues.add(
            "tokens.roles_claim",
            "is not \"roles\", where the token service writes the roles it grants",
            "set roles_claim = \"roles\" (or leave it out)",
        );
    }
    if t.keys.is_empty() {
        issues.add(
            "tokens.keys",
            "no key configured; no token could be accepted",
            "add a [[tokens.keys]] entry (kid, alg and the key material)",
        );
    }
    let mut kids = HashSet::new();
    let mut keys = Vec::new();
    for (i, k) in t.keys.iter().enumerate() {
        let key = |f: &str| format!("tokens.keys[{i}].{f}");
        if k.kid.is_empty() || !kids.insert(k.kid.clone()) {
            issues.add(
                key("kid"),
                format!("\"{}\" is empty or used twice", k.kid),
                "give every key a unique kid",
            );
        }
        let Some(alg) = parse_alg(&k.alg) else {
            issues.add(
                key("alg"),
                format!("\"{}\" is not supported", k.alg),
                "use HS256, RS256, ES256 or EdDSA",
            );
            continue;
        };
        if k.private_key.is_some() || k.create_if_missing {
            if let Some((sk, dk)) = private_key(issues, &key(""), k, alg, base_dir, &mut own) {
                keys.push((k.kid.clone(), alg, dk));
                own.signing.push(sk);
            }
            continue;
        }
        if let Some(material) = key_material(issues, &key(""), k, alg, base_dir) {
            if alg == jsonwebtoken::Algorithm::HS256 {
                own.signing.push(SigningKey::from_secret(&k.kid, &material));
            }
            match decoding_key(alg, &material) {
                Ok(dk) => keys.push((k.kid.clone(), alg, dk)),
                Err(e) => issues.add(
                    key(if alg == jsonwebtoken::Algorithm::HS256 {
                        "secret"
                    } else {
                        "public_key"
                    }),
                    e,
                    "point it at the right key material",
                ),
            }
        }
    }
    let cache_max_age = issues.duration_or_zero("tokens.cache_max_age".into(), &t.cache_max_age);
    if cache_max_age > Duration::from_secs(300) {
        issues.add(
            "tokens.cache_max_age",
            "is longer than 5 minutes",
            "revocation takes effect within this time; keep it short, e.g. \"30s\"",
        );
    }
    let rules = ClaimRules {
        issuer: t.issuer,
        verify_issuer: t.verify_issuer,
        audiences: t.audiences,
        verify_audience: t.verify_audience,
        leeway,
        max_lifetime,
        mapping,
    };
    let mut v = Verifier::new(rules, keys);
    v.cache_max_age = cache_max_age;
    v.cache_size = t.cache_size;
    Some((v, own))
}

/// A clock-skew allowance: at most 5 minutes, for `[tokens]` and every issuer alike.
fn leeway(issues: &mut Issues, key: &str, value: &str) -> Duration {
    let leeway = issues.duration_or_zero(key.into(), value);
    if leeway > Duration::from_secs(300) {
        issues.add(
            key,
            "is longer than 5 minutes",
            "keep the clock-skew allowance small, e.g. \"60s\"",
        );
    }
    leeway
}

/// `scope_claim` / `roles_claim` / `expand_roles`, the same for `[tokens]` and
/// `[[issuers]]`. `prefix` ends with a dot.
fn claim_mapping(
    issues: &mut Issues,
    prefix: &str,
    scope_claim: &super::file::OneOrMany,
    roles_claim: &str,
    expand_roles: bool,
) -> ClaimMapping {
    let scope_claims = scope_claim.to_vec();
    if scope_claims.is_empty() || scope_claims.iter().any(|c| c.trim().is_empty()) {
        issues.add(
            format!("{prefix}scope_claim"),
            "is empty or names an empty claim",
            "name the claim(s) that carry scopes, e.g. \"scope\" or [\"scope\", \"scp\"]",
        );
    }
    if roles_claim.trim().is_empty() {
        issues.add(
            format!("{prefix}roles_claim"),
            "is empty",
            "name the claim that carries roles, e.g. \"roles\"",
        );
    }
    ClaimMapping {
        scope_claims: scope_claims.into_iter().map(ClaimPath).collect(),
        roles_claim: ClaimPath(roles_claim.to_string()),
        expand_roles,
    }
}

/// Loads (or, with `create_if_missing` and no file, generates) a private signing key.
fn private_key(
    issues: &mut Issues,
    prefix: &str,
    k: &KeyFile,
    alg: jsonwebtoken::Algorithm,
    base_dir: &Path,
    own: &mut OwnKeys,
) -> Option<(SigningKey, jsonwebtoken::DecodingKey)> {
    use jsonwebtoken::Algorithm::{EdDSA, ES256, HS256};
    let Some(file) = &k.private_key else {
        issues.add(
            format!("{prefix}create_if_missing"),
            "needs private_key, the file to create",
            "set private_key = \"keys/signing.pem\"",
        );
        return None;
    };
    if alg == HS256 || k.public_key.is_some() || k.secret_env.is_some() || k.secret_file.is_some() {
        issues.add(
            format!("{prefix}private_key"),
            format!("a {} key with private_key takes no other key material", k.alg),
            "RS256/ES256/EdDSA: private_key alone (the public half is derived); HS256: secret_env or secret_file",
        );
        return None;
    }
    let path = base_dir.join(file);
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && k.create_if_missing => {
            if !matches!(alg, ES256 | EdDSA) {
                issues.add(
                    format!("{prefix}create_if_missing"),
                    format!("{} keys cannot be generated by Portcullis", k.alg),
                    "use ES256 or EdDSA, or create the key with openssl",
                );
                return None;
            }
            match keys::generate(alg) {
                Ok(g) => {
                    own.created.push((path.clone(), g.private.clone()));
                    g.private.into_bytes()
                }
                Err(e) => {
                    issues.add(
                        format!("{prefix}private_key"),
                        e,
                        "create the key with `portcullis keys generate`",
                    );
                    return None;
                }
            }
        }
        Err(e) => {
            issues.add(
                format!("{prefix}private_key"),
                format!("cannot read {}: {e}", path.display()),
                "check the path (relative paths start at the config file's folder), or set create_if_missing = true",
            );
            return None;
        }
    };
    SigningKey::from_private_pem(&k.kid, alg, &pem)
        .map_err(|e| {
            issues.add(
                format!("{prefix}private_key"),
                format!("{}: {e}", path.display()),
                "point private_key at a PEM private key of the key's algorithm",
            )
        })
        .ok()
}

/// Reads a key's material; `prefix` is `tokens.keys[i].`.
fn key_material(
    issues: &mut Issues,
    prefix: &str,
    k: &KeyFile,
    alg: jsonwebtoken::Algorithm,
    base_dir: &Path,
) -> Option<Vec<u8>> {
    let read = |issues: &mut Issues, field: &str, file: &str| -> Option<Vec<u8>> {
        let path = base_dir.join(file);
        std::fs::read(&path)
            .map_err(|e| issues.add(format!("{prefix}{field}"), format!("cannot read {}: {e}", path.display()), "check the path (relative paths start at the config file's folder) and its permissions"))
            .ok()
    };
    if alg == jsonwebtoken::Algorithm::HS256 {
        if k.public_key.is_some() {
            issues.add(
                format!("{prefix}public_key"),
                "an HS256 key has no public key",
                "use secret_env or secret_file",
            );
            return None;
        }
        match (&k.secret_env, &k.secret_file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v.into_bytes()),
                _ => {
                    issues.add(format!("{prefix}secret_env"), format!("environment variable {var} is not set"), format!("export {var} with at least 32 random bytes, e.g. $(openssl rand -hex 32)"));
                    None
                }
            },
            (None, Some(file)) => read(issues, "secret_file", file).map(|mut b| {
                while b.last().is_some_and(|c| c.is_ascii_whitespace()) {
                    b.pop();
                }
                b
            }),
            _ => {
                issues.add(
                    format!("{prefix}secret_env"),
                    "an HS256 key needs exactly one of secret_env and secret_file",
                    "keep one; secrets are never written inline",
                );
                None
            }
        }
    } else {
        if k.secret_env.is_some() || k.secret_file.is_some() {
            issues.add(
                format!("{prefix}secret_env"),
                format!(
                    "a {} key is verified with a public key, not a secret",
                    k.alg
                ),
                "use public_key = \"path/to/key.pub\"",
            );
            return None;
        }
        match &k.public_key {
            Some(file) => read(issues, "public_key", file),
            None => {
                issues.add(
                    format!("{prefix}public_key"),
                    "missing",
                    "point public_key at the PEM public key file",
                );
                None
            }
        }
    }
}

fn claim_headers(
    issues: &mut Issues,
    i: IdentityFile,
    prefix: &str,
) -> Vec<(String, http::HeaderName)> {
    // Headers with a meaning of their own in HTTP can never carry identity.
    const FORBIDDEN: &[&str] = &[
        "host",
        "authorization",
        "cookie",
        "set-cookie",
        "connection",
        "te",
        "upgrade",
        "trailer",
        "transfer-encoding",
        "content-length",
        "content-type",
        "content-encoding",
        "keep-alive",
        "proxy-authorization",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    ];
    let mut out = Vec::new();
    for (claim, header) in i.claim_headers {
        let lower = header.to_ascii_lowercase();
        match http::HeaderName::from_bytes(lower.as_bytes()) {
            Ok(name) if !lower.contains('_') && !FORBIDDEN.contains(&lower.as_str()) => out.push((claim, name)),
            _ => issues.add(
                format!("identity.claim_headers.{claim}"),
                format!("\"{header}\" cannot carry identity"),
                format!("use a header of its own, e.g. \"{prefix}{claim}\" (client copies of it are always removed)"),
            ),
        }
    }
    out
}

fn api_keys(
    issues: &mut Issues,
    files: &[Option<ApiKeyFile>],
    header: &str,
) -> Option<crate::auth::api_key::ApiKeys> {
    use crate::auth::api_key::{ApiKeyEntry, ApiKeys};
    let name = match http::HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes()) {
        Ok(n) if !header.contains('_') && header != "authorization" => n,
        _ => {
            issues.add(
                "identity.api_key_header",
                format!("\"{header}\" is not a usable header name"),
                "use e.g. \"x-api-key\"",
            );
            return None;
        }
    };
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for (i, k) in files.iter().enumerate() {
        let Some(k) = k else { continue };
        let key = |f: &str| format!("api_keys[{i}].{f}");
        let digest = k.sha256.to_ascii_lowercase();
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            issues.add(
                key("sha256"),
                "is not a SHA-256 digest (64 hex digits)",
                "run `portcullis api-key hash` on the key, or `portcullis api-key generate`",
            );
        } else if !seen.insert(digest.clone()) {
            issues.add(
                key("sha256"),
                "the same key is configured twice",
                "give every client its own key",
            );
        }
        if k.subject.is_empty() || !k.subject.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            issues.add(
                key("subject"),
                format!("\"{}\" is not a usable subject", k.subject),
                "use visible ASCII without spaces, e.g. \"svc-reports\"",
            );
        }
        keys.push((
            digest,
            ApiKeyEntry {
                subject: k.subject.clone(),
                scopes: k.scopes.clone(),
                roles: k.roles.clone(),
            },
        ));
    }
    (!keys.is_empty()).then(|| ApiKeys::new(name, keys))
}

fn issuers(
    issues: &mut Issues,
    files: &[Option<IssuerFile>],
    own: Option<&str>,
) -> Vec<crate::auth::jwks::IssuerConfig> {
    use crate::auth::jwks::{IssuerConfig, JwksSource};
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(f) = f else { continue };
        let key = |k: &str| format!("issuers[{i}].{k}");
        if f.issuer.is_empty() || !seen.insert(f.issuer.clone()) || Some(f.issuer.as_str()) == own {
            issues.add(
                key("issuer"),
                format!(
                    "\"{}\" is empty, repeated, or Portcullis' own issuer",
                    f.issuer
                ),
                "give each external issuer's exact `iss` value once",
            );
        }
        let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        let source = match (&f.jwks_url, f.discovery) {
            (Some(u), false) if url_ok(u) => Some(JwksSource::Url(u.clone())),
            (None, true) if url_ok(&f.issuer) => Some(JwksSource::Discovery),
            _ => {
                issues.add(key("jwks_url"), "needs exactly one of jwks_url (an http(s) URL) and discovery = true (with an http(s) issuer)", "set jwks_url = \"https://idp.example.com/.../jwks\" or discovery = true");
                None
            }
        };
        if f.audiences.is_empty() {
            issues.add(
                key("audiences"),
                "no audience configured; no token could be accepted",
                "list the audiences this gateway accepts, e.g. [\"api\"]",
            );
        }
        let mut algorithms = Vec::new();
        for a in &f.algorithms {
            match parse_alg(a) {
                Some(jsonwebtoken::Algorithm::HS256) | None => issues.add(
                    key("algorithms"),
                    format!("\"{a}\" is not accepted from a JWKS"),
                    "use RS256, ES256 or EdDSA",
                ),
                Some(alg) => algorithms.push(alg),
            }
        }
        let leeway = leeway(issues, &key("leeway"), &f.leeway);
        let max_lifetime = f
            .max_lifetime
            .as_deref()
            .map(|m| issues.duration(key("max_lifetime"), m));
        let mapping = claim_mapping(
            issues,
            &key(""),
            &f.scope_claim,
            &f.roles_claim,
            f.expand_roles,
        );
        let min_refresh = issues.duration(key("min_refresh"), &f.min_refresh);
        let max_refresh = issues.duration(key("max_refresh"), &f.max_refresh);
        let unknown_kid_cooldown =
            issues.duration_or_zero(key("unknown_kid_cooldown"), &f.unknown_kid_cooldown);
        if min_refresh > max_refresh {
            issues.add(
                key("min_refresh"),
                "is longer than max_refresh",
                "make min_refresh ≤ max_refresh",
            );
        }
        if let Some(source) = source {
            out.push(IssuerConfig {
                issuer: f.issuer.clone(),
                source,
                algorithms,
                rules: ClaimRules {
                    issuer: f.issuer.clone(),
                    verify_issuer: true,
                    audiences: f.audiences.clone(),
                    verify_audience: true,
                    leeway,
                    max_lifetime,
                    mapping,
                },
                min_refresh,
                max_refresh: max_refresh.max(Duration::from_secs(1)),
                unknown_kid_cooldown,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
