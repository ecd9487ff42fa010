//! CORS on every answer (errors included): `Vary: Origin`, and the grant when the
//! origin is allowed, by the routed request's own policy or else `[cors]`; upstream
//! `Access-Control-*` headers are replaced (`middleware/cors.rs`). Preflights were
//! answered below (`preflight.rs`) and carry their own headers already.
//!
//! Our own rather than tower-http's `CorsLayer`: the policy is per route (known only
//! after classification), and a preflight must be answered after routing but before
//! authentication.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::ORIGIN;
use http::{HeaderValue, Request, Response};
use tower::Service;

use super::facts::{Ctx, Target};
use crate::body::Body;
use crate::state::Snapshot;

unit_layer!(CorsLayer => Cors);

impl<S, B> Service<Request<B>> for Cors<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let wanted = req
            .extensions()
            .get::<Ctx>()
            .filter(|c| c.snap.cors_anywhere)
            .map(|c| (c.snap.clone(), req.headers().get(ORIGIN).cloned()));
        ResponseFuture {
            inner: self.inner.call(req),
            wanted,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        wanted: Option<(Arc<Snapshot>, Option<HeaderValue>)>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut out = ready!(this.inner.poll(cx));
        if let (Ok(resp), Some((snap, origin))) = (&mut out, this.wanted.take()) {
            let config = &snap.config;
            let policy = match resp.extensions().get::<Target>() {
                Some(Target::Preflight(_)) => return Poll::Ready(out),
                Some(Target::Route(i)) => {
                    config.router.routes().get(*i).and_then(|r| r.cors.as_ref())
                }
                _ => None,
            };
            if let Some(p) = policy.or(config.cors.as_ref()) {
                p.decorate(origin.as_ref(), resp.headers_mut());
            }
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{request_with_ctx, snapshot};
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn every_answer_gets_vary_and_the_grant_for_an_allowed_origin() {
        let s = snapshot("[cors]\nallow_origins = [\"https://app.test\"]\n");
        for (origin, granted) in [("https://app.test", true), ("https://evil.test", false)] {
            let mut req = request_with_ctx(&s, "/public/x");
            req.headers_mut()
                .insert(ORIGIN, origin.parse().expect("value"));
            let svc = CorsLayer.layer(tower::service_fn(|_req: Request<()>| async {
                // An upstream's own CORS headers are replaced.
                let mut resp = Response::new(Body::Empty);
                resp.headers_mut()
                    .insert("access-control-allow-origin", HeaderValue::from_static("*"));
                Ok::<_, std::convert::Infallible>(resp)
            }));
            let resp = svc.oneshot(req).await.expect("infallible");
            let h = resp.headers();
            assert!(h.get_all("vary").iter().any(|v| v == "Origin"));
            assert_eq!(
                h.get("access-control-allow-origin").map(|v| v.as_bytes()),
                granted.then_some(origin.as_bytes()),
                "{origin}"
            );
        }
    }
}
