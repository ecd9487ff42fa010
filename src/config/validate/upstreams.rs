//! `[[upstreams]]` → [`Upstream`]s: unique names, an `http://` URL or the built-in
//! echo service, and the timeouts and pool settings of each.
//!
//! The URL is taken apart here (scheme, authority, Host header value, connect address,
//! base path) so that forwarding never parses it again.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use http::Uri;

use crate::config::file::UpstreamFile;
use crate::config::{Upstream, UpstreamTarget};
use crate::proxy::connect::UpstreamTls;

use super::Issues;

pub(super) fn upstreams(
    issues: &mut Issues,
    files: &[Option<UpstreamFile>],
    base_dir: &Path,
) -> Vec<Arc<Upstream>> {
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
        let tls = match &target {
            Some(UpstreamTarget::Http {
                scheme, authority, ..
            }) if scheme.as_str() == "https" => {
                upstream_tls(issues, &key, u, authority.host(), base_dir)
            }
            _ => {
                for (k, set) in [
                    ("ca_file", u.ca_file.is_some()),
                    ("sni", u.sni.is_some()),
                    ("client_cert", u.client_cert.is_some()),
                    ("client_key", u.client_key.is_some()),
                ] {
                    if set {
                        issues.add(
                            key(k),
                            "is a TLS setting, but the upstream is not https://",
                            "remove it, or make the url https://",
                        );
                    }
                }
                None
            }
        };
        let pool_wait_timeout = issues.duration(key("pool_wait_timeout"), &u.pool_wait_timeout);
        if !(1..=1 << 20).contains(&u.max_connections) {
            issues.add(
                key("max_connections"),
                format!("{} is out of range", u.max_connections),
                "pick a count between 1 and 1048576, e.g. 1024",
            );
        }
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
                max_connections: u.max_connections,
                pool_wait_timeout,
                tls,
                http2: u.http2,
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
    if scheme.as_str() != "http" && scheme.as_str() != "https" {
        issues.add(
            key,
            format!("scheme \"{scheme}\" is not supported"),
            "use an http:// or https:// upstream",
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
    let port = authority
        .port_u16()
        .unwrap_or(if scheme.as_str() == "https" { 443 } else { 80 });
    let connect_to = format!("{}:{port}", authority.host());
    Some(UpstreamTarget::Http {
        scheme: scheme.clone(),
        authority: authority.clone(),
        host_header,
        connect_to,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

/// An `https://` upstream's TLS settings; the files are read and the client
/// configuration built now, so an unusable one is refused at load.
fn upstream_tls(
    issues: &mut Issues,
    key: &dyn Fn(&str) -> String,
    u: &UpstreamFile,
    host: &str,
    base_dir: &Path,
) -> Option<UpstreamTls> {
    let client_cert = match (&u.client_cert, &u.client_key) {
        (Some(c), Some(k)) => Some((base_dir.join(c), base_dir.join(k))),
        (None, None) => None,
        _ => {
            issues.add(
                key("client_cert"),
                "client_cert and client_key go together",
                "set both (a PEM chain and its key), or neither",
            );
            return None;
        }
    };
    let server_name = u.sni.clone().unwrap_or_else(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    });
    if rustls::pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        issues.add(
            key("sni"),
            format!("\"{server_name}\" is not a DNS name or IP address"),
            "give the name the upstream's certificate is issued for",
        );
        return None;
    }
    let tls = UpstreamTls {
        server_name,
        ca_file: u.ca_file.as_ref().map(|c| base_dir.join(c)),
        client_cert,
    };
    if let Err(e) = tls.client_config(&[b"http/1.1"]) {
        issues.add(
            key("ca_file"),
            e,
            "give PEM files (relative paths start at the config file's folder): CA certificates in ca_file, a chain and its key in client_cert/client_key",
        );
        return None;
    }
    Some(tls)
}
