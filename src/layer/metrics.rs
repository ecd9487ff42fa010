//! `http_server_request_duration_seconds` and `http_server_active_requests`
//! (`crate::metrics`): the request's route (the [`Target`] fact on the answer: a
//! configured route's name, `portcullis:<endpoint>` for the token service, `""` when
//! none matched), its method (bounded) and the status, when the answer's head is
//! ready. Sits under the access log, so it sees the same answer, denials included.
//! Off when there is no admin listener to serve `/metrics` from.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use tower::Service;

use super::facts::{Ctx, Target};
use super::{AtHead, AtHeadFuture};
use crate::metrics::{method_label, metrics, Name, Raised, ServerLabels};
use crate::state::Snapshot;

unit_layer!(MetricsLayer => Metrics);

/// What the observation needs from the request.
#[derive(Debug)]
pub struct Pending {
    snap: Arc<Snapshot>,
    started: Instant,
    method: &'static str,
    _active: Raised,
}

impl<S, B, R> Service<Request<B>> for Metrics<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = AtHeadFuture<S::Future, Pending>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let pending = req
            .extensions()
            .get::<Ctx>()
            .filter(|c| c.snap.metrics)
            .map(|c| {
                Box::new(Pending {
                    snap: c.snap.clone(),
                    started: Instant::now(),
                    method: method_label(req.method()),
                    _active: Raised::new(&metrics().server_active),
                })
            });
        AtHeadFuture::new(self.inner.call(req), pending)
    }
}

/// The `http_route` label of an answer.
pub fn route_label(snap: &Snapshot, target: Option<Target>) -> Name {
    match target {
        Some(Target::Endpoint(ep)) => Name::Fixed(ep.label()),
        Some(Target::Route(i) | Target::ForwardAuth(i) | Target::Preflight(Some(i))) => snap
            .route_labels
            .get(i)
            .map_or(Name::Fixed(""), |l| Name::Configured(l.clone())),
        Some(Target::Preflight(None)) | None => Name::Fixed(""),
    }
}

impl AtHead for Pending {
    fn at_head<R>(self: Box<Self>, resp: &Response<R>) {
        let p = self;
        let labels = ServerLabels {
            http_route: route_label(&p.snap, resp.extensions().get::<Target>().copied()),
            http_request_method: p.method,
            http_response_status_code: resp.status().as_u16(),
        };
        metrics()
            .server_duration
            .get_or_create(&labels)
            .observe(p.started.elapsed().as_secs_f64());
    }
}
