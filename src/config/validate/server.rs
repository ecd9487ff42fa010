//! `[server]` → [`ServerConfig`]: listeners, trusted proxies, request limits and
//! timeouts, refused methods, stripped headers, the identity prefix and logging.
//!
//! Every value the listener and the request pipeline depend on before a route is
//! chosen is checked here, so a bad one is refused at load and never at request time.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;

use crate::config::file::ServerFile;
use crate::config::{Bounds, ServerConfig};

use super::Issues;

fn bounds(issues: &mut Issues, s: &ServerFile) -> Bounds {
    let count = |issues: &mut Issues, key: &str, v: usize, max: usize| {
        if !(1..=max).contains(&v) {
            issues.add(
                format!("server.{key}"),
                format!("{v} is out of range"),
                format!("pick a count between 1 and {max}"),
            );
        }
        v
    };
    let optional = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    Bounds {
        max_connections_per_worker: count(
            issues,
            "max_connections_per_worker",
            s.max_connections_per_worker,
            1 << 20,
        ),
        max_in_flight: count(issues, "max_in_flight", s.max_in_flight, 1 << 24),
        idle_timeout: issues.duration("server.idle_timeout".into(), &s.idle_timeout),
        write_timeout: issues.duration("server.write_timeout".into(), &s.write_timeout),
        tcp_keepalive: optional(
            issues.duration_or_zero("server.tcp_keepalive".into(), &s.tcp_keepalive),
        ),
        http2_keepalive_interval: optional(issues.duration_or_zero(
            "server.http2_keepalive_interval".into(),
            &s.http2_keepalive_interval,
        )),
        http2_keepalive_timeout: issues.duration(
            "server.http2_keepalive_timeout".into(),
            &s.http2_keepalive_timeout,
        ),
        max_tunnels: count(issues, "max_tunnels", s.max_tunnels, 1 << 24),
        tunnel_idle_timeout: issues
            .duration("server.tunnel_idle_timeout".into(), &s.tunnel_idle_timeout),
        http2_max_concurrent_streams: u32::try_from(count(
            issues,
            "http2_max_concurrent_streams",
            s.http2_max_concurrent_streams as usize,
            10_000,
        ))
        .unwrap_or(100),
    }
}

pub(super) fn server(issues: &mut Issues, s: ServerFile, base_dir: &Path) -> ServerConfig {
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
    let shutdown_delay = issues.duration_or_zero("server.shutdown_delay".into(), &s.shutdown_delay);
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
    let access_log_buffer = issues.size("server.access_log_buffer".into(), &s.access_log_buffer);
    if !(64 << 10..=1 << 30).contains(&access_log_buffer) {
        issues.add(
            "server.access_log_buffer",
            "must be between 64KiB and 1GiB",
            "pick e.g. \"64MiB\"",
        );
    }
    let bounds = bounds(issues, &s);
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
    let tls = s
        .tls
        .as_ref()
        .and_then(|t| super::tls::tls(issues, t, base_dir));
    if let Some(r) = tls.as_ref().and_then(|t| t.redirect_listen) {
        if r == listen || Some(r) == admin_listen {
            issues.add(
                "server.tls.redirect_listen",
                "is the address of another listener",
                "give the redirect listener its own port, e.g. \"0.0.0.0:80\"",
            );
        }
    }
    ServerConfig {
        bounds,
        tls,
        forward_auth_path: s.forward_auth_path.clone(),
        security_headers: s.security_headers,
        access_log_query: s.access_log_query.clone(),
        access_log_file: s.access_log_file.as_ref().map(std::path::PathBuf::from),
        access_log_rotation: s.access_log_rotation.clone(),
        access_log_buffer,
        log_level: s.log_level.clone(),
        log_format: s.log_format.clone(),
        listen,
        admin_listen,
        trusted_proxies,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_body_bytes,
        request_timeout,
        shutdown_drain,
        shutdown_delay,
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
