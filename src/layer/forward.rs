//! The route stack's terminal service: the request, cleaned and with its identity, to
//! the route's upstream (`proxy/forward.rs`: origin-form, `X-Forwarded-*`, the pooled
//! connection of this worker, streaming both ways, upgrades), then the route's response
//! header transform. Attaches [`UpstreamTime`] and [`BytesIn`] for the access log.
//!
//! This is where the request's one boxed future is made (the forward is an `async fn`
//! over a pooled connection).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::Service;

use super::body_limit::max_body;
use super::facts::{attach, ctx, BytesIn, Canonical, Outcome, Rejection, Target, UpstreamTime};
use super::identity::UpgradeTo;
use crate::body::{Body, RequestBody};
use crate::error::{GatewayError, OrInternal as _};
use crate::metrics::{method_label, metrics, ClientLabels, Name, UpstreamError};
use crate::proxy::forward::{forward, Inbound, Tunnel};
use crate::proxy::headers;
use crate::proxy::tunnels::TunnelLimits;

#[derive(Debug, Clone, Copy, Default)]
pub struct Forward;

async fn send(mut req: Request<RequestBody>) -> Outcome {
    let c = ctx(&req)?.clone();
    let config = &c.snap.config;
    let route = match req.extensions().get::<Target>() {
        Some(Target::Route(i)) => config.router.routes().get(*i),
        _ => None,
    }
    .or_internal()?;
    let canonical = req
        .extensions()
        .get::<Canonical>()
        .map(|c| c.0.clone())
        .or_internal()?;
    let max_body = max_body(&req)?;
    let server = &config.server;
    let upgrade = match req.extensions_mut().remove::<UpgradeTo>() {
        Some(u) => {
            let slot = match &c.peer.tunnels {
                Some(t) => match t.reserve(server.bounds.max_tunnels) {
                    Some(slot) => Some(slot),
                    None => {
                        crate::server::shed("tunnels");
                        return Err(GatewayError::Overloaded.into());
                    }
                },
                None => None,
            };
            let limits = TunnelLimits {
                idle: server.bounds.tunnel_idle_timeout,
                drain: server.shutdown_drain,
            };
            Some((u.0, Tunnel { slot, limits }))
        }
        None => None,
    };
    let bytes_in = Arc::new(AtomicU64::new(0));
    let inbound = Inbound {
        bytes_in: &bytes_in,
        peer: &c.peer.ip_header,
        trusted_peer: headers::is_trusted(c.peer.addr.ip(), &server.trusted_proxies),
        proto: c.peer.proto(),
    };
    let pool = c.snap.client(c.worker, &route.upstream.name);
    let measured = c.snap.metrics.then(|| {
        let i = match req.extensions().get::<Target>() {
            Some(Target::Route(i)) => *i,
            _ => usize::MAX,
        };
        (
            c.snap.upstream_labels.get(i).cloned(),
            method_label(req.method()),
        )
    });
    let asked = (server.access_log || measured.is_some()).then(Instant::now);
    let mut out: Outcome = forward(req, &canonical, route, pool, inbound, max_body, upgrade)
        .await
        .map_err(Rejection::from);
    if let (Some((Some(upstream), method)), Some(asked)) = (measured, asked) {
        observe(&out, Name::Configured(upstream), method, asked);
    }
    if let (Ok(resp), Some(t)) = (&mut out, &route.response_headers) {
        t.apply(resp.headers_mut());
    }
    if let Some(asked) = asked {
        let us = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        attach(&mut out, UpstreamTime(us));
        attach(&mut out, BytesIn(bytes_in));
    }
    out
}

/// `http_client_request_duration_seconds` for an answer from the upstream, or
/// `portcullis_upstream_errors_total` by kind when there was none.
fn observe(out: &Outcome, upstream: Name, method: &'static str, asked: Instant) {
    let m = metrics();
    match out {
        Ok(resp) => m
            .client_duration
            .get_or_create(&ClientLabels {
                upstream,
                http_request_method: method,
                http_response_status_code: resp.status().as_u16(),
            })
            .observe(asked.elapsed().as_secs_f64()),
        Err(rej) => {
            let kind = match &rej.error {
                GatewayError::UpstreamConnect => "connect",
                GatewayError::UpstreamTimeout => "timeout",
                GatewayError::UpstreamFailed => "failed",
                GatewayError::UpstreamBusy => "busy",
                _ => "other",
            };
            m.upstream_errors
                .get_or_create(&UpstreamError { upstream, kind })
                .inc();
        }
    }
}

impl Service<Request<RequestBody>> for Forward {
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Outcome> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        Box::pin(send(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{request_with_ctx, snapshot};

    /// The forward step's future is moved to the heap once per proxied request: what
    /// it holds inline is copied every time. The rare paths (a new connection, a TLS
    /// handshake, waiting at the pool's cap, HTTP/2) are boxed inside it, so that it
    /// stays small; a change that inlines one of them shows up here.
    #[test]
    fn the_forward_future_stays_small() {
        let snap = snapshot("");
        let req = request_with_ctx(&snap, "/public/x").map(|()| RequestBody::empty());
        let size = std::mem::size_of_val(&send(req));
        // 3120 bytes at the time of writing; a TLS handshake inline was 7.7 KB more.
        assert!(
            size <= 3328,
            "the forward step's future grew to {size} bytes"
        );
    }
}
