//! [`Builder::build`]'s checks of own keys, external issuers and routes: each problem
//! is an [`Issue`](super::Issue) with its key and fix, all reported at once.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{name_ok, Builder, Own, RouteSpec};
use crate::auth::jwks::IssuerConfig;
use crate::auth::jwt::Verifier;
use crate::embed::policy::{Access, RoutePolicy};
use crate::policy::matcher::{normalize_host, Pattern};

impl Builder {
    pub(super) fn check_own(&mut self, o: Own) -> Verifier {
        if o.rules.issuer.trim().is_empty() {
            self.issue(
                "tokens.issuer",
                "is empty",
                "set the issuer your tokens carry in `iss`, e.g. \"https://auth.example.com\"",
            );
        }
        if o.rules.verify_audience && o.rules.audiences.is_empty() {
            self.issue(
                "tokens.audiences",
                "no audience configured: `aud` is required and no token could be accepted",
                "list this service's audiences, e.g. audiences = [\"orders\"] (or opt out explicitly with verify_audience = false)",
            );
        }
        if o.rules.leeway > Duration::from_secs(300) {
            self.issue(
                "tokens.leeway",
                "is longer than 5 minutes",
                "keep the clock-skew allowance small, e.g. \"60s\"",
            );
        }
        if o.keys.is_empty() {
            self.issue(
                "tokens.keys",
                "no key configured; no token could be accepted",
                "add a key (kid, alg and the key material)",
            );
        }
        let mut kids = HashSet::new();
        for (i, (kid, _, _)) in o.keys.iter().enumerate() {
            if kid.is_empty() || !kids.insert(kid.clone()) {
                self.issue(
                    format!("tokens.keys[{i}].kid"),
                    format!("\"{kid}\" is empty or used twice"),
                    "give every key a unique kid",
                );
            }
        }
        Verifier::new(o.rules, o.keys)
    }

    pub(super) fn check_issuers(&mut self, issuers: &[IssuerConfig], own: Option<&str>) {
        let mut seen = HashSet::new();
        for (i, c) in issuers.iter().enumerate() {
            let key = |k: &str| format!("issuers[{i}].{k}");
            if c.issuer.is_empty() || !seen.insert(&c.issuer) || Some(c.issuer.as_str()) == own {
                self.issue(
                    key("issuer"),
                    format!("\"{}\" is empty, repeated, or the own issuer", c.issuer),
                    "give each external issuer's exact `iss` value once",
                );
            }
            if c.rules.audiences.is_empty() || !c.rules.verify_audience {
                self.issue(
                    key("audiences"),
                    "no audience configured; `aud` is always checked for external issuers",
                    "list the audiences this service accepts, e.g. [\"api\"]",
                );
            }
            if c.algorithms.is_empty() || c.algorithms.contains(&Algorithm::HS256) {
                self.issue(
                    key("algorithms"),
                    "is empty or lists HS256, which a JWKS never provides",
                    "use RS256, ES256 or EdDSA",
                );
            }
            if c.min_refresh > c.max_refresh {
                self.issue(
                    key("min_refresh"),
                    "is longer than max_refresh",
                    "make min_refresh ≤ max_refresh",
                );
            }
        }
    }

    pub(super) fn check_routes(&mut self, specs: Vec<RouteSpec>) -> Vec<RoutePolicy> {
        let mut out = Vec::new();
        for (i, r) in specs.into_iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            let access = match r.auth.as_deref() {
                None | Some("required") => Access::Required,
                Some("none") => Access::Public,
                Some("optional") => Access::Optional,
                Some(other) => {
                    self.issue(
                        key("auth"),
                        format!("\"{other}\" is not an auth mode"),
                        "use \"required\" (default), \"optional\" or \"none\"",
                    );
                    Access::Required
                }
            };
            let names = r.scopes.iter().chain(&r.any_scopes).chain(&r.roles);
            if !names.into_iter().all(|s| name_ok(s)) {
                self.issue(
                    key("scopes"),
                    "a scope or role name is empty or has a space, quote, comma or backslash",
                    "use names such as \"orders:read\"",
                );
            }
            let methods = r.methods.as_ref().map(|m| {
                m.iter()
                    .filter_map(|m| match http::Method::from_bytes(m.as_bytes()) {
                        Ok(m) => Some(m),
                        Err(_) => {
                            self.issue(
                                key("methods"),
                                format!("\"{m}\" is not a method"),
                                "use GET, POST, …",
                            );
                            None
                        }
                    })
                    .collect()
            });
            let host = match r.host.as_deref().map(|h| (h, normalize_host(h))) {
                None => None,
                Some((_, Some(h))) => Some(h),
                Some((h, None)) => {
                    self.issue(
                        key("host"),
                        format!("\"{h}\" is not a host"),
                        "write a host name, e.g. \"api.example.com\"",
                    );
                    None
                }
            };
            match Pattern::parse(&r.path) {
                Ok(pattern) => out.push(RoutePolicy {
                    name: r.name.unwrap_or_else(|| r.path.clone()),
                    pattern,
                    methods,
                    host,
                    access,
                    scopes: r.scopes,
                    any_scopes: r.any_scopes,
                    roles: r.roles,
                }),
                Err(e) => self.issue(
                    key("path"),
                    e,
                    "write a pattern such as \"/orders/{id}\" or \"/orders/**\"",
                ),
            }
        }
        out
    }
}
