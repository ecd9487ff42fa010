//! The layer's policy from a `gateway.toml` fragment: `[tokens]` (verification keys
//! only), `[[issuers]]`, `[roles]` and `[[routes]]` (policy keys only), with the
//! gateway's key names, defaults and meaning — a service and the gateway in front of
//! it can share one policy file.
//!
//! Unknown keys are refused, as in `gateway.toml`; keys that only make sense in the
//! gateway (`upstream`, `signing_key`, `[server]`…) are unknown here, so a file
//! written for the gateway is refused rather than half-understood.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::builder::{Builder, ConfigError, Issue, RouteSpec};
use crate::auth::jwks::{IssuerConfig, JwksSource};
use crate::auth::jwt::{parse_alg, ClaimRules};
use crate::auth::principal::{ClaimMapping, ClaimPath};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    tokens: Option<Tokens>,
    #[serde(default)]
    issuers: Vec<Issuer>,
    #[serde(default)]
    roles: HashMap<String, Vec<String>>,
    routes: Option<Vec<RouteSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn default_scope_claim() -> OneOrMany {
    OneOrMany::Many(vec!["scope".into(), "scp".into()])
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway() -> String {
    "60s".into()
}
fn default_true() -> bool {
    true
}

/// `[tokens]`, its verification keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tokens {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default = "default_leeway")]
    leeway: String,
    max_lifetime: Option<String>,
    #[serde(default = "default_true")]
    verify_issuer: bool,
    #[serde(default = "default_true")]
    verify_audience: bool,
    #[serde(default = "default_scope_claim")]
    scope_claim: OneOrMany,
    #[serde(default = "default_roles_claim")]
    roles_claim: String,
    #[serde(default = "default_true")]
    expand_roles: bool,
    #[serde(default)]
    keys: Vec<Key>,
}

/// `[[tokens.keys]]`: a verification key; secrets from a file or the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    kid: String,
    alg: String,
    secret_env: Option<String>,
    secret_file: Option<String>,
    public_key: Option<String>,
}

/// `[[issuers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Issuer {
    issuer: String,
    jwks_url: Option<String>,
    #[serde(default)]
    discovery: bool,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    leeway: String,
    max_lifetime: Option<String>,
    #[serde(default = "default_scope_claim")]
    scope_claim: OneOrMany,
    #[serde(default = "default_roles_claim")]
    roles_claim: String,
    #[serde(default = "default_true")]
    expand_roles: bool,
    #[serde(default = "d_min")]
    min_refresh: String,
    #[serde(default = "d_max")]
    max_refresh: String,
    #[serde(default = "d_cooldown")]
    unknown_kid_cooldown: String,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn d_min() -> String {
    "1m".into()
}
fn d_max() -> String {
    "1h".into()
}
fn d_cooldown() -> String {
    "30s".into()
}

fn mapping(scope: OneOrMany, roles: String, expand_roles: bool) -> ClaimMapping {
    let scope_claims = match scope {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    ClaimMapping {
        scope_claims: scope_claims.into_iter().map(ClaimPath).collect(),
        roles_claim: ClaimPath(roles),
        expand_roles,
    }
}

impl Builder {
    fn duration(&mut self, key: String, v: &str) -> Duration {
        humantime::parse_duration(v).unwrap_or_else(|e| {
            self.issue(
                key,
                format!("\"{v}\" is not a duration: {e}"),
                "write e.g. \"30s\", \"5m\"",
            );
            Duration::ZERO
        })
    }

    /// The policy in `text`, a `gateway.toml` fragment; relative key paths start at
    /// `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Builder, ConfigError> {
        let f: Fragment = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            issues: vec![Issue {
                key: "(syntax)".into(),
                problem: e.message().to_string(),
                fix: "the fragment takes [tokens], [[issuers]], [roles] and [[routes]] with their policy keys".into(),
            }],
        })?;
        let mut b = Builder::default();
        if let Some(t) = f.tokens {
            b = b.tokens(t, base_dir);
        }
        for (i, is) in f.issuers.into_iter().enumerate() {
            b = b.toml_issuer(i, is);
        }
        for (role, scopes) in f.roles {
            b = b.role(&role, scopes);
        }
        for r in f.routes.into_iter().flatten() {
            b = b.route(r);
        }
        Ok(b)
    }

    fn tokens(mut self, t: Tokens, base_dir: &Path) -> Builder {
        let leeway = self.duration("tokens.leeway".into(), &t.leeway);
        let max_lifetime = t
            .max_lifetime
            .map(|m| self.duration("tokens.max_lifetime".into(), &m));
        self = self.issuer(&t.issuer).leeway(leeway);
        for a in &t.audiences {
            self = self.audience(a);
        }
        if !t.verify_audience {
            self = self.allow_any_audience();
        }
        if let Some(m) = max_lifetime {
            self = self.max_lifetime(m);
        }
        self = self.claim_mapping(mapping(t.scope_claim, t.roles_claim, t.expand_roles));
        if !t.verify_issuer {
            self = self.without_issuer_check();
        }
        for (i, k) in t.keys.into_iter().enumerate() {
            let at = format!("tokens.keys[{i}]");
            let material = match (&k.secret_env, &k.secret_file, &k.public_key) {
                (Some(env), None, None) => std::env::var(env).map(String::into_bytes).map_err(|_| {
                    format!("environment variable {env} is not set")
                }),
                (None, Some(file), None) | (None, None, Some(file)) => {
                    let p = base_dir.join(file);
                    std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
                }
                _ => Err("needs exactly one of secret_env, secret_file (HS256) and public_key (RS256, ES256, EdDSA)".into()),
            };
            let hs = parse_alg(&k.alg) == Some(jsonwebtoken::Algorithm::HS256);
            match material {
                Ok(m) if hs == k.public_key.is_none() => {
                    // A secret file's trailing newline is not part of the secret.
                    let m = if k.secret_file.is_some() {
                        trim_end(m)
                    } else {
                        m
                    };
                    self = self.key(&k.kid, &k.alg, &m);
                }
                Ok(_) => self.issue(
                    at,
                    format!(
                        "a {} key takes {}",
                        k.alg,
                        if hs {
                            "secret_env or secret_file"
                        } else {
                            "public_key"
                        }
                    ),
                    "HS256: secret_env or secret_file; RS256/ES256/EdDSA: public_key (a PEM file)",
                ),
                Err(e) => self.issue(at, e, "point it at the key material"),
            }
        }
        self
    }

    fn toml_issuer(mut self, i: usize, f: Issuer) -> Builder {
        let key = |k: &str| format!("issuers[{i}].{k}");
        let source = match (f.jwks_url, f.discovery) {
            (Some(u), false) if u.starts_with("https://") || u.starts_with("http://") => {
                JwksSource::Url(u)
            }
            (None, true) if f.issuer.starts_with("https://") || f.issuer.starts_with("http://") => {
                JwksSource::Discovery
            }
            _ => {
                self.issue(
                    key("jwks_url"),
                    "needs exactly one of jwks_url (an http(s) URL) and discovery = true",
                    "set jwks_url = \"https://idp.example.com/.../jwks\" or discovery = true",
                );
                return self;
            }
        };
        let mut algorithms = Vec::new();
        for a in &f.algorithms {
            match parse_alg(a) {
                Some(alg) => algorithms.push(alg),
                None => self.issue(
                    key("algorithms"),
                    format!("\"{a}\" is not supported"),
                    "use RS256, ES256 or EdDSA",
                ),
            }
        }
        let leeway = self.duration(key("leeway"), &f.leeway);
        let max_lifetime = f
            .max_lifetime
            .map(|m| self.duration(key("max_lifetime"), &m));
        let min_refresh = self.duration(key("min_refresh"), &f.min_refresh);
        let max_refresh = self.duration(key("max_refresh"), &f.max_refresh);
        let cooldown = self.duration(key("unknown_kid_cooldown"), &f.unknown_kid_cooldown);
        let mut rules = ClaimRules::new(f.issuer.clone(), f.audiences, leeway);
        rules.max_lifetime = max_lifetime;
        rules.mapping = mapping(f.scope_claim, f.roles_claim, f.expand_roles);
        self.external_issuer(IssuerConfig {
            issuer: f.issuer,
            source,
            algorithms,
            rules,
            min_refresh,
            max_refresh: max_refresh.max(Duration::from_secs(1)),
            unknown_kid_cooldown: cooldown,
        })
    }
}

fn trim_end(mut m: Vec<u8>) -> Vec<u8> {
    while m.last().is_some_and(u8::is_ascii_whitespace) {
        m.pop();
    }
    m
}
