//! CORS preflights the classifier marked ([`Target::Preflight`]) are answered here, by
//! the policy of the route the actual request would take (else `[cors]`), before any
//! credential is asked for: a grant is `204` with the `Access-Control-Allow-*` headers;
//! anything else is `403 cors_denied` through the error renderer. Nothing reaches the
//! token service or an upstream.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::facts::{ctx, Answered, Early, Rejection, Target};
use crate::body::Body;
use crate::error::{GatewayError, Reason};

#[derive(Debug, Clone, Copy, Default)]
pub struct PreflightLayer;

impl<S> Layer<S> for PreflightLayer {
    type Service = Preflight<S>;

    fn layer(&self, inner: S) -> Preflight<S> {
        Preflight { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Preflight<S> {
    inner: S,
}

fn answer<B>(req: &Request<B>, route: Option<usize>) -> Result<Response<Body>, GatewayError> {
    let config = &ctx(req)?.snap.config;
    let policy = route
        .and_then(|i| config.router.routes().get(i))
        .and_then(|r| r.cors.as_ref())
        .or(config.cors.as_ref())
        .ok_or(GatewayError::Internal)?;
    let mut resp = policy.preflight(req.headers())?;
    resp.extensions_mut().insert(Answered(Reason::Preflight));
    Ok(resp)
}

impl<S, B> Service<Request<B>> for Preflight<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Early<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match req.extensions().get::<Target>() {
            Some(Target::Preflight(route)) => match answer(&req, *route) {
                Ok(resp) => Early::answered(resp),
                Err(e) => Early::refused(e),
            },
            _ => Early::inner(self.inner.call(req)),
        }
    }
}
