//! [`Builder`]: the layer's policy in code — own keys, external issuers, roles and
//! routes — checked all at once by [`Builder::build`], which lists every problem with
//! its key and fix ([`ConfigError`]), as `portcullis check` does for `gateway.toml`.
//!
//! Safe by default: `aud` is required (a `[tokens]` without audiences is refused
//! unless [`Builder::allow_any_audience`] says so explicitly); external issuers always
//! check `aud`; HS256 never comes from a JWKS; scopes and roles are names that can be
//! quoted in `WWW-Authenticate`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::policy::{Access, Policy, RoutePolicy};
use super::render::JsonRenderer;
use super::AuthLayer;
use crate::auth::jwks::{IssuerConfig, JwksClient, JwksSource};
use crate::auth::jwt::{decoding_key, parse_alg, ClaimRules, Verifier};
use crate::auth::principal::ClaimMapping;
use crate::policy::matcher::{normalize_host, Pattern, Router};

/// One problem in the layer's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key, as in `gateway.toml` (`tokens.audiences`, `routes[1].path`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to correct it.
    pub fix: String,
}

/// Every problem found; the layer is not built.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The file read, if the policy came from one.
    pub file: Option<PathBuf>,
    /// Every problem, in order.
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or("auth layer".to_string(), |p| p.display().to_string());
        writeln!(f, "{file}: {} configuration error(s)", self.issues.len())?;
        for i in &self.issues {
            writeln!(
                f,
                "  {file}: {}: {}\n      fix: {}",
                i.key, i.problem, i.fix
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One route's policy as written (`[[routes]]`, policy keys only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    name: Option<String>,
    path: String,
    methods: Option<Vec<String>>,
    host: Option<String>,
    auth: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    any_scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(v: I) -> Vec<String> {
    v.into_iter().map(Into::into).collect()
}

impl RouteSpec {
    /// A route matching `path` (a `gateway.toml` pattern: `/orders/{id}`,
    /// `/orders/**`) that needs a valid token.
    pub fn new(path: &str) -> RouteSpec {
        RouteSpec {
            path: path.into(),
            ..RouteSpec::default()
        }
    }
    /// Every one of these scopes is required.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.scopes = strings(s);
        self
    }
    /// At least one of these scopes is required.
    pub fn any_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.any_scopes = strings(s);
        self
    }
    /// At least one of these roles is required.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.roles = strings(s);
        self
    }
    /// Only these methods (`GET` admits `HEAD`).
    pub fn methods<I: IntoIterator<Item = S>, S: Into<String>>(mut self, m: I) -> Self {
        self.methods = Some(strings(m));
        self
    }
    /// Only this host.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }
    /// No token needed (`auth = "none"`).
    pub fn public(mut self) -> Self {
        self.auth = Some("none".into());
        self
    }
    /// A token checked when present (`auth = "optional"`).
    pub fn optional(mut self) -> Self {
        self.auth = Some("optional".into());
        self
    }
    /// The name in logs.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Verification of tokens signed with keys the application holds (`[tokens]`).
struct Own {
    rules: ClaimRules,
    keys: Vec<(String, Algorithm, DecodingKey)>,
}

impl fmt::Debug for Own {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.0.as_str()).collect();
        f.debug_struct("Own")
            .field("rules", &self.rules)
            .field("kids", &kids)
            .finish()
    }
}

/// Builds an [`AuthLayer`].
#[derive(Debug, Default)]
pub struct Builder {
    own: Option<Own>,
    issuers: Vec<IssuerConfig>,
    roles: HashMap<String, Vec<String>>,
    routes: Option<Vec<RouteSpec>>,
    pub(super) issues: Vec<Issue>,
    pub(super) file: Option<PathBuf>,
}

/// A name usable as a scope or role: visible ASCII, no space, quote, comma or backslash.
fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b','))
}

impl Builder {
    pub(super) fn issue(&mut self, key: impl Into<String>, problem: impl Into<String>, fix: &str) {
        self.issues.push(Issue {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn own(&mut self) -> &mut Own {
        self.own.get_or_insert_with(|| Own {
            rules: ClaimRules::new(String::new(), Vec::new(), Duration::from_secs(60)),
            keys: Vec::new(),
        })
    }

    /// The `iss` of the application's own tokens (`[tokens] issuer`).
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.own().rules.issuer = issuer.into();
        self
    }
    /// An audience own tokens may name (`aud` must name one of them).
    pub fn audience(mut self, aud: &str) -> Self {
        self.own().rules.audiences.push(aud.into());
        self
    }
    /// Opts out of the `aud` check for own tokens (`verify_audience = false`).
    pub fn allow_any_audience(mut self) -> Self {
        self.own().rules.verify_audience = false;
        self
    }
    /// Does not compare `iss` with the issuer (`verify_issuer = false`): only for
    /// tokens minted elsewhere with the application's keys.
    pub fn without_issuer_check(mut self) -> Self {
        self.own().rules.verify_issuer = false;
        self
    }
    /// Clock-skew allowance (default 60 s, at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.own().rules.leeway = leeway;
        self
    }
    /// Bound on `exp - iat` (then `iat` is required).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.own().rules.max_lifetime = Some(max);
        self
    }
    /// Where scopes and roles are in own tokens (default `scope`/`scp`, `roles`).
    pub fn claim_mapping(mut self, mapping: ClaimMapping) -> Self {
        self.own().rules.mapping = mapping;
        self
    }
    /// An HS256 verification key (at least 32 bytes).
    pub fn hs256_key(self, kid: &str, secret: &[u8]) -> Self {
        self.key(kid, "HS256", secret)
    }
    /// A verification key: `alg` `HS256` (the secret) or `RS256`/`ES256`/`EdDSA` (a
    /// PEM public key).
    pub fn key(mut self, kid: &str, alg: &str, material: &[u8]) -> Self {
        let at = format!("tokens.keys[{}]", self.own().keys.len());
        let Some(a) = parse_alg(alg) else {
            self.issue(
                format!("{at}.alg"),
                format!("\"{alg}\" is not supported"),
                "use HS256, RS256, ES256 or EdDSA",
            );
            return self;
        };
        match decoding_key(a, material) {
            Ok(k) => self.own().keys.push((kid.into(), a, k)),
            Err(e) => self.issue(at, e, "point it at the right key material"),
        }
        self
    }
    /// An external issuer whose keys come from its JWKS; its tokens are picked by
    /// `iss` and must name one of `audiences`. Defaults as in `[[issuers]]` (RS256,
    /// leeway 60 s, refresh between 1 m and 1 h, unknown-`kid` cooldown 30 s).
    pub fn jwks_issuer(self, issuer: &str, jwks_url: &str, audiences: &[&str]) -> Self {
        self.external_issuer(IssuerConfig {
            issuer: issuer.into(),
            source: JwksSource::Url(jwks_url.into()),
            algorithms: vec![Algorithm::RS256],
            rules: ClaimRules::new(
                issuer.into(),
                strings(audiences.iter().copied()),
                Duration::from_secs(60),
            ),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(30),
        })
    }
    /// An external issuer, every setting given.
    pub fn external_issuer(mut self, issuer: IssuerConfig) -> Self {
        self.issuers.push(issuer);
        self
    }
    /// `[roles]`: a role and the scopes it grants.
    pub fn role<I: IntoIterator<Item = S>, S: Into<String>>(mut self, role: &str, s: I) -> Self {
        self.roles.insert(role.into(), strings(s));
        self
    }
    /// A route's policy. With routes, a request no route matches is refused (`404`);
    /// without any, every request needs a valid token.
    pub fn route(mut self, route: RouteSpec) -> Self {
        self.routes.get_or_insert_with(Vec::new).push(route);
        self
    }

    /// Checks everything and builds the layer. With external issuers it must run
    /// inside a Tokio runtime: their JWKS refreshers are spawned on it.
    pub fn build(mut self) -> Result<AuthLayer<JsonRenderer>, ConfigError> {
        let own = self.own.take().map(|o| self.check_own(o));
        let issuers = std::mem::take(&mut self.issuers);
        let own_iss = own.as_ref().map(|v| v.issuer.clone());
        self.check_issuers(&issuers, own_iss.as_deref());
        let routes = self.routes.take().map(|r| self.check_routes(r));
        let roles = std::mem::take(&mut self.roles);
        for (role, scopes) in &roles {
            if !name_ok(role) || !scopes.iter().all(|s| name_ok(s)) {
                self.issue(
                    format!("roles.{role}"),
                    "a role or scope name is empty or has a space, quote, comma or backslash",
                    "use names such as \"orders:read\"",
                );
            }
        }
        if own.is_none() && issuers.is_empty() {
            self.issue(
                "tokens",
                "no key and no issuer configured: no token could be accepted",
                "add [tokens] with [[tokens.keys]], or an [[issuers]] entry",
            );
        }
        if !issuers.is_empty() && tokio::runtime::Handle::try_current().is_err() {
            self.issue(
                "issuers",
                "the layer is built outside a Tokio runtime; JWKS refreshers need one",
                "build the layer inside the application's runtime (e.g. in #[tokio::main])",
            );
        }
        if !self.issues.is_empty() {
            return Err(ConfigError {
                file: self.file,
                issues: self.issues,
            });
        }
        let issuers = issuers
            .into_iter()
            .map(|c| {
                let client = JwksClient::new(c);
                // Checked above: the layer is built inside a runtime.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    client.spawn_refresher(&rt);
                }
                (client.config.issuer.clone(), client)
            })
            .collect();
        let policy = Policy {
            own,
            issuers,
            roles,
            router: routes.map(Router::new),
        };
        Ok(AuthLayer {
            policy: Arc::new(policy),
            renderer: JsonRenderer::default(),
        })
    }

    fn check_own(&mut self, o: Own) -> Verifier {
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

    fn check_issuers(&mut self, issuers: &[IssuerConfig], own: Option<&str>) {
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

    fn check_routes(&mut self, specs: Vec<RouteSpec>) -> Vec<RoutePolicy> {
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
