//! The stages of the request pipeline, each a `tower::Layer` + `Service` of its own
//! (one concern per file, `FooLayer` / `Foo<S>` / `ResponseFuture`), composed in
//! `stack.rs` in the order of its diagram. Facts travel as typed extensions
//! ([`facts`]); below the error boundary every refusal is an `Err(Rejection)`.
//!
//! Every layer is generic over the request body except the terminal services that
//! read it (`forward.rs` streams hyper's `Incoming` to the upstream).

/// A layer without settings: `FooLayer` wraps a service as `Foo { inner }`.
macro_rules! unit_layer {
    ($layer:ident => $service:ident) => {
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $layer;

        impl<S> tower::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> $service<S> {
                $service { inner }
            }
        }

        #[derive(Debug, Clone)]
        pub struct $service<S> {
            inner: S,
        }
    };
}

/// `poll_ready` of a layer that is ready exactly when its inner service is.
macro_rules! forward_ready {
    () => {
        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }
    };
}

/// What a layer does once with the head of a successful answer (`layer/metrics.rs`
/// observes the duration, `layer/trace.rs` records the span).
pub trait AtHead {
    fn at_head<R>(self: Box<Self>, resp: &http::Response<R>);
}

pin_project_lite::pin_project! {
    /// The inner service's future, and what to do with its answer's head, if anything.
    pub struct AtHeadFuture<F, P> {
        #[pin]
        inner: F,
        pending: Option<Box<P>>,
    }
}

impl<F, P> AtHeadFuture<F, P> {
    pub fn new(inner: F, pending: Option<Box<P>>) -> Self {
        AtHeadFuture { inner, pending }
    }
}

impl<F, P, R, E> std::future::Future for AtHeadFuture<F, P>
where
    F: std::future::Future<Output = Result<http::Response<R>, E>>,
    P: AtHead,
{
    type Output = Result<http::Response<R>, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let (Ok(resp), Some(p)) = (&out, this.pending.take()) {
            p.at_head(resp);
        }
        std::task::Poll::Ready(out)
    }
}

pub mod access_log;
pub mod auth;
pub mod body_limit;
pub mod catch_panic;
pub mod classify;
pub mod context;
pub mod cors;
pub mod deadline;
pub mod dispatch;
pub mod endpoints;
pub mod error_boundary;
pub mod facts;
pub mod forward;
pub mod forward_auth;
pub mod hygiene;
pub mod identity;
pub mod in_flight;
pub mod metrics;
pub mod preflight;
pub mod rate_limit;
pub mod request_id;
pub mod security_headers;
pub mod trace;

#[cfg(test)]
pub(crate) mod testing;
