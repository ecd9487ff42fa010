//! Below this layer every refusal and failure is an `Err(`[`Rejection`]`)`; here it
//! becomes its JSON answer, rendered by the one exhaustive match in `error.rs`, with
//! the facts the layers below learned moved onto the response (so the access log and
//! CORS see the route of a `401` or a `502` too) and the reason as [`Answered`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::Service;

use super::facts::{Answered, Outcome, Rejection, RequestId};
use crate::body::Body;

unit_layer!(ErrorBoundaryLayer => ErrorBoundary);

/// The answer for a rejection.
pub fn render(rej: Rejection, id: &HeaderValue) -> Response<Body> {
    let reason = rej.error.reason();
    let cause = Cause(Arc::from(rej.error.to_string()));
    let mut resp = rej.error.into_response(id);
    let ext = resp.extensions_mut();
    ext.extend(rej.facts);
    ext.insert(Answered(reason));
    ext.insert(cause);
    resp
}

/// Response fact: the refusal's precise cause (`invalid token: token expired`), for
/// `explain` and debugging; never in a body (the body's text is the same for every
/// cause of a `401`).
#[derive(Debug, Clone)]
pub struct Cause(pub Arc<str>);

impl<S, B> Service<Request<B>> for ErrorBoundary<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The services below are always ready; a failure here is rendered on call.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| HeaderValue::from_static(""), |r| r.0.clone());
        ResponseFuture {
            inner: self.inner.call(req),
            id,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: HeaderValue,
    }
}

impl<F: Future<Output = Outcome>> Future for ResponseFuture<F> {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(Ok(match ready!(this.inner.poll(cx)) {
            Ok(resp) => resp,
            Err(rej) => render(rej, this.id),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{GatewayError, Reason};
    use crate::layer::facts::{attach, Target};
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn a_rejection_is_rendered_with_its_facts() {
        let svc = ErrorBoundaryLayer.layer(tower::service_fn(|_req: Request<()>| async {
            let mut out: Outcome = Err(GatewayError::Unauthenticated.into());
            attach(&mut out, Target::Route(3));
            out
        }));
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(RequestId(HeaderValue::from_static("r9")));
        let resp = svc.oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
        assert_eq!(resp.extensions().get::<Target>(), Some(&Target::Route(3)));
        assert_eq!(
            resp.extensions().get::<Answered>().map(|a| a.0),
            Some(Reason::NoToken)
        );
    }
}
