//! The forward-auth stack's terminal service (nginx `auth_request`, Traefik
//! ForwardAuth…): the layers above routed, rate limited, authenticated and authorized
//! the request a trusted proxy described exactly like a proxied one; the answer is
//! `200` with the identity headers the upstream would get (empty for an anonymous
//! request a route admits), or the same denial a proxied request would get.

use std::future::Ready;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::facts::{ctx, Admitted, Outcome, Rejection};
use crate::body::Body;
use crate::error::GatewayError;

#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardAuthAnswer;

fn answer<B>(req: &Request<B>) -> Outcome {
    let snap = &ctx(req)?.snap;
    let mut resp = Response::new(Body::Empty);
    match req.extensions().get::<Admitted>() {
        Some(Admitted(Some((p, effective)))) => {
            snap.identity
                .inject(resp.headers_mut(), p, effective, &snap.config.claim_headers)
        }
        Some(Admitted(None)) => {}
        None => return Err(GatewayError::Internal.into()),
    }
    Ok(resp)
}

impl<B> Service<Request<B>> for ForwardAuthAnswer {
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Ready<Outcome>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(answer(&req))
    }
}
