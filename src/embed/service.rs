//! The [`Auth`] service [`super::AuthLayer`] wraps around an application, its future
//! and its response body.
//!
//! Generic over request and response bodies: a refusal is written by the renderer as
//! bytes and carried in [`AuthBody::Denied`]; an admitted request's response body is
//! the inner service's, untouched ([`AuthBody::Inner`]). Own tokens are verified
//! synchronously (no allocation beyond the principal); only an external issuer's
//! token, whose JWKS may need a refetch, boxes one future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::Service;

use super::policy::{Admitted, Policy, Verdict};
use super::render::{Denial, DenialRenderer};
use super::Scopes;

/// The layered service: authenticates, authorizes, then calls the inner service with
/// the [`Principal`](crate::auth::principal::Principal) and its [`Scopes`] in the
/// request's extensions.
#[derive(Debug, Clone)]
pub struct Auth<S, R> {
    pub(super) inner: S,
    pub(super) policy: Arc<Policy>,
    pub(super) renderer: R,
}

pin_project_lite::pin_project! {
    /// The response body: the inner service's, or a refusal's bytes.
    #[project = BodyProj]
    pub enum AuthBody<B> {
        /// The application's response.
        Inner { #[pin] body: B },
        /// A refusal written by the renderer.
        Denied { data: Option<Bytes> },
    }
}

impl<B> AuthBody<B> {
    /// A refusal's body.
    pub fn denied(data: Bytes) -> AuthBody<B> {
        AuthBody::Denied {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for AuthBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            BodyProj::Inner { body } => body.poll_frame(cx),
            BodyProj::Denied { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AuthBody::Inner { body } => body.is_end_stream(),
            AuthBody::Denied { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AuthBody::Inner { body } => body.size_hint(),
            AuthBody::Denied { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// A refusal as the service's response.
pub(super) fn refuse<B, R: DenialRenderer>(renderer: &R, d: &Denial) -> Response<AuthBody<B>> {
    renderer.render(d).map(AuthBody::denied)
}

/// Puts the verified caller on the request.
pub(super) fn admit<B>(req: &mut Request<B>, admitted: Admitted) {
    if let Some((p, scopes)) = admitted {
        req.extensions_mut().insert(Scopes(scopes));
        req.extensions_mut().insert(p);
    }
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

pin_project_lite::pin_project! {
    /// [`Auth`]'s future.
    #[project = FutProj]
    pub enum ResponseFuture<F, B, E> {
        /// Admitted at once: the inner service's future.
        Inner { #[pin] inner: F },
        /// Refused at once.
        Denied { resp: Option<Response<AuthBody<B>>> },
        /// An external issuer's token being verified, then the inner call.
        External { fut: Boxed<Response<AuthBody<B>>, E> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FutProj::Inner { inner } => inner
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(|body| AuthBody::Inner { body }))),
            FutProj::Denied { resp } => match resp.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: a contract violation by the caller.
                None => Poll::Pending,
            },
            FutProj::External { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for Auth<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: DenialRenderer,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<AuthBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let verdict = self.policy.decide(req.method(), req.uri(), req.headers());
        match verdict {
            Verdict::Done(Ok(admitted)) => {
                admit(&mut req, admitted);
                ResponseFuture::Inner {
                    inner: self.inner.call(req),
                }
            }
            Verdict::Done(Err(d)) => ResponseFuture::Denied {
                resp: Some(refuse(&self.renderer, &d)),
            },
            Verdict::External {
                client,
                token,
                route,
            } => {
                // The ready service goes into the future; this one keeps a clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let policy = self.policy.clone();
                let renderer = self.renderer.clone();
                ResponseFuture::External {
                    fut: Box::pin(async move {
                        let verified = client.verify(&token).await;
                        match policy.finish(route, verified) {
                            Ok(admitted) => {
                                admit(&mut req, admitted);
                                let resp = inner.call(req).await?;
                                Ok(resp.map(|body| AuthBody::Inner { body }))
                            }
                            Err(d) => Ok(refuse(&renderer, &d)),
                        }
                    }),
                }
            }
        }
    }
}
