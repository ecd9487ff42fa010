//! The gateway's server span: with an OTLP exporter and a sampled trace (the
//! [`Ctx`]'s, made at the entry: `layer/context.rs`), the answer's head closes the
//! span and queues it for export. The access log (`trace_id`) and the forward step
//! (`traceparent` to the upstream) read the same trace from [`Ctx`].

use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response};
use tower::Service;

use super::facts::{Ctx, Target};
use super::metrics::route_label;
use super::{AtHead, AtHeadFuture};
use crate::metrics::method_label;
use crate::state::Snapshot;
use crate::telemetry::export::Span;
use crate::telemetry::TraceContext;

unit_layer!(TraceLayer => Trace);

/// What the exported span needs from the request.
#[derive(Debug)]
pub struct Pending {
    snap: Arc<Snapshot>,
    trace: TraceContext,
    start: SystemTime,
    method: &'static str,
}

impl<S, B, R> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = AtHeadFuture<S::Future, Pending>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let pending = req.extensions().get::<Ctx>().and_then(|c| {
            let trace = c.trace.as_ref()?;
            (trace.sampled && c.snap.exporter.is_some()).then(|| {
                Box::new(Pending {
                    snap: c.snap.clone(),
                    trace: trace.clone(),
                    start: SystemTime::now(),
                    method: method_label(req.method()),
                })
            })
        });
        AtHeadFuture::new(self.inner.call(req), pending)
    }
}

impl AtHead for Pending {
    fn at_head<R>(self: Box<Self>, resp: &Response<R>) {
        let p = self;
        if let Some(exporter) = &p.snap.exporter {
            let route = route_label(&p.snap, resp.extensions().get::<Target>().copied());
            let route = route.to_string();
            let name = if route.is_empty() {
                p.method.to_string()
            } else {
                format!("{} {route}", p.method)
            };
            exporter.record(Span {
                trace_id: p.trace.trace_id,
                span_id: p.trace.span_id,
                parent: p.trace.parent,
                name,
                start: p.start,
                end: SystemTime::now(),
                method: p.method,
                route,
                status: resp.status().as_u16(),
            });
        }
    }
}
