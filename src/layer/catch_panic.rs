//! A panic anywhere below becomes a `500` JSON answer (with the request id, through
//! the one error renderer); the connection and the process live on.
//!
//! Our own rather than tower-http's `CatchPanic`: that one boxes every response body
//! (`UnsyncBoxBody`) to replace it on panic, and renders plain text; here the body
//! type stays [`Body`] and the answer is the same JSON as every other error.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::Service;

use super::facts::{Answered, RequestId};
use crate::body::Body;
use crate::error::{GatewayError, Reason};

unit_layer!(CatchPanicLayer => CatchPanic);

fn panicked(id: &HeaderValue) -> Response<Body> {
    tracing::error!(request_id = ?id, "request handler panicked");
    let mut resp = GatewayError::Internal.into_response(id);
    resp.extensions_mut().insert(Answered(Reason::Panic));
    resp
}

impl<S, B> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| HeaderValue::from_static(""), |r| r.0.clone());
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => ResponseFuture::Inner { inner, id },
            Err(_) => ResponseFuture::Panicked { id: Some(id) },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = Proj]
    pub enum ResponseFuture<F> {
        Inner { #[pin] inner: F, id: HeaderValue },
        Panicked { id: Option<HeaderValue> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Inner { inner, id } => match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                Ok(p) => p,
                Err(_) => Poll::Ready(Ok(panicked(id))),
            },
            Proj::Panicked { id } => {
                let id = id.take().unwrap_or_else(|| HeaderValue::from_static(""));
                Poll::Ready(Ok(panicked(&id)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::{Layer as _, ServiceExt as _};

    async fn json(resp: Response<Body>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    fn request() -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(RequestId(HeaderValue::from_static("r1")));
        req
    }

    #[tokio::test]
    async fn a_panic_while_polling_becomes_a_500_with_the_request_id() {
        let svc = CatchPanicLayer.layer(tower::service_fn(|_req: Request<()>| async {
            if std::env::var_os("PATH").is_some() {
                panic!("boom");
            }
            Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
        }));
        let resp = svc.oneshot(request()).await.expect("infallible");
        assert_eq!(resp.status(), 500);
        assert_eq!(
            resp.extensions().get::<Answered>().map(|a| a.0),
            Some(Reason::Panic)
        );
        let v = json(resp).await;
        assert_eq!(v["error"], "internal_error");
        assert_eq!(v["request_id"], "r1");
    }

    #[tokio::test]
    async fn a_panic_in_call_becomes_a_500() {
        let svc = CatchPanicLayer.layer(tower::service_fn(|_req: Request<()>| {
            if std::env::var_os("PATH").is_some() {
                panic!("boom in call");
            }
            std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(
                Body::Empty,
            )))
        }));
        let resp = svc.oneshot(request()).await.expect("infallible");
        assert_eq!(resp.status(), 500);
    }
}
