//! The request pipeline: the only place that orders the stages, top to bottom.
//!
//! ```text
//!  1 catch panics         → 500 JSON; the connection and the process live on
//!  2 request id           x-request-id kept (if sane) or generated, echoed on every answer
//!  3 head hygiene         refused methods (501: TRACE, CONNECT), target length (414),
//!                         header count and size (431), one Host = host[:port] that
//!                         agrees with the target's authority, Transfer-Encoding only
//!                         `chunked` (400 + close), '_' or '.' in names (400), reserved
//!                         identity headers removed in every spelling, override
//!                         headers stripped (middleware/hygiene.rs)
//!  3 canonical path       one canonical path or 400, double encoding included
//!                         (policy/path.rs)
//!  4 access log           one JSON line per request, denials included, written when
//!                         the body has been sent (middleware/access_log.rs)
//!  5 CORS                 preflights answered at the edge; grants + Vary on every
//!                         answer (middleware/cors.rs)
//!  6 error boundary       Err(GatewayError) → JSON response (error.rs, one match)
//!  7 limits               declared body size (413), request deadline (504)
//!  8 config snapshot      read once per request (hot reload)
//!  9 own endpoints        forward-auth (server.forward_auth_path): 10–12 for the
//!                         request a trusted proxy describes; 200 + identity headers;
//!                         the token service (token/): /token, /revoke, /register,
//!                         /.well-known/{jwks.json, oauth-authorization-server,
//!                         openid-configuration}; /token and /register rate limited
//!                         per client IP + username
//! 10 route match          method + host + canonical path → route | 404 | 405
//! 11 authenticate         Bearer JWT → Principal | 401 (auth/)
//! 12 authorize            route scopes / any_scopes / roles | 403 (policy/scope.rs)
//! 13 rate limit           the route's [rate_limits] policy | 429 (middleware/rate_limit.rs);
//!                         policies keyed without identity run before 11
//! 14 identity headers     hop-by-hop removed first (after 11, so `Connection` cannot
//!                         hide a token; before injection, so it cannot remove one),
//!                         an upgrade kept only if the route allows it (proxy/
//!                         upgrade.rs); inject x-auth-*; Authorization removed unless
//!                         passed
//! 15 forward              origin-form, X-Forwarded-* set (client-address claims from
//!                         untrusted peers removed), path rewritten, streamed both
//!                         ways, 502/504 on upstream failure, 502 for an unasked 101
//! ```
//! Stage 5 (CORS) is split in two: preflights are answered right after the canonical
//! path (before own endpoints and routing), and grants are added to every answer at
//! the end of `handle`, errors included.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderValue, Request, Response};
use hyper::body::Incoming;

use crate::auth::api_key::Presented;
use crate::auth::bearer::{self, Bearer};
use crate::auth::jwks::peek_issuer;
use crate::auth::jwt::TokenError;
use crate::auth::principal::Principal;
use crate::body::Body;
use crate::config::{AuthMode, Route};
use crate::error::GatewayError;
use crate::middleware::access_log::{self, LogInfo};
use crate::middleware::{cors, hygiene, request_id};
use crate::policy::matcher::{normalize_host, Matched};
use crate::policy::path::{canonicalize_with, split_target};
use crate::policy::scope;
use crate::proxy::forward::{self, Inbound};
use crate::proxy::{headers, upgrade};
use crate::state::{Shared, Snapshot};
use crate::token::endpoint::{self, Endpoint};

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// `addr`'s IP as a header value (for `X-Forwarded-For`), rendered once.
    pub ip_header: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        let ip_header = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer { addr, ip_header }
    }
}

/// Handles one request from `peer`; never fails: every outcome is a response.
/// `worker` picks that worker's upstream connection pools.
pub async fn handle(
    mut req: Request<Incoming>,
    peer: &Peer,
    worker: usize,
    shared: &Shared,
) -> Response<Body> {
    // 8: one snapshot for the whole request, so a reload never mixes two configs.
    let snap = shared.snapshot.load_full();
    let server = &snap.config.server;
    let started = server.access_log.then(Instant::now);
    // 2
    let rid = request_id::ensure(req.headers_mut());
    let method = req.method().clone();
    let mut log = LogInfo::default();
    let origin = if snap.cors_anywhere {
        req.headers().get(http::header::ORIGIN).cloned()
    } else {
        None
    };
    // The client's IP after the trusted-proxy rule, once, for the log, the token
    // endpoints' limiter and rate-limit keys.
    let client_ip = headers::client_ip(peer.addr.ip(), req.headers(), &server.trusted_proxies);
    if server.access_log && !server.access_log_query.is_empty() {
        log.query = req
            .uri()
            .query()
            .and_then(|q| access_log::allowed_query(q, &server.access_log_query));
    }
    // 1, 7 (deadline), 6
    let (mut resp, reason) = guard(
        // Boxed: the pipeline's state is several KiB, and hyper moves the service
        // future around; moving a pointer is cheaper than copying that state.
        Box::pin(pipeline(req, &snap, peer, client_ip, worker, &mut log)),
        snap.longest_deadline,
        &rid,
    )
    .await;
    log.reason = log.reason.or(reason);
    resp.headers_mut()
        .insert(request_id::X_REQUEST_ID.clone(), rid.clone());
    if snap.config.server.security_headers {
        crate::middleware::transform::security_headers(resp.headers_mut());
    }
    // 5: CORS headers on every answer (errors included), unless it was a preflight.
    if snap.cors_anywhere && !log.cors_answered {
        if let Some(p) = log.cors.as_ref().or(snap.config.cors.as_ref()) {
            p.decorate(origin.as_ref(), resp.headers_mut());
        }
    }
    // 4: the line is written once the body has been sent (bytes out, whole duration).
    if let Some(started) = started {
        let line = access_log::Line {
            request_id: rid.to_str().unwrap_or("").to_string(),
            client_ip: client_ip.to_string(),
            method: method.as_str().to_string(),
            status: resp.status().as_u16(),
            started,
            info: log,
        };
        let (parts, body) = resp.into_parts();
        return Response::from_parts(
            parts,
            Body::Logged(Box::new(access_log::Logged::new(body, line))),
        );
    }
    resp
}

/// Stages 1, 6 and 7's deadline: runs the pipeline, turning a panic, an error or an
/// expired deadline into its JSON response (with the reason for the access log).
async fn guard<F>(
    pipeline: F,
    deadline: Duration,
    rid: &HeaderValue,
) -> (Response<Body>, Option<&'static str>)
where
    F: Future<Output = Result<Response<Body>, GatewayError>>,
{
    let outcome = tokio::time::timeout(deadline, AssertUnwindSafe(pipeline).catch_unwind()).await;
    let err = match outcome {
        Ok(Ok(Ok(resp))) => return (resp, None),
        Ok(Ok(Err(e))) => e,
        Ok(Err(_panic)) => {
            tracing::error!(request_id = ?rid, "request handler panicked");
            GatewayError::Internal
        }
        Err(_elapsed) => GatewayError::RequestTimeout,
    };
    let reason = err.reason();
    (err.into_response(rid), Some(reason))
}

/// Stage 10: the route for a canonical path, or 405 / 404.
fn route_for<'a>(
    snap: &'a Snapshot,
    method: &http::Method,
    host: Option<&str>,
    canonical: &str,
) -> Result<&'a Route, GatewayError> {
    match snap.config.router.find(method, host, canonical) {
        Matched::Route(r) => Ok(r),
        Matched::MethodNotAllowed(allow) => Err(GatewayError::MethodNotAllowed(allow)),
        Matched::NotFound => Err(GatewayError::NoRoute),
    }
}

/// A verified principal with its effective scopes; `None` for an admitted anonymous
/// request.
type Admitted = Option<(Arc<Principal>, Vec<String>)>;

/// Stages 11 (authenticate) and 12 (authorize) for a routed request: the verified
/// principal and its effective scopes, `None` for an anonymous request the route
/// admits, or the denial.
async fn admit(
    snap: &Snapshot,
    worker: usize,
    route: &Route,
    headers: &HeaderMap,
    log: &mut LogInfo,
) -> Result<Admitted, GatewayError> {
    let principal = match route.auth {
        AuthMode::None => return Ok(None),
        AuthMode::Required | AuthMode::Optional => match bearer::extract(headers) {
            Bearer::Missing => match snap.config.api_keys.as_ref().map(|k| k.check(headers)) {
                Some(Presented::Known(p)) => Arc::new(p),
                Some(Presented::Unknown) => {
                    return Err(GatewayError::InvalidToken(TokenError::UnknownKey))
                }
                None | Some(Presented::Missing) if route.auth == AuthMode::Required => {
                    return Err(GatewayError::Unauthenticated)
                }
                None | Some(Presented::Missing) => return Ok(None),
            },
            Bearer::Duplicate => {
                return Err(GatewayError::BadRequest(
                    "more than one Authorization header",
                ))
            }
            Bearer::Invalid => return Err(GatewayError::InvalidToken(TokenError::Malformed)),
            Bearer::Token(token) => authenticate(snap, worker, token, &route.name).await?,
        },
    };
    // Authenticated: the access log names the caller, for a 403 too.
    if snap.config.server.access_log {
        log.subject = Some(principal.subject.clone());
        log.client_id = principal.client_id.clone();
    }
    let effective = scope::authorize(route, &principal, &snap.config.roles)
        .map_err(GatewayError::InsufficientScope)?;
    Ok(Some((principal, effective)))
}

/// Forward-auth (nginx `auth_request`, Traefik ForwardAuth…): decides for the request
/// described by `X-Original-Method`/`X-Original-URI` (or `X-Forwarded-Method`/
/// `X-Forwarded-Uri`), sent by a trusted proxy only. The original path is
/// canonicalized and routed exactly like a proxied request; the answer is `200` with
/// the identity headers, or the same denial a proxied request would get.
async fn forward_auth(
    req: &Request<Incoming>,
    snap: &Snapshot,
    peer: &Peer,
    client_ip: std::net::IpAddr,
    worker: usize,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let server = &snap.config.server;
    if !headers::is_trusted(peer.addr.ip(), &server.trusted_proxies) {
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
        .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok())
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
    if server.access_log {
        log.path = Some(format!(
            "{} {method} {canonical}",
            server.forward_auth_path.as_deref().unwrap_or("")
        ));
    }
    let route = route_for(snap, &method, host.as_deref(), &canonical)?;
    if server.access_log {
        log.route = Some(route.name.clone());
    }
    let mut resp = Response::new(Body::Empty);
    if let Some((p, effective)) = limit_and_admit(snap, worker, route, h, client_ip, log).await? {
        snap.identity.inject(
            resp.headers_mut(),
            &p,
            &effective,
            &snap.config.claim_headers,
        );
    }
    Ok(resp)
}

/// Verifies a bearer token, through the worker's verified-token cache. The token's
/// (unverified) `iss` picks an external issuer when it names one; every other token
/// is checked against Portcullis' own keys and issuer.
async fn authenticate(
    snap: &Snapshot,
    worker: usize,
    token: &str,
    route: &str,
) -> Result<Arc<Principal>, GatewayError> {
    let cache = snap.token_cache(worker);
    if let Some(p) = cache.and_then(|c| c.get(token)) {
        return not_revoked(snap, p);
    }
    let external = peek_issuer(token).and_then(|iss| snap.issuer(&iss).cloned());
    let verified = match external {
        Some(client) => client.verify(token).await,
        None => match snap.config.tokens.as_ref() {
            Some(v) => v.verify(token),
            None => Err(TokenError::UnknownKey),
        },
    };
    let p = Arc::new(verified.map_err(|e| {
        tracing::debug!(reason = %e, route, "token refused");
        GatewayError::InvalidToken(e)
    })?);
    if let Some(c) = cache {
        c.insert(token, p.clone(), p.expires_at);
    }
    not_revoked(snap, p)
}

/// Refuses an own token whose `jti` was revoked (`POST /revoke`). Checked after the
/// cache too, so a revocation takes effect at once on the replica that took it and
/// within the deny-list's sync interval on the others.
fn not_revoked(snap: &Snapshot, p: Arc<Principal>) -> Result<Arc<Principal>, GatewayError> {
    let Some(rt) = &snap.token_runtime else {
        return Ok(p);
    };
    if rt.deny.is_empty()
        || snap
            .config
            .tokens
            .as_ref()
            .is_none_or(|t| t.issuer != p.issuer)
    {
        return Ok(p);
    }
    match p.claims.get("jti").and_then(serde_json::Value::as_str) {
        Some(jti) if rt.deny.contains(jti) => {
            tracing::debug!("revoked token refused");
            Err(GatewayError::InvalidToken(TokenError::Revoked))
        }
        _ => Ok(p),
    }
}

/// Stages 11–13 for a routed request (proxied or forward-auth): the route's rate-limit
/// policy (keyed without identity: before any token is checked), authentication and
/// authorization, then a policy keyed by subject or client.
async fn limit_and_admit(
    snap: &Snapshot,
    worker: usize,
    route: &Route,
    headers: &HeaderMap,
    client_ip: std::net::IpAddr,
    log: &mut LogInfo,
) -> Result<Admitted, GatewayError> {
    let policy = snap
        .config
        .rate_limits
        .for_route(route.rate_limit.as_deref());
    if let Some(p) = policy {
        if !p.key.needs_identity() {
            rate_limit(p, client_ip, None, route, headers).await?;
        }
    }
    let admitted = admit(snap, worker, route, headers, log).await?;
    if let Some(p) = policy {
        if p.key.needs_identity() {
            let principal = admitted.as_ref().map(|a| &*a.0);
            rate_limit(p, client_ip, principal, route, headers).await?;
        }
    }
    Ok(admitted)
}

/// Stage 13: counts the request on a route's policy.
async fn rate_limit(
    policy: &crate::middleware::rate_limit::Policy,
    ip: std::net::IpAddr,
    principal: Option<&Principal>,
    route: &Route,
    headers: &HeaderMap,
) -> Result<(), GatewayError> {
    let input = crate::middleware::rate_limit::KeyInput {
        ip,
        issuer: principal.map(|p| p.issuer.as_str()),
        subject: principal.map(|p| p.subject.as_str()),
        client_id: principal.and_then(|p| p.client_id.as_deref()),
        route: &route.name,
        headers,
        username: None,
    };
    policy
        .check(&input)
        .await
        .map_err(|retry_after| GatewayError::RateLimited {
            policy: policy.name.clone(),
            policy_header: policy.policy_header(),
            retry_after,
        })
}

/// The request's host for routing: lower-case, without the port.
fn routing_host<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.headers().get(HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    normalize_host(raw)
}

async fn pipeline(
    mut req: Request<Incoming>,
    snap: &Snapshot,
    peer: &Peer,
    client_ip: std::net::IpAddr,
    worker: usize,
    log: &mut LogInfo,
) -> Result<Response<Body>, GatewayError> {
    let server = &snap.config.server;
    // 3: header hygiene, then the canonical path.
    hygiene::apply(&mut req, server, &snap.identity.claim_header_names)?;
    let canonical = canonicalize_with(req.uri().path(), server.reject_double_encoding)?;
    if server.access_log {
        log.path = Some(canonical.clone());
    }
    // 9: Portcullis' own endpoints
    if server.forward_auth_path.as_deref() == Some(canonical.as_str()) {
        return forward_auth(&req, snap, peer, client_ip, worker, log).await;
    }
    // 5: a preflight is answered here, by the policy of the route the actual request
    // would take (or `[cors]`), before any token is asked for.
    if snap.cors_anywhere && cors::is_preflight(&req) {
        let wanted = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok());
        let host = routing_host(&req);
        let route = wanted.and_then(|m| route_for(snap, &m, host.as_deref(), &canonical).ok());
        if let Some(p) = route
            .and_then(|r| r.cors.as_ref())
            .or(snap.config.cors.as_ref())
        {
            log.cors_answered = true;
            if server.access_log {
                log.route = route.map(|r| r.name.clone());
                log.reason = Some("preflight");
            }
            return Ok(p.preflight(req.headers()));
        }
    }
    if let Some(svc) = &snap.config.token_service {
        if let Some(ep) = Endpoint::at(svc, &canonical) {
            if server.access_log {
                log.route = Some(format!("portcullis:{}", ep.name()));
            }
            let runtime = snap.token_runtime.as_deref();
            let (resp, reason) = endpoint::serve(ep, req, client_ip, snap, svc, runtime).await;
            log.reason = reason;
            return Ok(resp);
        }
    }
    // 10
    let host = if snap.config.router.uses_hosts() {
        routing_host(&req)
    } else {
        None
    };
    let route = route_for(snap, req.method(), host.as_deref(), &canonical)?;
    if server.access_log {
        log.route = Some(route.name.clone());
        log.upstream = Some(route.upstream.name.clone());
    }
    if route.cors.is_some() {
        log.cors = route.cors.clone();
    }
    // 7: a declared body over the (route's) limit is refused before anything is read.
    let max_body = route.max_body_bytes.unwrap_or(server.max_body_bytes);
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(GatewayError::BadRequest("invalid Content-Length"))?;
        if len > max_body {
            return Err(GatewayError::PayloadTooLarge);
        }
    }
    // 7: the route's deadline (the outer guard allows the longest one configured).
    // When it equals the outer bound, the guard in `handle` enforces it already.
    let deadline = route.request_timeout.unwrap_or(server.request_timeout);
    let rest = routed(
        req, snap, peer, client_ip, worker, log, route, &canonical, max_body,
    );
    if deadline >= snap.longest_deadline {
        return rest.await;
    }
    match tokio::time::timeout(deadline, rest).await {
        Ok(result) => result,
        Err(_) => Err(GatewayError::RequestTimeout),
    }
}

/// Stages 11–15 for a routed request.
#[allow(clippy::too_many_arguments)]
async fn routed(
    mut req: Request<Incoming>,
    snap: &Snapshot,
    peer: &Peer,
    client_ip: std::net::IpAddr,
    worker: usize,
    log: &mut LogInfo,
    route: &Route,
    canonical: &str,
    max_body: u64,
) -> Result<Response<Body>, GatewayError> {
    let server = &snap.config.server;
    // 11–13
    let admitted = limit_and_admit(snap, worker, route, req.headers(), client_ip, log).await?;
    // Hop-by-hop headers (and those `Connection` names) are removed from what is
    // forwarded: after authentication (`Connection: Authorization` must not hide a
    // valid token from it), before identity headers are added (so that
    // `Connection: x-auth-subject` cannot remove them). An upgrade survives only if
    // the route allows it.
    let asked = headers::remove_hop_by_hop(req.headers_mut());
    let upgrade = upgrade::allowed(asked, route, req.method(), req.version());
    // 14
    if let Some((p, effective)) = admitted {
        snap.identity.inject(
            req.headers_mut(),
            &p,
            &effective,
            &snap.config.claim_headers,
        );
    }
    if !route.pass_authorization {
        req.headers_mut().remove(AUTHORIZATION);
    }
    // An API key is a secret of the gateway's: never passed on.
    if let Some(keys) = &snap.config.api_keys {
        req.headers_mut().remove(&keys.header);
    }
    if let Some(t) = &route.request_headers {
        t.apply(req.headers_mut());
    }
    // 15
    let inbound = Inbound {
        bytes_in: &log.bytes_in,
        peer: &peer.ip_header,
        trusted_peer: headers::is_trusted(peer.addr.ip(), &server.trusted_proxies),
        proto: "http",
    };
    let client = snap.client(worker, &route.upstream.name);
    let asked = server.access_log.then(Instant::now);
    let forwarded =
        forward::forward(req, canonical, route, client, inbound, max_body, upgrade).await;
    if let Some(asked) = asked {
        log.upstream_us = Some(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    let mut resp = forwarded?;
    if let Some(t) = &route.response_headers {
        t.apply(resp.headers_mut());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::BodyExt;

    async fn json(resp: Response<Body>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500() {
        let rid = HeaderValue::from_static("r1");
        let pipeline = async {
            if std::env::var_os("PATH").is_some() {
                panic!("boom");
            }
            Err(GatewayError::NoRoute)
        };
        let (resp, reason) = guard(pipeline, Duration::from_secs(5), &rid).await;
        assert_eq!(resp.status(), 500);
        assert_eq!(reason, Some("panic"));
        let v = json(resp).await;
        assert_eq!(v["error"], "internal_error");
        assert_eq!(v["request_id"], "r1");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_deadline_becomes_a_504() {
        let rid = HeaderValue::from_static("r2");
        let (resp, reason) = guard(std::future::pending(), Duration::from_secs(30), &rid).await;
        assert_eq!(resp.status(), 504);
        assert_eq!(reason, Some("request_timeout"));
    }

    #[test]
    fn routing_host_drops_port_and_case() {
        let req = Request::builder()
            .uri("/")
            .header(HOST, "API.Example.com:8080")
            .body(())
            .expect("req");
        assert_eq!(routing_host(&req).as_deref(), Some("api.example.com"));
        let req = Request::builder()
            .uri("http://[::1]:80/x")
            .body(())
            .expect("req");
        assert_eq!(routing_host(&req).as_deref(), Some("[::1]"));
    }
}
