//! [`Builder`]: the layer's policy in code — own keys, external issuers, roles and
//! routes — checked all at once by [`Builder::build`], which lists every problem with
//! its key and fix ([`ConfigError`]), as `portcullis check` does for `gateway.toml`.
//!
//! Safe by default: `aud` is required (a `[tokens]` without audiences is refused
//! unless [`Builder::allow_any_audience`] says so explicitly); external issuers always
//! check `aud`; HS256 never comes from a JWKS; scopes and roles are names that can be
//! quoted in `WWW-Authenticate`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::policy::Policy;
use super::render::JsonRenderer;
use super::AuthLayer;
use crate::auth::jwks::{IssuerConfig, JwksClient, JwksSource};
use crate::auth::jwt::{decoding_key, parse_alg, ClaimRules};
use crate::auth::principal::ClaimMapping;
use crate::policy::matcher::Router;

mod checks;
mod spec;

use spec::strings;
pub use spec::{ConfigError, Issue, RouteSpec};

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
}
