//! The request deadline: a route's `request_timeout` (else `server.request_timeout`)
//! or `504 gateway_timeout`.
//!
//! In the route stack it sits right below authentication, so that a `504` still names
//! its caller; what runs above it has bounds of its own (a Redis decision has the
//! backend's timeout, a JWKS refetch waits at most 3 s, the head hygiene and routing
//! never wait). Token-service endpoints get the server's deadline. One timer per
//! request, and tokio's `Timeout` future rather than a box.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::time::Timeout;
use tower::Service;

use super::facts::{ctx, Early, Outcome, Rejection, Target};
use crate::body::Body;
use crate::error::GatewayError;

unit_layer!(DeadlineLayer => Deadline);

/// The deadline of a request: its route's, or the server's.
fn deadline_of<B>(req: &Request<B>) -> Result<Duration, GatewayError> {
    let c = ctx(req)?;
    let config = &c.snap.config;
    let route = match req.extensions().get::<Target>() {
        Some(Target::Route(i)) => config.router.routes().get(*i),
        _ => None,
    };
    Ok(route
        .and_then(|r| r.request_timeout)
        .unwrap_or(config.server.request_timeout))
}

impl<S, B> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Early<ResponseFuture<S::Future>>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match deadline_of(&req) {
            Ok(d) => Early::inner(ResponseFuture {
                inner: tokio::time::timeout(d, self.inner.call(req)),
            }),
            Err(e) => Early::refused(e),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Timeout<F>,
    }
}

impl<F: Future<Output = Outcome>> Future for ResponseFuture<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Poll::Ready(match ready!(self.project().inner.poll(cx)) {
            Ok(out) => out,
            Err(_elapsed) => Err(GatewayError::RequestTimeout.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{request_with_ctx, snapshot};
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test(start_paused = true)]
    async fn an_expired_deadline_is_a_request_timeout() {
        let snap = snapshot("[server]\nrequest_timeout = \"2s\"\n");
        let svc = DeadlineLayer.layer(tower::service_fn(|_req: Request<()>| {
            std::future::pending::<Outcome>()
        }));
        let out = svc.oneshot(request_with_ctx(&snap, "/")).await;
        match out {
            Err(rej) => assert!(matches!(rej.error, GatewayError::RequestTimeout)),
            Ok(r) => panic!("expected a timeout, got {}", r.status()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_passes() {
        let snap = snapshot("");
        let svc = DeadlineLayer.layer(tower::service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Rejection>(Response::new(Body::Empty))
        }));
        let out = svc.oneshot(request_with_ctx(&snap, "/")).await;
        assert!(out.is_ok());
    }
}
