//! `server.security_headers`: `X-Content-Type-Options`, `Referrer-Policy` and the rest
//! (`middleware/transform.rs` says which) on every answer, errors included; and
//! `server.tls.hsts`: `Strict-Transport-Security` on every answer sent over TLS
//! (never over plain HTTP, where RFC 6797 §7.2 says browsers ignore it).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::STRICT_TRANSPORT_SECURITY;
use http::{HeaderValue, Request, Response};
use tower::Service;

use super::facts::Ctx;
use crate::middleware::transform::security_headers;

unit_layer!(SecurityHeadersLayer => SecurityHeaders);

impl<S, B, R> Service<Request<B>> for SecurityHeaders<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let c = req.extensions().get::<Ctx>();
        let on = c.is_some_and(|c| c.snap.config.server.security_headers);
        // RFC 6797 §7.2: only over a secure transport.
        let hsts = c.and_then(|c| {
            c.peer.tls.as_ref()?;
            c.snap.config.server.tls.as_ref()?.hsts.clone()
        });
        ResponseFuture {
            inner: self.inner.call(req),
            on,
            hsts,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        on: bool,
        hsts: Option<HeaderValue>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut out = ready!(this.inner.poll(cx));
        if let Ok(resp) = &mut out {
            if *this.on {
                security_headers(resp.headers_mut());
            }
            if let Some(v) = this.hsts.take() {
                resp.headers_mut().insert(STRICT_TRANSPORT_SECURITY, v);
            }
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;
    use crate::layer::testing::{request_with_ctx, snapshot};
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn on_when_configured_only() {
        for on in [true, false] {
            let s = snapshot(&format!("[server]\nsecurity_headers = {on}\n"));
            let svc = SecurityHeadersLayer.layer(tower::service_fn(|_req: Request<()>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
            }));
            let resp = svc
                .oneshot(request_with_ctx(&s, "/"))
                .await
                .expect("infallible");
            assert_eq!(resp.headers().contains_key("x-content-type-options"), on);
        }
    }
}
