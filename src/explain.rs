//! `portcullis explain`: what the gateway would do with a request, and why.
//!
//! It runs the same code as the request pipeline — canonicalization, the router, token
//! verification, authorization — and reports each step, so that operators debug
//! policy with it instead of reading logs.

use std::fmt::Write as _;

use http::Method;

use crate::auth::principal::Principal;
use crate::config::{AuthMode, Config};
use crate::policy::matcher::{method_allowed, normalize_host, split_path, Matched, Routable};
use crate::policy::path::{canonicalize_with, split_target};
use crate::policy::scope;

/// Who the request comes from, as far as `explain` is told.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No token.
    Anonymous,
    /// A bearer token, verified with the configured keys.
    Token(String),
    /// A hypothetical principal with these scopes and roles (no token checked).
    Grants {
        scopes: Vec<String>,
        roles: Vec<String>,
    },
}

/// The outcome, as the HTTP status the client would get from Portcullis (`None` when
/// the request would be forwarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: Option<u16>,
    pub report: String,
}

fn line(out: &mut String, s: impl AsRef<str>) {
    out.push_str(s.as_ref());
    out.push('\n');
}

/// Explains how `method target` (with an optional `host`) would be handled.
pub fn explain(
    config: &Config,
    method: &str,
    target: &str,
    host: Option<&str>,
    caller: &Caller,
) -> Decision {
    let mut out = String::new();
    let deny = |mut out: String, status: u16, why: &str| {
        let _ = writeln!(out, "decision:  DENY {status} — {why}");
        Decision {
            status: Some(status),
            report: out,
        }
    };
    let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return deny(out, 400, "not an HTTP method");
    };
    let (raw_path, query) = split_target(target);
    let _ = writeln!(
        out,
        "request:   {method} {target}{}",
        host.map(|h| format!(" (host {h})")).unwrap_or_default()
    );
    if config.server.refuse_methods.contains(&method) {
        return deny(
            out,
            501,
            &format!("{method} is refused server-wide (server.refuse_methods)"),
        );
    }
    if raw_path.len() + query.map_or(0, |q| q.len() + 1) > config.server.max_request_target_bytes {
        return deny(
            out,
            414,
            "the request target is longer than server.max_request_target_bytes",
        );
    }
    let canonical = match canonicalize_with(raw_path, config.server.reject_double_encoding) {
        Ok(c) => c,
        Err(e) => return deny(out, 400, &format!("the path is refused: {e}")),
    };
    let _ = writeln!(
        out,
        "canonical: {canonical}{}",
        query
            .map(|q| format!("  (query {q:?} passed on untouched)"))
            .unwrap_or_default()
    );

    let host = host.and_then(normalize_host);
    let segs = split_path(&canonical);
    line(&mut out, "routes, most specific first:");
    let chosen = config.router.find(&method, host.as_deref(), &canonical);
    let chosen_name = match &chosen {
        Matched::Route(r) => Some(r.name.as_str()),
        _ => None,
    };
    for r in config.router.routes() {
        let verdict = if r.host().is_some_and(|h| host.as_deref() != Some(h)) {
            format!("host is not {}", r.host().unwrap_or_default())
        } else if !r.pattern().matches_segments(&segs) {
            "path does not match".to_string()
        } else if !method_allowed(r.methods(), &method) {
            format!(
                "path matches, method {method} not in {:?}",
                r.methods().unwrap_or_default()
            )
        } else if Some(r.name.as_str()) == chosen_name {
            "MATCH (chosen)".to_string()
        } else {
            "matches, but a more specific route came first".to_string()
        };
        let _ = writeln!(
            out,
            "  {:<28} {:<24} {verdict}",
            r.pattern().as_str(),
            format!("[{}]", r.name)
        );
    }
    let route = match chosen {
        Matched::Route(r) => r,
        Matched::MethodNotAllowed(allow) => {
            let list: Vec<&str> = allow.iter().map(Method::as_str).collect();
            return deny(
                out,
                405,
                &format!(
                    "no route accepts {method} here (Allow: {})",
                    list.join(", ")
                ),
            );
        }
        Matched::NotFound => return deny(out, 404, "no route matches (deny by default)"),
    };
    let _ = writeln!(
        out,
        "route:     {} → upstream {} (auth {:?})",
        route.name, route.upstream.name, route.auth
    );
    let needs = [
        ("all of", &route.scopes),
        ("one of", &route.any_scopes),
        ("role, one of", &route.roles),
    ]
    .iter()
    .filter(|(_, l)| !l.is_empty())
    .map(|(k, l)| format!("{k} [{}]", l.join(" ")))
    .collect::<Vec<_>>();
    if !needs.is_empty() {
        let _ = writeln!(out, "requires:  {}", needs.join("; "));
    }
    if route.auth == AuthMode::None {
        line(
            &mut out,
            "decision:  ALLOW — public route, no token checked",
        );
        return Decision {
            status: None,
            report: out,
        };
    }
    let principal = match caller {
        Caller::Anonymous if route.auth == AuthMode::Optional => {
            line(
                &mut out,
                "decision:  ALLOW — optional auth, forwarded anonymously",
            );
            return Decision {
                status: None,
                report: out,
            };
        }
        Caller::Anonymous => return deny(out, 401, "a bearer token is required"),
        Caller::Token(t) => match config.tokens.as_ref().map(|v| v.verify(t)) {
            None => return deny(out, 401, "invalid_token: no [tokens] keys are configured"),
            Some(Err(e)) => return deny(out, 401, &format!("invalid_token: {e}")),
            Some(Ok(p)) => p,
        },
        Caller::Grants { scopes, roles } => Principal {
            subject: "(explain)".into(),
            scopes: scopes.clone(),
            roles: roles.clone(),
            client_id: None,
            issuer: String::new(),
            expires_at: 0,
            claims: Default::default(),
            expand_roles: true,
        },
    };
    let _ = writeln!(
        out,
        "caller:    {} scopes [{}] roles [{}]",
        principal.subject,
        principal.scopes.join(" "),
        principal.roles.join(" ")
    );
    match scope::authorize(route, &principal, &config.roles) {
        Ok(effective) => {
            let _ = writeln!(out, "effective: [{}]", effective.join(" "));
            line(
                &mut out,
                "decision:  ALLOW — forwarded with identity headers",
            );
            Decision {
                status: None,
                report: out,
            }
        }
        Err(required) => deny(
            out,
            403,
            &format!("insufficient_scope (route requires: {required})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        crate::config::parse_str(
            "[roles]\nadmin = [\"items:write\"]\n[[upstreams]]\nname=\"demo\"\necho=true\n\
             [[routes]]\nname=\"item\"\npath=\"/items/{id}\"\nmethods=[\"GET\"]\nupstream=\"demo\"\nscopes=[\"items:read\"]\n\
             [[routes]]\nname=\"write\"\npath=\"/items/**\"\nmethods=[\"POST\"]\nupstream=\"demo\"\nscopes=[\"items:write\"]\n\
             [[routes]]\nname=\"public\"\npath=\"/public/**\"\nupstream=\"demo\"\nauth=\"none\"\n",
            Path::new("x.toml"),
        )
        .expect("valid")
    }

    fn grants(scopes: &[&str], roles: &[&str]) -> Caller {
        Caller::Grants {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn decisions() {
        let c = config();
        let d = explain(&c, "GET", "/items/42", None, &grants(&["items:read"], &[]));
        assert_eq!(d.status, None, "{}", d.report);
        assert!(
            d.report.contains("/items/{id}") && d.report.contains("MATCH (chosen)"),
            "{}",
            d.report
        );
        assert_eq!(
            explain(&c, "POST", "/items/42", None, &grants(&["items:read"], &[])).status,
            Some(403)
        );
        assert_eq!(
            explain(&c, "POST", "/items/42", None, &grants(&[], &["admin"])).status,
            None,
            "role expansion"
        );
        assert_eq!(
            explain(&c, "GET", "/items/42", None, &Caller::Anonymous).status,
            Some(401)
        );
        assert_eq!(
            explain(&c, "GET", "/items/42", None, &Caller::Token("x.y.z".into())).status,
            Some(401)
        );
        assert_eq!(
            explain(&c, "DELETE", "/items/42", None, &Caller::Anonymous).status,
            Some(405)
        );
        assert_eq!(
            explain(&c, "GET", "/nothing", None, &Caller::Anonymous).status,
            Some(404)
        );
        assert_eq!(
            explain(&c, "GET", "/public/../items/1", None, &Caller::Anonymous).status,
            Some(401)
        );
        // The head rules the gateway applies before routing.
        assert_eq!(
            explain(&c, "TRACE", "/public/x", None, &Caller::Anonymous).status,
            Some(501)
        );
        assert_eq!(
            explain(
                &c,
                "GET",
                "/public/%252e%252e/items/1",
                None,
                &Caller::Anonymous
            )
            .status,
            Some(400)
        );
        let long = format!("/public/{}", "a".repeat(9000));
        assert_eq!(
            explain(&c, "GET", &long, None, &Caller::Anonymous).status,
            Some(414)
        );
        let d = explain(
            &c,
            "GET",
            "/public/%2e%2e/items/1",
            None,
            &Caller::Anonymous,
        );
        assert_eq!(d.status, Some(400));
        assert!(d.report.contains("encoded dot segment"), "{}", d.report);
        let d = explain(&c, "GET", "/public/x?a=1", None, &Caller::Anonymous);
        assert_eq!(d.status, None);
        assert!(d.report.contains("path does not match"), "{}", d.report);
    }
}
