//! What is this request for? Decided once, as the [`Target`] extension (and attached to
//! the answer): a forward-auth question, a CORS preflight the edge answers, one of the
//! token service's endpoints, or a route; otherwise `404` / `405` (deny by default).
//!
//! - Forward-auth (`server.forward_auth_path`): only from trusted proxies; the request
//!   described by `X-Original-Method`/`X-Original-URI` (or `X-Forwarded-Method`/`-Uri`)
//!   is refused-method checked, canonicalized and routed exactly like a proxied one.
//! - A preflight is classified by the route the actual request would take (its
//!   `Access-Control-Request-Method`), so its route's CORS policy (else `[cors]`)
//!   answers it before any credential is asked for.

use std::sync::Arc;

use http::header::HOST;
use http::{Method, Request, Response};
use tower::Service;

use super::facts::{ctx, Attach, Canonical, Early, LogPath, Rejection, Target};
use crate::body::Body;
use crate::error::{GatewayError, OrInternal as _};
use crate::middleware::cors;
use crate::policy::matcher::normalize_host;
use crate::policy::path::{canonicalize_with, split_target};
use crate::proxy::headers;
use crate::state::Snapshot;
use crate::token::endpoint::Endpoint;

unit_layer!(ClassifyLayer => Classify);

/// The request's host for routing: lower-case, without the port.
pub fn routing_host<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.headers().get(HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    normalize_host(raw)
}

/// The route for a method, host and canonical path, or `405` / `404`.
pub fn route_index(
    snap: &Snapshot,
    method: &Method,
    host: Option<&str>,
    canonical: &str,
) -> Result<usize, GatewayError> {
    snap.config
        .router
        .find_index(method, host, canonical)
        .map_err(|allow| match allow {
            Some(allow) => GatewayError::MethodNotAllowed(allow),
            None => GatewayError::NoRoute,
        })
}

/// The route of the request a trusted proxy describes, and the access log's path.
fn forward_auth<B>(req: &Request<B>, snap: &Snapshot) -> Result<(usize, Arc<str>), GatewayError> {
    let server = &snap.config.server;
    let c = ctx(req)?;
    if !headers::is_trusted(c.peer.addr.ip(), &server.trusted_proxies) {
        return Err(GatewayError::UntrustedProxy);
    }
    let h = req.headers();
    let pick = |a: &str, b: &str| {
        h.get(a)
            .or_else(|| h.get(b))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let method = pick("x-original-method", "x-forwarded-method")
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(GatewayError::BadRequest(
            "X-Original-Method (or X-Forwarded-Method) is missing",
        ))?;
    let uri = pick("x-original-uri", "x-forwarded-uri").ok_or(GatewayError::BadRequest(
        "X-Original-URI (or X-Forwarded-Uri) is missing",
    ))?;
    if server.refuse_methods.contains(&method) {
        return Err(GatewayError::MethodNotSupported);
    }
    let (path, _query) = split_target(&uri);
    let canonical = canonicalize_with(path, server.reject_double_encoding)?;
    let host = h
        .get(&headers::X_FORWARDED_HOST)
        .or_else(|| h.get(HOST))
        .and_then(|v| v.to_str().ok())
        .and_then(normalize_host);
    let log_path = format!(
        "{} {method} {canonical}",
        server.forward_auth_path.as_deref().unwrap_or("")
    );
    let i = route_index(snap, &method, host.as_deref(), &canonical)?;
    Ok((i, Arc::from(log_path)))
}

/// Decides the target; `LogPath` for a forward-auth question.
fn classify<B>(req: &Request<B>) -> Result<(Target, Option<LogPath>), GatewayError> {
    let snap = &ctx(req)?.snap;
    let canonical = &*req.extensions().get::<Canonical>().or_internal()?.0;
    let config = &snap.config;
    if config.server.forward_auth_path.as_deref() == Some(canonical) {
        let (i, path) = forward_auth(req, snap)?;
        return Ok((Target::ForwardAuth(i), Some(LogPath(path))));
    }
    if snap.cors_anywhere && cors::is_preflight(req) {
        let wanted = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let host = routing_host(req);
        let route = wanted.and_then(|m| route_index(snap, &m, host.as_deref(), canonical).ok());
        let policy = route
            .and_then(|i| config.router.routes().get(i))
            .and_then(|r| r.cors.as_ref())
            .or(config.cors.as_ref());
        if policy.is_some() {
            return Ok((Target::Preflight(route), None));
        }
    }
    if let Some(svc) = &config.token_service {
        if let Some(ep) = Endpoint::at(svc, canonical) {
            return Ok((Target::Endpoint(ep), None));
        }
    }
    let host = if config.router.uses_hosts() {
        routing_host(req)
    } else {
        None
    };
    let i = route_index(snap, req.method(), host.as_deref(), canonical)?;
    Ok((Target::Route(i), None))
}

impl<S, B> Service<Request<B>> for Classify<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Early<Attach<Attach<S::Future, LogPath>, Target>>;

    forward_ready!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let facts = ctx(&req).is_ok_and(|c| c.facts);
        match classify(&req) {
            Ok((target, log_path)) => {
                req.extensions_mut().insert(target);
                let inner = Attach::new(self.inner.call(req), log_path);
                Early::inner(Attach::new(inner, facts.then_some(target)))
            }
            Err(e) => Early::refused(e),
        }
    }
}

#[cfg(test)]
mod tests;
