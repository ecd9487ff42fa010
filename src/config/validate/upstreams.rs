//! `[[upstreams]]` → [`Upstream`]s: unique names, an `http://` URL or the built-in
//! echo service, and the timeouts and pool settings of each.
//!
//! The URL is taken apart here (scheme, authority, Host header value, connect address,
//! base path) so that forwarding never parses it again.

use std::collections::HashSet;
use std::sync::Arc;

use http::Uri;

use crate::config::file::UpstreamFile;
use crate::config::{Upstream, UpstreamTarget};

use super::Issues;

pub(super) fn upstreams(issues: &mut Issues, files: &[Option<UpstreamFile>]) -> Vec<Arc<Upstream>> {
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
