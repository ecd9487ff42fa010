//! CORS preflights the classifier marked ([`Target::Preflight`]) are answered here, by
//! the policy of the route the actual request would take (else `[cors]`), before any
//! credential is asked for: a grant is `204` with the `Access-Control-Allow-*` headers;
//! anything else is `403 cors_denied` through the error renderer. Nothing reaches the
//! token service or an upstream.

use http::{Request, Response};
use tower::Service;

use super::facts::{ctx, Answered, Early, Rejection, Target};
use crate::body::Body;
use crate::error::{GatewayError, OrInternal as _, Reason};

unit_layer!(PreflightLayer => Preflight);

fn answer<B>(req: &Request<B>, route: Option<usize>) -> Result<Response<Body>, GatewayError> {
    let config = &ctx(req)?.snap.config;
    let policy = route
        .and_then(|i| config.router.routes().get(i))
        .and_then(|r| r.cors.as_ref())
        .or(config.cors.as_ref())
        .or_internal()?;
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

    forward_ready!();

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{recorder, request_with_ctx, snapshot};
    use tower::{Layer as _, ServiceExt as _};

    fn preflight(origin: &str) -> Request<()> {
        let s = snapshot("[cors]\nallow_origins = [\"https://app.test\"]\n");
        let mut req = request_with_ctx(&s, "/public/x");
        *req.method_mut() = http::Method::OPTIONS;
        let h = req.headers_mut();
        h.insert("origin", origin.parse().expect("value"));
        h.insert(
            "access-control-request-method",
            "GET".parse().expect("value"),
        );
        req.extensions_mut().insert(Target::Preflight(None));
        req
    }

    #[tokio::test]
    async fn a_preflight_is_answered_here_and_never_forwarded() {
        let resp = PreflightLayer
            .layer(recorder())
            .oneshot(preflight("https://app.test"))
            .await
            .expect("granted");
        assert_eq!(resp.status(), 204);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "https://app.test"
        );
        // The recorder would have echoed the request's headers.
        assert!(!resp.headers().contains_key("x-seen-origin"));
        let out = PreflightLayer
            .layer(recorder())
            .oneshot(preflight("https://evil.test"))
            .await;
        assert!(matches!(
            out,
            Err(Rejection {
                error: GatewayError::CorsDenied,
                ..
            })
        ));
    }
}
