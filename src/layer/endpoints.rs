//! The token service's terminal service: `/token`, `/revoke`, `/register`, JWKS and
//! the metadata documents (`token/endpoint.rs`). A refusal is a `GatewayError::OAuth`
//! rendered by the one error renderer (RFC 6749 §5.2 shape, `no-store`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::facts::{ctx, Outcome, Rejection, Target};
use crate::body::Body;
use crate::error::{GatewayError, OrInternal as _};
use crate::token::endpoint::serve;

#[derive(Debug, Clone, Copy, Default)]
pub struct Endpoints;

async fn answer<B>(req: Request<B>) -> Outcome
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let c = ctx(&req)?.clone();
    let Some(Target::Endpoint(ep)) = req.extensions().get::<Target>().copied() else {
        return Err(GatewayError::Internal.into());
    };
    let svc = c.snap.config.token_service.as_ref().or_internal()?;
    let rt = c.snap.token_runtime.as_deref();
    // Over TLS, or behind a TLS-terminating proxy (an https issuer): `__Host-`, Secure.
    let secure = c.peer.tls.is_some() || svc.issuer.starts_with("https://");
    Ok(serve(ep, req, c.client_ip, secure, &c.snap, svc, rt).await?)
}

impl<B> Service<Request<B>> for Endpoints
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Outcome> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(answer(req))
    }
}
