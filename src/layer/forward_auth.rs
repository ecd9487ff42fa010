//! The forward-auth stack's terminal service (nginx `auth_request`, Traefik
//! ForwardAuth…): the layers above routed, rate limited, authenticated and authorized
//! the request a trusted proxy described exactly like a proxied one; the answer is
//! `200` with the identity headers the upstream would get (empty for an anonymous
//! request a route admits), or the same denial a proxied request would get.

use std::future::Pending;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::facts::{ctx, Admitted, Early, Outcome, Rejection};
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
    // Early (its outcome boxed) rather than `Ready<Outcome>`: the route stack's
    // future shares an enum with this one (layer/dispatch.rs), so keep it small.
    type Future = Early<Pending<Outcome>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Early::ready(answer(&req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{request_with_ctx, snapshot};
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn an_anonymous_admitted_request_gets_a_bare_200() {
        let s = snapshot("");
        let mut req = request_with_ctx(&s, "/auth");
        req.extensions_mut().insert(Admitted(None));
        let resp = ForwardAuthAnswer.oneshot(req).await.expect("200");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().is_empty());
        // Without the auth layer's verdict there is no answer but a 500.
        let req = request_with_ctx(&s, "/auth");
        assert!(ForwardAuthAnswer.oneshot(req).await.is_err());
    }
}
