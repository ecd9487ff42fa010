//! Header names the configuration may set: a route's request/response header
//! transforms and `[identity] claim_headers`.
//!
//! Both refuse headers Portcullis owns (the identity prefix, hop-by-hop and framing
//! headers, `X-Forwarded-*`), so configuration can never forge or drop them.

use std::sync::Arc;

use crate::config::file::IdentityFile;

use super::Issues;

/// A route's header transform; names that touch reserved headers are errors.
pub(super) fn transform(
    issues: &mut Issues,
    key: &str,
    f: Option<&crate::config::file::HeaderTransformFile>,
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

pub(super) fn claim_headers(
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
