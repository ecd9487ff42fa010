//! [`RequireScopes`]: one route's requirement, for applications that put the policy
//! next to their handlers (an axum `route_layer`, one tonic method) instead of in
//! `[[routes]]`.
//!
//! It reads what [`super::AuthLayer`] put on the request — the
//! [`Principal`] and its effective [`Scopes`] — and applies the gateway's rule
//! (`policy::scope::check`); without a principal the request is refused `401`, so it
//! fails closed when the `AuthLayer` is missing or the route is public there.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::render::{Denial, DenialRenderer, JsonRenderer};
use super::service::{refuse, AuthBody, ResponseFuture};
use super::Scopes;
use crate::auth::principal::Principal;
use crate::policy::scope::{self, Requirement};

/// Requires scopes (all of them), any of a set of scopes, and/or one of a set of roles.
#[derive(Debug, Clone)]
pub struct RequireScopes<R = JsonRenderer> {
    scopes: Vec<String>,
    any_scopes: Vec<String>,
    roles: Vec<String>,
    renderer: R,
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(v: I) -> Vec<String> {
    v.into_iter().map(Into::into).collect()
}

impl RequireScopes {
    /// Every one of `scopes` is required.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> RequireScopes {
        RequireScopes {
            scopes: strings(scopes),
            any_scopes: Vec::new(),
            roles: Vec::new(),
            renderer: JsonRenderer::default(),
        }
    }

    /// At least one of `scopes` is required.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> RequireScopes {
        RequireScopes {
            any_scopes: strings(scopes),
            ..RequireScopes::all(Vec::<String>::new())
        }
    }
}

impl<R: DenialRenderer> RequireScopes<R> {
    /// Also at least one of `roles`.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = strings(roles);
        self
    }

    /// Refusals written by `renderer` (e.g. [`super::GrpcRenderer`]).
    pub fn with_renderer<R2: DenialRenderer>(self, renderer: R2) -> RequireScopes<R2> {
        RequireScopes {
            scopes: self.scopes,
            any_scopes: self.any_scopes,
            roles: self.roles,
            renderer,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireScopes<R> {
    type Service = Require<S, R>;

    fn layer(&self, inner: S) -> Require<S, R> {
        Require {
            inner,
            spec: RequireScopes {
                scopes: self.scopes.clone(),
                any_scopes: self.any_scopes.clone(),
                roles: self.roles.clone(),
                renderer: self.renderer.clone(),
            },
        }
    }
}

/// The service [`RequireScopes`] builds.
#[derive(Debug, Clone)]
pub struct Require<S, R> {
    inner: S,
    spec: RequireScopes<R>,
}

impl<S, R> Require<S, R> {
    fn check<B>(&self, req: &Request<B>) -> Result<(), Denial> {
        let p = req
            .extensions()
            .get::<Principal>()
            .ok_or(Denial::MissingToken)?;
        let want = Requirement {
            scopes: &self.spec.scopes,
            any_scopes: &self.spec.any_scopes,
            roles: &self.spec.roles,
        };
        // The effective scopes already include `[roles]`' grants.
        let effective = match req.extensions().get::<Scopes>() {
            Some(Scopes(s)) => s.as_slice(),
            None => p.scopes.as_slice(),
        };
        scope::check_effective(want, effective, &p.roles).map_err(Denial::InsufficientScope)
    }
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for Require<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    R: DenialRenderer,
{
    type Response = Response<AuthBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match self.check(&req) {
            Ok(()) => ResponseFuture::Inner {
                inner: self.inner.call(req),
            },
            Err(d) => ResponseFuture::Denied {
                resp: Some(refuse(&self.spec.renderer, &d)),
            },
        }
    }
}
