//! The request pipeline: the one place that orders the stages. Each line is a layer of
//! its own (`src/layer/`); the order below is the order of the code.
//!
//! ```text
//! server.rs   accept → hyper-util auto (HTTP/1.1, h2) → this stack, one per connection
//!   Context        one config snapshot for the request, the peer, the client IP
//!   Sensitive      credential headers marked sensitive (tower-http): never shown by
//!                  Debug, never HPACK-indexed
//!   RequestId      keep a sane x-request-id or make one; echo it on every answer
//!   Trace          the server span, exported over OTLP when configured (the trace
//!                  itself is made by Context)
//!   AccessLog      one JSON line when the body has been sent; reads the answer's facts
//!   Metrics        http_server_request_duration_seconds{http_route,…}, active requests
//!   InFlight       server.max_in_flight, gateway-wide: one more → 503 + Retry-After
//!   SecurityHeaders  server.security_headers on every answer
//!   Cors           Vary + grant on every answer (the route's policy, else [cors])
//!   CatchPanic     a panic below → 500 JSON; the connection and the process live on
//!   ErrorBoundary  Err(Rejection) → its JSON answer (error.rs, one exhaustive match)
//!   Hygiene        refused methods (501), target length (414), header count/size
//!                  (431), one sane Host, Transfer-Encoding (400 + close), '_'/'.' in
//!                  names, identity headers in every spelling, override headers;
//!                  the canonical path (400 for ambiguous encodings)
//!   Classify       forward-auth | preflight | token endpoint | route | 404 | 405
//!   Preflight      CORS preflights answered here, before any credential is asked for
//!   Dispatch ─┬─ endpoints:    Deadline → Endpoints (/token, /revoke, /register, JWKS,
//!             │                metadata; the login limiters are the token service's)
//!             ├─ forward-auth: RateLimit(before auth) → Auth → RateLimit(after auth)
//!             │                → ForwardAuthAnswer (200 + identity headers)
//!             └─ routes:       BodyLimit (413) → RateLimit(before auth) → Auth (401,
//!                              403) → Deadline (504) → RateLimit(after auth) (429)
//!                              → Identity (hop-by-hop, upgrade, inject x-auth-*,
//!                              strip Authorization/API key, request transform)
//!                              → Forward (origin-form, pooled, streamed; 502/504)
//! ```
//! Expected denials and failures below the error boundary are `Err(Rejection)`; the
//! facts each layer learned (canonical path, target, caller, upstream time, bytes)
//! ride on the answer either way. One boxed future per proxied request (the forward).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use tower::{Service, ServiceBuilder};

use crate::body::{Body, RequestBody};
use crate::layer::access_log::AccessLogLayer;
use crate::layer::auth::AuthLayer;
use crate::layer::body_limit::BodyLimitLayer;
use crate::layer::catch_panic::CatchPanicLayer;
use crate::layer::classify::ClassifyLayer;
use crate::layer::context::ContextLayer;
use crate::layer::cors::CorsLayer;
use crate::layer::deadline::DeadlineLayer;
use crate::layer::dispatch::Dispatch;
use crate::layer::endpoints::Endpoints;
use crate::layer::error_boundary::ErrorBoundaryLayer;
use crate::layer::facts::Rejection;
use crate::layer::forward::Forward;
use crate::layer::forward_auth::ForwardAuthAnswer;
use crate::layer::hygiene::HygieneLayer;
use crate::layer::identity::IdentityLayer;
use crate::layer::metrics::MetricsLayer;
use crate::layer::preflight::PreflightLayer;
use crate::layer::rate_limit::RateLimitLayer;
use crate::layer::request_id::RequestIdLayer;
use crate::layer::security_headers::SecurityHeadersLayer;
use crate::layer::trace::TraceLayer;
use crate::state::Shared;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// `addr`'s IP as a header value (for `X-Forwarded-For`), rendered once.
    pub ip_header: HeaderValue,
    /// Set on connections that came over TLS.
    pub tls: Option<crate::tls::TlsPeer>,
    /// The gateway's tunnels, which an upgrade on this connection joins.
    pub tunnels: Option<Arc<crate::proxy::tunnels::Tunnels>>,
}

impl Peer {
    /// A client on a plain connection.
    pub fn new(addr: SocketAddr) -> Peer {
        let ip_header = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer {
            addr,
            ip_header,
            tls: None,
            tunnels: None,
        }
    }

    /// A client on a TLS connection.
    pub fn tls(addr: SocketAddr, tls: crate::tls::TlsPeer) -> Peer {
        Peer {
            tls: Some(tls),
            ..Peer::new(addr)
        }
    }

    /// The scheme the client used (`X-Forwarded-Proto`).
    pub fn proto(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// The whole pipeline for one connection's requests; `worker` picks that worker's
/// upstream pools and token cache. Cloned per request (every field is small).
pub fn build(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    worker: usize,
) -> impl Service<
    Request<RequestBody>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    let context = ContextLayer::new(shared, peer, worker);
    assemble(context, AuthLayer::default(), Endpoints, Forward)
}

/// The stack with its terminal services (and the authentication layer) given:
/// production passes the token service and the forward step; `explain` passes
/// recording services, a [`ContextLayer::recording`] entry (every fact on every
/// answer) and, for `--scopes`/`--roles`, an [`AuthLayer::assuming`] one.
pub fn assemble<E, F>(
    context: ContextLayer,
    auth: AuthLayer,
    endpoints: E,
    forward: F,
) -> impl Service<
    Request<RequestBody>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
where
    E: Service<Request<RequestBody>, Response = Response<Body>, Error = Rejection>
        + Clone
        + Send
        + 'static,
    E::Future: Send + 'static,
    F: Service<Request<RequestBody>, Response = Response<Body>, Error = Rejection>
        + Clone
        + Send
        + 'static,
    F::Future: Send + 'static,
{
    let endpoints = ServiceBuilder::new()
        .layer(DeadlineLayer)
        .service(endpoints);
    let forward_auth = ServiceBuilder::new()
        .layer(RateLimitLayer::before_auth())
        .layer(auth.clone())
        .layer(RateLimitLayer::after_auth())
        .service(ForwardAuthAnswer);
    let routes = ServiceBuilder::new()
        .layer(BodyLimitLayer)
        .layer(RateLimitLayer::before_auth())
        .layer(auth)
        .layer(DeadlineLayer)
        .layer(RateLimitLayer::after_auth())
        .layer(IdentityLayer)
        .service(forward);
    let sensitive = context.sensitive_headers();
    let in_flight = context.in_flight();
    ServiceBuilder::new()
        .layer(context)
        .layer(sensitive)
        .layer(RequestIdLayer)
        .layer(TraceLayer)
        .layer(AccessLogLayer)
        .layer(MetricsLayer)
        .layer(in_flight)
        .layer(SecurityHeadersLayer)
        .layer(CorsLayer)
        .layer(CatchPanicLayer)
        .layer(ErrorBoundaryLayer)
        .layer(HygieneLayer)
        .layer(ClassifyLayer)
        .layer(PreflightLayer)
        .service(Dispatch::new(endpoints, forward_auth, routes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// State for one public route on the echo upstream.
    fn public_only() -> Arc<Shared> {
        let text = "[[upstreams]]\nname = \"echo\"\necho = true\n\
                    [[routes]]\npath = \"/public/**\"\nupstream = \"echo\"\nauth = \"none\"\n";
        let config = crate::config::parse_str(text, std::path::Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("config: {e}"));
        Shared::detached(config)
    }

    fn peer() -> Arc<Peer> {
        Arc::new(Peer::new(([127, 0, 0, 1], 1).into()))
    }

    /// Every layer's future holds the one below it, and each is moved once as the
    /// stack is called: its size is paid in copies on every request. Early answers
    /// are boxed (layer/facts.rs) and the forward step is boxed, so the whole is a few
    /// hundred bytes; a layer that puts a large value inline shows up here first.
    #[tokio::test]
    async fn the_stack_future_stays_small() {
        let mut svc = build(public_only(), peer(), 0);
        let req = Request::builder()
            .uri("/public/x")
            .body(RequestBody::empty())
            .unwrap_or_else(|e| panic!("request: {e}"));
        let fut = svc.call(req);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 448, "the stack's future grew to {size} bytes");
        drop(fut);
    }

    /// Below the entry, credential headers are marked sensitive (what `Debug` prints of
    /// them is `Sensitive`), and other headers are not.
    #[tokio::test]
    async fn credential_headers_are_sensitive_below_the_entry() {
        use tower::ServiceExt as _;
        let context = ContextLayer::new(public_only(), peer(), 0);
        let seen = tower::service_fn(|req: Request<RequestBody>| {
            let mut resp = Response::new(Body::Empty);
            for (name, value) in req.headers() {
                let mark = if value.is_sensitive() {
                    "sensitive"
                } else {
                    "plain"
                };
                let debug = format!("{value:?}");
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(format!("x-{mark}-{name}").as_bytes()),
                    HeaderValue::from_str(&debug),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            std::future::ready(Ok::<_, crate::layer::facts::Rejection>(resp))
        });
        let svc = assemble(context, AuthLayer::default(), seen, seen);
        let req = Request::builder()
            .uri("/public/x")
            .header("host", "gw.test")
            .header("cookie", "session=s3cret-of-the-cookie")
            .header("accept", "*/*")
            .body(RequestBody::empty())
            .unwrap_or_else(|e| panic!("request: {e}"));
        let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
        let h = resp.headers();
        assert_eq!(
            h.get("x-sensitive-cookie").map(|v| v.as_bytes()),
            Some(&b"Sensitive"[..])
        );
        assert!(h.get("x-plain-cookie").is_none());
        assert!(h.get("x-plain-accept").is_some());
    }
}
