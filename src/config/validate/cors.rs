//! A CORS policy (`[cors]` or a route's `cors`) → a
//! [`CorsPolicy`](crate::middleware::cors::CorsPolicy).
//!
//! One function serves both places so that the global and the per-route policy are
//! refused for the same reasons (`"*"` with credentials, bad methods or header names).

use std::sync::Arc;

use http::Method;

use super::Issues;

/// A CORS policy (`[cors]` or a route's `cors`).
pub(super) fn cors(
    issues: &mut Issues,
    key: &str,
    f: &crate::config::file::CorsFile,
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
