//! `server.max_in_flight`: the requests being handled in the whole gateway (every
//! worker), counted from the entry of the stack to their answer's head. One more is
//! answered `503 overloaded` + `Retry-After: 1` at once — before any token is
//! verified, body read or upstream asked — and counted in
//! `portcullis_load_shed_total{result="in_flight"}`. Sits under the access log and
//! the metrics, so a shed request still has its line and its measurement.
//!
//! A plain counter rather than tower's `ConcurrencyLimit` + `LoadShed`: those shed
//! through `poll_ready`, which hyper's per-connection service does not consult per
//! request, and their semaphore is per service clone (per connection), not shared.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::facts::{Answered, Ctx, RequestId};
use crate::body::Body;
use crate::error::{GatewayError, Reason};
use crate::state::Shared;

/// Counts requests against `server.max_in_flight`.
#[derive(Debug, Clone)]
pub struct InFlightLayer {
    shared: Arc<Shared>,
}

impl InFlightLayer {
    pub fn new(shared: Arc<Shared>) -> InFlightLayer {
        InFlightLayer { shared }
    }
}

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> InFlight<S> {
        InFlight {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InFlight<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// One request counted; given back when dropped.
#[derive(Debug)]
pub struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn overloaded(request_id: Option<&HeaderValue>) -> Response<Body> {
    let id = request_id.cloned().unwrap_or(HeaderValue::from_static(""));
    let mut resp = GatewayError::Overloaded.into_response(&id);
    resp.extensions_mut().insert(Answered(Reason::Overloaded));
    resp
}

impl<S, B> Service<Request<B>> for InFlight<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let max = req
            .extensions()
            .get::<Ctx>()
            .map_or(usize::MAX, |c| c.snap.config.server.bounds.max_in_flight);
        let before = self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(self.shared.clone());
        if before >= max {
            drop(counted);
            crate::metrics::metrics()
                .shed
                .get_or_create(&crate::metrics::ResultLabel {
                    result: "in_flight",
                })
                .inc();
            let id = req.extensions().get::<RequestId>().map(|r| &r.0);
            return ResponseFuture {
                inner: None,
                shed: Some(Box::new(overloaded(id))),
                counted: None,
            };
        }
        ResponseFuture {
            inner: Some(self.inner.call(req)),
            shed: None,
            counted: Some(counted),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        shed: Option<Box<Response<Body>>>,
        counted: Option<Counted>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(resp) = this.shed.take() {
            return Poll::Ready(Ok(*resp));
        }
        match this.inner.as_pin_mut() {
            Some(f) => {
                let out = std::task::ready!(f.poll(cx));
                this.counted.take();
                Poll::Ready(out)
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{request_with_ctx, snapshot, snapshot_config};
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn one_past_the_cap_is_shed_with_503_and_the_count_comes_back() {
        let fragment = "[server]\nmax_in_flight = 1\n";
        let snap = snapshot(fragment);
        let shared = Shared::detached(snapshot_config(fragment));
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(Some(held)));
        let inner = tower::service_fn(move |_req: Request<()>| {
            let wait = held.lock().expect("lock").take();
            async move {
                if let Some(w) = wait {
                    let _ = w.await;
                }
                Ok::<_, std::convert::Infallible>(Response::new(Body::Empty))
            }
        });
        let svc = InFlightLayer::new(shared.clone()).layer(inner);
        let req = || request_with_ctx(&snap, "/public/x");
        let first = tokio::spawn(svc.clone().oneshot(req()));
        while shared.in_flight.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let shed = svc.clone().oneshot(req()).await.expect("answer");
        assert_eq!(shed.status(), 503);
        assert_eq!(shed.headers()["retry-after"], "1");
        assert_eq!(
            shed.extensions().get::<Answered>().map(|a| a.0),
            Some(Reason::Overloaded)
        );
        let _ = release.send(());
        assert_eq!(first.await.expect("join").expect("answer").status(), 200);
        assert_eq!(shared.in_flight.load(Ordering::Relaxed), 0);
        let again = svc.oneshot(req()).await.expect("answer");
        assert_eq!(again.status(), 200);
    }
}
