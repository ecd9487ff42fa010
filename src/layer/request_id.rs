//! `x-request-id`: the client's if sane (`middleware/request_id.rs` says what is
//! sane), generated otherwise; written back into the request (the upstream sees the
//! same id), kept as the [`RequestId`] extension (error bodies and the access log name
//! it) and echoed on every response, errors and panics included.
//!
//! Our own rather than tower-http's `SetRequestId`/`PropagateRequestId`: those keep any
//! client value, and we replace values that are unsafe to log or echo.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::Service;

use super::facts::RequestId;
use crate::middleware::request_id::{ensure, X_REQUEST_ID};

unit_layer!(RequestIdLayer => SetRequestId);

impl<S, B, R> Service<Request<B>> for SetRequestId<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = ensure(req.headers_mut());
        req.extensions_mut().insert(RequestId(id.clone()));
        ResponseFuture {
            inner: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
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
        if let (Ok(resp), Some(id)) = (&mut out, this.id.take()) {
            resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
        }
        Poll::Ready(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn a_sane_id_is_kept_and_echoed_and_a_bad_one_replaced() {
        let svc = RequestIdLayer.layer(tower::service_fn(|req: Request<()>| async move {
            let ext = req.extensions().get::<RequestId>().map(|r| r.0.clone());
            // The upstream sees the same id as the extension.
            assert_eq!(ext.as_ref(), req.headers().get(&X_REQUEST_ID));
            Ok::<_, std::convert::Infallible>(Response::new(()))
        }));
        let req = Request::builder()
            .header("x-request-id", "abc-1")
            .body(())
            .expect("request");
        let resp = svc.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.headers()["x-request-id"], "abc-1");
        let req = Request::builder()
            .header("x-request-id", "has space")
            .body(())
            .expect("request");
        let resp = svc.oneshot(req).await.expect("infallible");
        let id = resp.headers()["x-request-id"].to_str().expect("ascii");
        assert_eq!(id.len(), 32);
    }
}
