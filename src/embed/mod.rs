//! Portcullis' token verification and route policy as a tower layer, for Rust services
//! (axum, tonic, hyper) that want the gateway's rules without the gateway.
//!
//! ```text
//! let auth = AuthLayer::from_file("auth.toml".as_ref())?;      // or AuthLayer::builder()
//! let app = Router::new()
//!     .route("/orders/{id}", get(order))
//!     .route_layer(RequireScopes::all(["orders:write"]))      // one route, optional
//!     .layer(auth);                                           // every route
//! async fn order(caller: Principal) -> String { caller.subject }   // feature "axum"
//! ```
//!
//! - [`AuthLayer`]: built from a `gateway.toml` fragment ([`AuthLayer::from_toml`]:
//!   `[tokens]`, `[[issuers]]`, `[roles]`, `[[routes]]` with their policy keys) or a
//!   [`Builder`]. It verifies the Bearer token, picks the route by the canonical path,
//!   applies its `auth`, `scopes`, `any_scopes` and `roles`, and hands the inner
//!   service the [`Principal`] and its effective [`Scopes`] as request extensions.
//! - [`RequireScopes`]: one route's requirement, placed where the route is defined.
//! - Refusals go through a [`DenialRenderer`]: [`JsonRenderer`] (RFC 6750 JSON with
//!   `WWW-Authenticate`, the default) or [`GrpcRenderer`] (`grpc-status` `16` / `7` in
//!   a trailers-only response), or the application's own.
//!
//! The rules are the gateway's own modules, not a copy: the JOSE header allow-list
//! (`alg` pinned per key, `typ` only `JWT`/`at+jwt`, `crit`/`enc`/`zip` refused,
//! `jku`/`x5u`/`jwk` never followed), the one claims check (`exp` required, `nbf`,
//! `iat`, `max_lifetime`, `iss` a string equal to the issuer, `aud` required unless
//! opted out explicitly), the issuer chosen by the token's `iss` (never by trying
//! each), JWKS refreshed in the background and refetched on an unknown `kid` with a
//! cooldown and no lock held over the fetch, the router and the canonical path.
//!
//! What the embedded layer does not do (the gateway does): API keys, the verified-token
//! cache, the revocation deny-list, rate limits, identity headers. Build it with
//! `default-features = false, features = ["layer"]` to leave the server, sqlx and
//! Redis out of the dependency tree.

use std::path::Path;
use std::sync::Arc;

use tower::Layer;

mod builder;
mod config;
#[cfg(feature = "axum")]
mod extract;
mod policy;
mod render;
mod require;
mod service;

pub use crate::auth::bearer::Malformed;
pub use crate::auth::jwks::{IssuerConfig, JwksSource};
pub use crate::auth::jwt::{ClaimRules, TokenError};
pub use crate::auth::principal::{ClaimMapping, ClaimPath, Principal};
pub use builder::{Builder, ConfigError, Issue, RouteSpec};
pub use policy::{Access, RoutePolicy};
pub use render::{Denial, DenialRenderer, GrpcRenderer, JsonRenderer};
pub use require::{Require, RequireScopes};
pub use service::{Auth, AuthBody, ResponseFuture};

/// Request extension: the caller's effective scopes (the token's, plus what `[roles]`
/// grants its roles), next to its [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(pub Vec<String>);

/// Authenticates and authorizes every request of the service it wraps.
#[derive(Debug, Clone)]
pub struct AuthLayer<R = JsonRenderer> {
    policy: Arc<policy::Policy>,
    renderer: R,
}

impl AuthLayer {
    /// A builder for the policy in code.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The policy in `text`, a `gateway.toml` fragment; relative key files are read
    /// from the current directory. With `[[issuers]]`, call it inside a Tokio runtime.
    pub fn from_toml(text: &str) -> Result<AuthLayer, ConfigError> {
        Builder::from_toml(text, Path::new("."))?.build()
    }

    /// The policy in a file; relative key files are read from its folder.
    pub fn from_file(path: &Path) -> Result<AuthLayer, ConfigError> {
        let with_file = |mut e: ConfigError| {
            e.file = Some(path.to_path_buf());
            e
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            with_file(ConfigError {
                file: None,
                issues: vec![Issue {
                    key: "(file)".into(),
                    problem: format!("cannot read the file: {e}"),
                    fix: "pass an existing, readable file".into(),
                }],
            })
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Builder::from_toml(&text, base)
            .and_then(Builder::build)
            .map_err(with_file)
    }
}

impl<R: DenialRenderer> AuthLayer<R> {
    /// Whether every external issuer's keys were fetched at least once (a readiness
    /// probe's answer; own keys are always ready). Until then their tokens wait for
    /// the first fetch, briefly, and are refused if it fails.
    pub fn is_ready(&self) -> bool {
        self.policy.issuers.values().all(|c| c.is_ready())
    }

    /// Refusals written by `renderer` (e.g. [`GrpcRenderer`] for a tonic service).
    pub fn with_renderer<R2: DenialRenderer>(self, renderer: R2) -> AuthLayer<R2> {
        AuthLayer {
            policy: self.policy,
            renderer,
        }
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = Auth<S, R>;

    fn layer(&self, inner: S) -> Auth<S, R> {
        Auth {
            inner,
            policy: self.policy.clone(),
            renderer: self.renderer.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
