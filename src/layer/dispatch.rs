//! The fork of the stack: by the classifier's [`Target`], a request goes to the token
//! service, the forward-auth stack or the route stack (built in `stack.rs`). Each
//! branch is a service of its own; the future is an enum of theirs, no box here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::facts::{Early, Outcome, Rejection, Target};
use crate::body::Body;
use crate::error::GatewayError;

#[derive(Debug, Clone)]
pub struct Dispatch<E, F, R> {
    endpoints: E,
    forward_auth: F,
    routes: R,
}

impl<E, F, R> Dispatch<E, F, R> {
    pub fn new(endpoints: E, forward_auth: F, routes: R) -> Dispatch<E, F, R> {
        Dispatch {
            endpoints,
            forward_auth,
            routes,
        }
    }
}

pin_project_lite::pin_project! {
    #[project = Proj]
    pub enum ResponseFuture<E, F, R> {
        Endpoint { #[pin] inner: E },
        ForwardAuth { #[pin] inner: F },
        Route { #[pin] inner: R },
        Other { #[pin] inner: Early<std::future::Pending<Outcome>> },
    }
}

impl<E, F, R> Future for ResponseFuture<E, F, R>
where
    E: Future<Output = Outcome>,
    F: Future<Output = Outcome>,
    R: Future<Output = Outcome>,
{
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self.project() {
            Proj::Endpoint { inner } => inner.poll(cx),
            Proj::ForwardAuth { inner } => inner.poll(cx),
            Proj::Route { inner } => inner.poll(cx),
            Proj::Other { inner } => inner.poll(cx),
        }
    }
}

impl<E, F, R, B> Service<Request<B>> for Dispatch<E, F, R>
where
    E: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
    F: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
    R: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = ResponseFuture<E::Future, F::Future, R::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        // Every branch is always ready (nothing below holds a bounded resource).
        if self.endpoints.poll_ready(cx)?.is_pending()
            || self.forward_auth.poll_ready(cx)?.is_pending()
            || self.routes.poll_ready(cx)?.is_pending()
        {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match req.extensions().get::<Target>() {
            Some(Target::Endpoint(_)) => ResponseFuture::Endpoint {
                inner: self.endpoints.call(req),
            },
            Some(Target::ForwardAuth(_)) => ResponseFuture::ForwardAuth {
                inner: self.forward_auth.call(req),
            },
            Some(Target::Route(_)) => ResponseFuture::Route {
                inner: self.routes.call(req),
            },
            // Preflights are answered above; nothing else reaches here unclassified.
            Some(Target::Preflight(_)) | None => ResponseFuture::Other {
                inner: Early::refused(GatewayError::Internal),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::endpoint::Endpoint;
    use tower::ServiceExt as _;

    fn answering(
        name: &'static str,
    ) -> impl Service<
        Request<()>,
        Response = Response<Body>,
        Error = Rejection,
        Future = std::future::Ready<Outcome>,
    > + Clone {
        tower::service_fn(move |_req: Request<()>| {
            let mut resp = Response::new(Body::Empty);
            resp.headers_mut()
                .insert("x-branch", http::HeaderValue::from_static(name));
            std::future::ready(Ok(resp))
        })
    }

    #[tokio::test]
    async fn each_target_takes_its_branch() {
        let d = Dispatch::new(
            answering("endpoints"),
            answering("forward-auth"),
            answering("routes"),
        );
        for (target, branch) in [
            (Some(Target::Endpoint(Endpoint::Token)), Some("endpoints")),
            (Some(Target::ForwardAuth(0)), Some("forward-auth")),
            (Some(Target::Route(0)), Some("routes")),
            (Some(Target::Preflight(None)), None),
            (None, None),
        ] {
            let mut req = Request::new(());
            if let Some(t) = target {
                req.extensions_mut().insert(t);
            }
            let out = d.clone().oneshot(req).await;
            let got = out.ok().and_then(|r| r.headers().get("x-branch").cloned());
            assert_eq!(
                got.as_ref().and_then(|v| v.to_str().ok()),
                branch,
                "{target:?}"
            );
        }
    }
}
