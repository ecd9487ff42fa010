//! The forward step: rewrite the request for its upstream, send it, stream the answer.
//!
//! The upstream sees an origin-form request (RFC 9112 §3.2.1: `GET /path?query`,
//! never `GET http://host/path`) with the canonical path (minus `strip_prefix`, after
//! the upstream's base path) and the client's query untouched, and the `Host` the
//! route says (`preserve_host`, else the upstream's authority). Bodies stream both
//! ways; the request body is capped at `max_body_bytes`. An upgrade the route allows
//! (see `upgrade.rs`) is passed on and, once the upstream answers `101` for it, both
//! connections are joined; any other `101` is a `502`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, EXPECT, HOST, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};

use crate::body::{Body, LimitedBody, RequestBody};
use crate::config::{Route, UpstreamTarget};
use crate::error::GatewayError;
use crate::proxy::pool::{Pool, SendError};
use crate::proxy::tunnels::{TunnelLimits, TunnelSlot};
use crate::proxy::{echo, headers, upgrade};

/// An upgrade's place among the gateway's tunnels and its limits.
#[derive(Debug)]
pub struct Tunnel {
    pub slot: Option<TunnelSlot>,
    pub limits: TunnelLimits,
}

/// What the forward step needs to know about the inbound connection.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The peer's IP as a header value, rendered once per connection.
    pub peer: &'a HeaderValue,
    pub trusted_peer: bool,
    pub proto: &'static str,
    /// Counts the request body bytes read (access log).
    pub bytes_in: &'a std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The request's host as the client named it (`Host`, or the URI authority in HTTP/2).
pub fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    req.headers().get(HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

/// The path the upstream receives: canonical path minus `strip_prefix`, under the
/// upstream's base path, plus the raw query.
fn upstream_path_and_query(
    canonical: &str,
    route: &Route,
    base_path: &str,
    query: Option<&str>,
) -> String {
    let mut path = match &route.strip_prefix {
        Some(p) => canonical.strip_prefix(p.as_str()).unwrap_or(canonical),
        None => canonical,
    };
    if path.is_empty() {
        path = "/";
    }
    let mut out =
        String::with_capacity(base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(base_path);
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Forwards a routed request to its upstream. Its hop-by-hop headers were removed
/// by the pipeline already (before identity headers were added, so that a client's
/// `Connection: x-auth-subject` cannot remove them); `upgrade` is the protocol the
/// client asked to upgrade to, if the route allows it (`upgrade::allowed`).
pub async fn forward(
    mut req: Request<RequestBody>,
    canonical: &str,
    route: &Route,
    pool: Option<&Arc<Pool>>,
    inbound: Inbound<'_>,
    max_body: u64,
    upgrade: Option<(HeaderValue, Tunnel)>,
) -> Result<Response<Body>, GatewayError> {
    let (upgrade, tunnel) = match upgrade {
        Some((p, t)) => (Some(p), Some(t)),
        None => (None, None),
    };
    let upstream = &route.upstream;
    let host = request_host(&req);
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    let (upstream_host_header, base_path) = match &upstream.target {
        UpstreamTarget::Http {
            host_header,
            base_path,
            ..
        } => (Some(host_header), base_path.as_str()),
        UpstreamTarget::Echo => (None, ""),
    };
    let pq = upstream_path_and_query(canonical, route, base_path, parts.uri.query());
    // Origin-form: the pool knows where to connect; the request line carries only the
    // path and query (an absolute-form target breaks servers that route on it).
    parts.uri = Uri::try_from(pq)
        .map_err(|_| GatewayError::BadRequest("the request target cannot be forwarded"))?;
    parts.version = Version::HTTP_11;

    let h = &mut parts.headers;
    headers::set_forwarded(
        h,
        inbound.peer,
        inbound.trusted_peer,
        inbound.proto,
        host.clone(),
    );
    let upstream_host = match (upstream.preserve_host, &host, upstream_host_header) {
        (true, Some(client_host), _) => Some(client_host.clone()),
        (_, _, Some(h)) => Some(h.clone()),
        (_, _, None) => host.clone(),
    };
    if let Some(v) = upstream_host {
        h.insert(HOST, v);
    }
    // The gateway's span is the upstream's parent (W3C Trace Context).
    if let Some(t) = parts
        .extensions
        .get::<crate::layer::facts::Ctx>()
        .and_then(|c| c.trace.as_ref())
    {
        t.propagate(h);
    }
    // The sign-in session stays at the gateway (proxy/cookies.rs).
    super::cookies::strip_request(h);
    // `100 Continue` was the gateway's to send (hyper sends it when the body is first
    // read); the upstream gets the body without having to answer an expectation.
    h.remove(EXPECT);
    if let Some(proto) = &upgrade {
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(UPGRADE, proto.clone());
    }

    let (body, progress) = LimitedBody::new(body, max_body, inbound.bytes_in.clone());
    let out = Request::from_parts(parts, body);

    let Some(pool) = pool else {
        // Boxed: the echo service's future would otherwise sit inline in every
        // forward, to a real upstream too.
        return Box::pin(echo::respond(out, &upstream.name, &progress.exceeded)).await;
    };
    // The response timeout runs from the moment the upstream has the whole request (a
    // slow upload is bounded by the request deadline instead); an early answer wins.
    let request = pool.send(out);
    tokio::pin!(request);
    let result = tokio::select! {
        r = &mut request => Ok(r),
        _ = progress.finished.notified() => {
            tokio::time::timeout(upstream.response_timeout, &mut request).await
        }
    };
    let mut resp = match result {
        Err(_) => return Err(GatewayError::UpstreamTimeout),
        Ok(Err(_)) if progress.exceeded.load(Ordering::Relaxed) => {
            return Err(GatewayError::PayloadTooLarge)
        }
        Ok(Err(_)) if progress.client_failed.load(Ordering::Relaxed) => {
            return Err(GatewayError::BadRequest(
                "the request body could not be read (malformed or cut short)",
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = %upstream.name, error = %e, "upstream request failed");
            return Err(match e {
                SendError::Connect(_) | SendError::ConnectTimeout | SendError::Tls(_) => {
                    GatewayError::UpstreamConnect
                }
                SendError::PoolFull => GatewayError::UpstreamBusy,
                SendError::Request(_) => GatewayError::UpstreamFailed,
            });
        }
        Ok(Ok(resp)) => resp,
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // The pool never reuses a connection that answered 101 (pool.rs).
        return match (client_upgrade, &upgrade) {
            (Some(client_upgrade), Some(asked)) if upgrade::switched_as_asked(&resp, asked) => {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let (slot, limits) = tunnel.map_or((None, None), |t| (t.slot, Some(t.limits)));
                let limits = limits.unwrap_or(TunnelLimits {
                    idle: Duration::from_secs(300),
                    drain: Duration::from_secs(10),
                });
                upgrade::tunnel(
                    client_upgrade,
                    upstream_upgrade,
                    upstream.name.clone(),
                    slot,
                    limits,
                );
                let (mut parts, _body) = resp.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                parts
                    .headers
                    .insert(CONNECTION, HeaderValue::from_static("upgrade"));
                parts.headers.insert(UPGRADE, asked.clone());
                Ok(Response::from_parts(parts, Body::Empty))
            }
            _ => {
                tracing::warn!(upstream = %upstream.name, "upstream answered 101 to a request that asked no such upgrade; connection closed");
                Err(GatewayError::UnexpectedUpgrade)
            }
        };
    }

    let (mut parts, body) = resp.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    super::cookies::strip_response(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::Upstream(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(strip: Option<&str>) -> Route {
        Route::for_tests("/api/**", strip, &[], &[], &[])
    }

    #[test]
    fn paths_are_rewritten() {
        assert_eq!(
            upstream_path_and_query("/api/x", &route(None), "", Some("a=%2F..")),
            "/api/x?a=%2F.."
        );
        assert_eq!(
            upstream_path_and_query("/api/x/", &route(Some("/api")), "", None),
            "/x/"
        );
        assert_eq!(
            upstream_path_and_query("/api", &route(Some("/api")), "", None),
            "/"
        );
        assert_eq!(
            upstream_path_and_query("/api/x", &route(Some("/api")), "/v1", Some("")),
            "/v1/x?"
        );
    }
}
