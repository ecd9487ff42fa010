//! The decision, without I/O: the request's canonical path → its [`RoutePolicy`], the
//! Bearer token → a verified [`Principal`] (own keys synchronously; an external
//! issuer, chosen by the token's `iss`, through its JWKS client), then the route's
//! scopes and roles through the gateway's own rule (`policy::scope::check`).
//!
//! Nothing here is a second copy of the gateway's rules: the header allow-list, the
//! claims check, the key selection, the JWKS refetch with its cooldown, the router
//! and the canonical path are the gateway's modules, called as they are.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};

use super::render::Denial;
use crate::auth::bearer::{self, Bearer};
use crate::auth::jwks::{peek_issuer, JwksClient};
use crate::auth::jwt::{TokenError, Verifier};
use crate::auth::principal::Principal;
use crate::policy::matcher::{normalize_host, Pattern, Routable, Router};
use crate::policy::path;
use crate::policy::scope::{self, Requirement};

/// Whether a route needs a token (`auth` in `[[routes]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Public: no token needed, none checked (`"none"`).
    Public,
    /// A valid token is required (`"required"`, the default).
    #[default]
    Required,
    /// A token is checked when present; without one the request passes anonymously
    /// (`"optional"`).
    Optional,
}

/// One route's policy: which requests it matches and what their caller needs.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    pub(super) name: String,
    pub(super) pattern: Pattern,
    pub(super) methods: Option<Vec<Method>>,
    pub(super) host: Option<String>,
    pub(super) access: Access,
    pub(super) scopes: Vec<String>,
    pub(super) any_scopes: Vec<String>,
    pub(super) roles: Vec<String>,
}

impl Routable for RoutePolicy {
    fn pattern(&self) -> &Pattern {
        &self.pattern
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }
}

impl RoutePolicy {
    /// The route's name (its pattern when unnamed).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn requirement(&self) -> Requirement<'_> {
        Requirement {
            scopes: &self.scopes,
            any_scopes: &self.any_scopes,
            roles: &self.roles,
        }
    }
}

/// Everything the layer decides with, shared by every clone of the service.
#[derive(Debug)]
pub(super) struct Policy {
    pub own: Option<Verifier>,
    /// By exact `iss`.
    pub issuers: HashMap<String, Arc<JwksClient>>,
    pub roles: HashMap<String, Vec<String>>,
    /// `None`: no `[[routes]]`, every request needs a valid token.
    pub router: Option<Router<RoutePolicy>>,
}

/// A verified caller and its effective scopes (token scopes plus `[roles]`' grants).
pub(super) type Admitted = Option<(Principal, Vec<String>)>;

/// What the synchronous part decided.
pub(super) enum Verdict {
    Done(Result<Admitted, Denial>),
    /// An external issuer's token: its JWKS client verifies it (maybe after a
    /// refetch), then [`Policy::finish`] authorizes it for the route.
    External {
        client: Arc<JwksClient>,
        token: String,
        route: Option<usize>,
    },
}

const REQUIRED: Access = Access::Required;

impl Policy {
    fn route(&self, i: Option<usize>) -> Option<&RoutePolicy> {
        Some(&self.router.as_ref()?.routes()[i?])
    }

    /// Picks the route, reads the credential and verifies what can be verified now.
    pub fn decide(&self, method: &Method, uri: &http::Uri, headers: &HeaderMap) -> Verdict {
        let route = match self.find_route(method, uri, headers) {
            Ok(r) => r,
            Err(d) => return Verdict::Done(Err(d)),
        };
        let access = self.route(route).map_or(REQUIRED, |r| r.access);
        let token = match (access, bearer::extract(headers)) {
            (Access::Public, _) => return Verdict::Done(Ok(None)),
            (Access::Optional, Bearer::Missing) => return Verdict::Done(Ok(None)),
            (Access::Required, Bearer::Missing) => return Verdict::Done(Err(Denial::MissingToken)),
            (_, Bearer::Malformed(m)) => {
                return Verdict::Done(Err(Denial::MalformedAuthorization(m)))
            }
            (_, Bearer::Token(t)) => t,
        };
        // The issuer is chosen by the token's `iss`, never by trying each one.
        if let Some(client) = peek_issuer(token).and_then(|iss| self.issuers.get(&iss)) {
            return Verdict::External {
                client: client.clone(),
                token: token.to_string(),
                route,
            };
        }
        let verified = match &self.own {
            Some(v) => v.verify(token),
            None => Err(TokenError::UnknownKey),
        };
        Verdict::Done(self.finish(route, verified))
    }

    /// The route's scopes and roles for a verification's result.
    pub fn finish(
        &self,
        route: Option<usize>,
        verified: Result<Principal, TokenError>,
    ) -> Result<Admitted, Denial> {
        let p = verified.map_err(|e| {
            tracing::debug!(reason = %e, "token refused");
            Denial::InvalidToken(e)
        })?;
        let none = Requirement {
            scopes: &[],
            any_scopes: &[],
            roles: &[],
        };
        let req = self.route(route).map_or(none, RoutePolicy::requirement);
        let effective = scope::check(req, &p, &self.roles).map_err(Denial::InsufficientScope)?;
        Ok(Some((p, effective)))
    }

    /// The route for the request's canonical path, method and host (`None`: no
    /// `[[routes]]` configured).
    fn find_route(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Result<Option<usize>, Denial> {
        let Some(router) = &self.router else {
            return Ok(None);
        };
        let canonical = path::canonicalize(uri.path())
            .map_err(|_| Denial::BadRequest("the path is not in canonical form"))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                let h = headers.get(http::header::HOST)?;
                h.to_str().ok().map(str::to_string)
            })
            .and_then(|h| normalize_host(&h));
        match router.find_index(method, host.as_deref(), &canonical) {
            Ok(i) => Ok(Some(i)),
            Err(Some(allow)) => Err(Denial::MethodNotAllowed(allow)),
            Err(None) => Err(Denial::NoRoute),
        }
    }
}
