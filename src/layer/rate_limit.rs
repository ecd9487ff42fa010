//! A route's `[rate_limits]` policy (`rate_limit = "…"`, else `default`): `429` with
//! `Retry-After` and the RateLimit headers when refused (rendered in `error.rs`).
//!
//! The layer appears twice in the route stack: before authentication it counts the
//! policies keyed without identity (`ip`, `route`, `header:`…: a flood is refused before
//! any token is verified), after it the policies keyed by `subject` or `client`. An
//! in-memory decision is synchronous; a Redis decision is the one place this layer
//! boxes a future (it owns the request and the inner service until Redis answers).

use std::sync::Arc;

use futures_util::FutureExt as _;
use http::{HeaderMap, Request, Response};
use tower::{Layer, Service};

use super::facts::{ctx, Admitted, Early, OrBoxed, Rejection, Target};
use crate::auth::principal::Principal;
use crate::body::Body;
use crate::error::{GatewayError, OrInternal as _};
use crate::ratelimit::{KeyInput, Policy};

/// Which policies this copy of the layer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Policies whose key needs no identity.
    BeforeAuth,
    /// Policies keyed by subject or client.
    AfterAuth,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimitLayer {
    phase: Phase,
}

impl RateLimitLayer {
    pub fn before_auth() -> RateLimitLayer {
        RateLimitLayer {
            phase: Phase::BeforeAuth,
        }
    }

    pub fn after_auth() -> RateLimitLayer {
        RateLimitLayer {
            phase: Phase::AfterAuth,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            phase: self.phase,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    phase: Phase,
}

/// What a decision needs, owned (for the Redis path).
struct Decide {
    policy: Arc<Policy>,
    ip: std::net::IpAddr,
    principal: Option<Arc<Principal>>,
    route: Arc<str>,
}

impl Decide {
    fn input<'a>(&'a self, headers: &'a HeaderMap) -> KeyInput<'a> {
        let p = self.principal.as_deref();
        KeyInput {
            ip: self.ip,
            issuer: p.map(|p| p.issuer.as_str()),
            subject: p.map(|p| p.subject.as_str()),
            client_id: p.and_then(|p| p.client_id.as_deref()),
            route: &self.route,
            headers,
            username: None,
        }
    }
}

fn refused(policy: &Policy, retry_after: u64) -> GatewayError {
    GatewayError::RateLimited {
        policy: policy.name.clone(),
        policy_header: policy.policy_header(),
        retry_after,
    }
}

/// The policy this phase counts for the request, if any.
fn policy_for<B>(req: &Request<B>, phase: Phase) -> Result<Option<Decide>, GatewayError> {
    let c = ctx(req)?;
    let config = &c.snap.config;
    let route = match req.extensions().get::<Target>() {
        Some(Target::Route(i) | Target::ForwardAuth(i)) => config.router.routes().get(*i),
        _ => None,
    }
    .or_internal()?;
    let Some(policy) = c.snap.rate_limit(route.rate_limit.as_deref()) else {
        return Ok(None);
    };
    if policy.key.needs_identity() != (phase == Phase::AfterAuth) {
        return Ok(None);
    }
    let principal = match phase {
        Phase::BeforeAuth => None,
        Phase::AfterAuth => req
            .extensions()
            .get::<Admitted>()
            .and_then(|a| a.0.as_ref())
            .map(|(p, _)| p.clone()),
    };
    Ok(Some(Decide {
        policy: policy.clone(),
        ip: c.client_ip,
        principal,
        route: Arc::from(route.name.as_str()),
    }))
}

pub type ResponseFuture<F> = OrBoxed<Early<F>>;

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let now = |inner| OrBoxed::Now { inner };
        let d = match policy_for(&req, self.phase) {
            Ok(Some(d)) => d,
            Ok(None) => return now(Early::inner(self.inner.call(req))),
            Err(e) => return now(Early::refused(e)),
        };
        if d.policy.in_memory() {
            // In memory: decided without waiting.
            let decided = d.policy.check(&d.input(req.headers())).now_or_never();
            return match decided {
                Some(Ok(())) => now(Early::inner(self.inner.call(req))),
                Some(Err(retry)) => now(Early::refused(refused(&d.policy, retry))),
                None => now(Early::refused(GatewayError::Internal)),
            };
        }
        // Redis: this copy of the (ready) inner service waits with the request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        OrBoxed::Boxed {
            inner: Box::pin(async move {
                if let Err(retry) = d.policy.check(&d.input(req.headers())).await {
                    return Err(refused(&d.policy, retry).into());
                }
                inner.call(req).await
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{recorder, routed, snapshot};
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn an_ip_policy_counts_before_auth_and_refuses_past_its_budget() {
        let s = snapshot(
            "[rate_limits.tight]\nkey = \"ip\"\nrate = \"2/1m\"\n\n\
             [[routes]]\nname = \"orders\"\npath = \"/orders/**\"\nupstream = \"echo\"\n\
             rate_limit = \"tight\"\n",
        );
        let before = RateLimitLayer::before_auth().layer(recorder());
        let after = RateLimitLayer::after_auth().layer(recorder());
        // The after-auth copy never counts an IP policy.
        for _ in 0..5 {
            let out = after
                .clone()
                .oneshot(routed(&s, "/orders/1", "orders"))
                .await;
            assert!(out.is_ok());
        }
        for _ in 0..2 {
            let out = before
                .clone()
                .oneshot(routed(&s, "/orders/1", "orders"))
                .await;
            assert!(out.is_ok());
        }
        match before.oneshot(routed(&s, "/orders/1", "orders")).await {
            Err(Rejection {
                error:
                    GatewayError::RateLimited {
                        policy,
                        retry_after,
                        ..
                    },
                ..
            }) => {
                assert_eq!(policy, "tight");
                assert!(retry_after >= 1);
            }
            other => panic!("expected 429, got {:?}", other.map(|r| r.status())),
        }
    }
}
