//! The entry of the stack: one configuration snapshot for the whole request, the
//! connection it came on, the client's IP and the request's trace (continued from a
//! believed `traceparent`, else started; `crate::telemetry`), as the [`Ctx`]
//! request extension.
//!
//! The stack is built once per connection (it knows its peer and worker) and cloned
//! per request; everything below reads the snapshot from [`Ctx`], so a reload takes
//! effect for every request that starts after it and never for one in flight.

use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::Request;
use tower::{Layer, Service};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use super::facts::Ctx;
use crate::proxy::headers;
use crate::stack::Peer;
use crate::state::Shared;
use crate::telemetry::{Accept, TraceContext};

/// Inserts [`Ctx`].
#[derive(Debug, Clone)]
pub struct ContextLayer {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    worker: usize,
    record: bool,
}

impl ContextLayer {
    pub fn new(shared: Arc<Shared>, peer: Arc<Peer>, worker: usize) -> ContextLayer {
        ContextLayer {
            shared,
            peer,
            worker,
            record: false,
        }
    }

    /// Every answer carries every fact, whatever the configuration (`explain`).
    pub fn recording(mut self) -> ContextLayer {
        self.record = true;
        self
    }

    /// The gateway-wide count of requests in flight (`server.max_in_flight`).
    pub fn in_flight(&self) -> super::in_flight::InFlightLayer {
        super::in_flight::InFlightLayer::new(self.shared.clone())
    }

    /// The request headers that carry credentials (`Authorization`,
    /// `Proxy-Authorization`, `Cookie`, the API key header), marked sensitive for every
    /// layer below by tower-http's layer: their `Debug` shows `Sensitive`, and an
    /// HTTP/2 encoder never indexes them (RFC 7541 §7.1.3). The API key header is the
    /// one configured when the connection was accepted.
    pub fn sensitive_headers(&self) -> SetSensitiveRequestHeadersLayer {
        let mut names = vec![AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE];
        if let Some(keys) = &self.shared.snapshot.load().config.api_keys {
            names.push(keys.header.clone());
        }
        SetSensitiveRequestHeadersLayer::from_shared(names.into())
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = WithContext<S>;

    fn layer(&self, inner: S) -> WithContext<S> {
        WithContext {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WithContext<S> {
    inner: S,
    layer: ContextLayer,
}

impl<S, B> Service<Request<B>> for WithContext<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    forward_ready!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let snap = self.layer.shared.snapshot.load_full();
        let client_ip = headers::client_ip(
            self.layer.peer.addr.ip(),
            req.headers(),
            &snap.config.server.trusted_proxies,
        );
        let facts = self.layer.record
            || snap.config.server.access_log
            || snap.cors_anywhere
            || snap.metrics
            || snap.exporter.is_some();
        let telemetry = &snap.config.telemetry;
        let believed = match telemetry.accept {
            Accept::Off => None,
            Accept::Any => Some(true),
            Accept::Trusted => Some(headers::is_trusted(
                self.layer.peer.addr.ip(),
                &snap.config.server.trusted_proxies,
            )),
        };
        let trace = believed.map(|b| TraceContext::of(req.headers(), b, telemetry.sample_ratio));
        req.extensions_mut().insert(Ctx {
            facts,
            snap,
            peer: self.layer.peer.clone(),
            worker: self.layer.worker,
            client_ip,
            trace,
        });
        self.inner.call(req)
    }
}
