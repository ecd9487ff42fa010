//! Authentication and authorization of a routed request (or of the request a
//! forward-auth question describes): the route's `auth` mode, a Bearer JWT (own keys,
//! or the `[[issuers]]` entry its `iss` names) or an API key, the verified-token cache,
//! the revocation deny-list, then the route's scopes / roles. The verified caller and
//! its effective scopes go down as [`Admitted`]; the caller comes back up as
//! [`Caller`] (so a `403` is logged with its subject).
//!
//! Everything is synchronous except verifying an external issuer's token that is not
//! in the cache (its JWKS may need a refetch): that path boxes one future.

use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use tower::{Layer, Service};

use super::facts::{
    attach, ctx, Admitted, Attach, Caller, Early, OrBoxed, Outcome, Rejection, Target,
};
use crate::auth::api_key::Presented;
use crate::auth::bearer::{self, Bearer};
use crate::auth::jwks::{peek_issuer, JwksClient};
use crate::auth::jwt::TokenError;
use crate::auth::principal::Principal;
use crate::body::Body;
use crate::config::{AuthMode, Route};
use crate::error::{GatewayError, OrInternal as _};
use crate::metrics::metrics;
use crate::policy::scope;
use crate::state::Snapshot;

/// Authenticates from the request's credentials; [`AuthLayer::assuming`] instead takes
/// the caller as given (only `explain --scopes/--roles` builds one: a stack assembled
/// in-process, never the one a listener serves) and still authorizes it.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    assumed: Option<Arc<Principal>>,
}

impl AuthLayer {
    pub fn assuming(caller: Principal) -> AuthLayer {
        AuthLayer {
            assumed: Some(Arc::new(caller)),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            assumed: self.assumed.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    assumed: Option<Arc<Principal>>,
}

/// Who is asking, as far as it can be known without waiting.
enum Credential {
    /// Anonymous, and the route admits it.
    Anonymous,
    Verified(Arc<Principal>),
    /// An external issuer's token, not cached: verified on the slow path.
    External(Arc<JwksClient>, String),
}

fn route_of<'a, B>(snap: &'a Snapshot, req: &Request<B>) -> Result<&'a Route, GatewayError> {
    match req.extensions().get::<Target>() {
        Some(Target::Route(i) | Target::ForwardAuth(i)) => snap.config.router.routes().get(*i),
        _ => None,
    }
    .or_internal()
}

fn credential(
    snap: &Snapshot,
    worker: usize,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Credential, GatewayError> {
    let cache = snap.token_cache(worker);
    let mut looked_up = None;
    let token = match route.auth {
        AuthMode::None => return Ok(Credential::Anonymous),
        AuthMode::Required | AuthMode::Optional => {
            // A token this worker verified before, byte for byte, is looked up before
            // the header is parsed: only tokens that came out of `bearer::extract` are
            // cached, and the same bytes after `Bearer ` (any case, one space) in the
            // only `Authorization` header come out of it the same way again. A second
            // header, a tab or an extra space never match (`bearer::raw`).
            if let Some((cache, raw)) = cache.zip(bearer::raw(headers)) {
                if let Some(p) = cache.get(raw) {
                    metrics().token_cache_hit.inc();
                    return not_revoked(snap, p).map(Credential::Verified);
                }
                looked_up = Some(raw);
            }
            match bearer::extract(headers) {
                Bearer::Missing => {
                    return match snap.config.api_keys.as_ref().map(|k| k.check(headers)) {
                        Some(Presented::Known(p)) => Ok(Credential::Verified(Arc::new(p))),
                        Some(Presented::Unknown) => {
                            Err(GatewayError::InvalidToken(TokenError::UnknownKey))
                        }
                        None | Some(Presented::Missing) if route.auth == AuthMode::Required => {
                            Err(GatewayError::Unauthenticated)
                        }
                        None | Some(Presented::Missing) => Ok(Credential::Anonymous),
                    }
                }
                // Checked before any API key: a request that sends `Authorization` means
                // it, and one that is not `Bearer <token>` is told what is wrong (400).
                Bearer::Malformed(m) => return Err(GatewayError::MalformedAuthorization(m)),
                Bearer::Token(token) => token,
            }
        }
    };
    if let Some(cache) = cache {
        // Looked up already when the token is the raw bytes (the usual header).
        let hit = match looked_up {
            Some(raw) if raw == token.as_bytes() => None,
            _ => cache.get(token),
        };
        if let Some(p) = hit {
            metrics().token_cache_hit.inc();
            return not_revoked(snap, p).map(Credential::Verified);
        }
        metrics().token_cache_miss.inc();
    }
    if let Some(client) = peek_issuer(token).and_then(|iss| snap.issuer(&iss).cloned()) {
        return Ok(Credential::External(client, token.to_string()));
    }
    let verified = match snap.config.tokens.as_ref() {
        Some(v) => v.verify(token),
        None => Err(TokenError::UnknownKey),
    };
    remember(snap, worker, token, verified, &route.name).map(Credential::Verified)
}

/// A verification's result: cached when valid, then checked against the deny-list.
fn remember(
    snap: &Snapshot,
    worker: usize,
    token: &str,
    verified: Result<Principal, TokenError>,
    route: &str,
) -> Result<Arc<Principal>, GatewayError> {
    let p = Arc::new(verified.map_err(|e| {
        tracing::debug!(reason = %e, route, "token refused");
        GatewayError::InvalidToken(e)
    })?);
    if let Some(c) = snap.token_cache(worker) {
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

/// The route's scopes and roles for a verified caller.
fn admit(snap: &Snapshot, route: &Route, p: &Arc<Principal>) -> Result<Admitted, GatewayError> {
    let effective =
        scope::authorize(route, p, &snap.config.roles).map_err(GatewayError::InsufficientScope)?;
    Ok(Admitted(Some((p.clone(), effective))))
}

pub type ResponseFuture<F> = OrBoxed<Early<Attach<F, Caller>>>;

/// The outcome of a denial that names its caller (a `403`).
/// `portcullis_auth_decisions_total`: `allowed` (reason `anonymous` or `credential`)
/// or `denied` with the denial's reason code.
fn decided(e: Option<&GatewayError>, anonymous: bool) {
    use prometheus_client::metrics::counter::Counter;
    use std::sync::LazyLock;
    // The two allowed series are looked up once: a family lookup (a lock and a hash
    // of two strings) on every admitted request cost more than the decision.
    static ALLOWED: LazyLock<[Counter; 2]> = LazyLock::new(|| {
        ["anonymous", "credential"].map(|reason| {
            crate::metrics::metrics()
                .auth
                .get_or_create_owned(&crate::metrics::Outcome {
                    outcome: "allowed",
                    reason,
                })
        })
    });
    match e {
        None => {
            ALLOWED[usize::from(!anonymous)].inc();
        }
        Some(e) => {
            let labels = crate::metrics::Outcome {
                outcome: "denied",
                reason: e.reason().as_str(),
            };
            crate::metrics::metrics().auth.get_or_create(&labels).inc();
        }
    }
}

fn denied<F>(e: GatewayError, caller: Option<Arc<Principal>>) -> Early<F> {
    decided(Some(&e), false);
    match caller {
        None => Early::refused(e),
        Some(p) => {
            let mut out: Outcome = Err(e.into());
            attach(&mut out, Caller(p));
            Early::ready(out)
        }
    }
}

impl<S, B> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let now = |inner| OrBoxed::Now { inner };
        let (snap, worker, facts) = match ctx(&req) {
            Ok(c) => (c.snap.clone(), c.worker, c.facts),
            Err(e) => return now(Early::refused(e)),
        };
        let route = match route_of(&snap, &req) {
            Ok(r) => r,
            Err(e) => return now(Early::refused(e)),
        };
        // A connection-level requirement: checked before any credential.
        if let Some(sans) = &route.client_cert {
            // Through forward-auth the TLS peer is the proxy, not the client: its
            // certificate says nothing about the request, so such a route refuses.
            let direct = matches!(req.extensions().get::<Target>(), Some(Target::Route(_)));
            let tls = ctx(&req)
                .ok()
                .filter(|_| direct)
                .and_then(|c| c.peer.tls.as_ref());
            if let Err(why) = crate::tls::TlsPeer::allows(tls, sans) {
                let e = GatewayError::ClientCertRefused(why);
                decided(Some(&e), false);
                return now(Early::refused(e));
            }
        }
        let found = match &self.assumed {
            Some(p) if route.auth != AuthMode::None => Ok(Credential::Verified(p.clone())),
            _ => credential(&snap, worker, route, req.headers()),
        };
        let principal = match found {
            Ok(Credential::Anonymous) => {
                decided(None, true);
                req.extensions_mut().insert(Admitted(None));
                return now(Early::inner(Attach::new(self.inner.call(req), None)));
            }
            Ok(Credential::Verified(p)) => p,
            Ok(Credential::External(client, token)) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                return OrBoxed::Boxed {
                    inner: Box::pin(async move {
                        let route = route_of(&snap, &req)?;
                        let verified = client.verify(&token).await;
                        let p = remember(&snap, worker, &token, verified, &route.name)
                            .inspect_err(|e| decided(Some(e), false))?;
                        let admitted = admit(&snap, route, &p);
                        decided(admitted.as_ref().err(), false);
                        let mut out = match admitted {
                            Ok(a) => {
                                req.extensions_mut().insert(a);
                                inner.call(req).await
                            }
                            Err(e) => Err(e.into()),
                        };
                        attach(&mut out, Caller(p));
                        out
                    }),
                };
            }
            Err(e) => {
                decided(Some(&e), false);
                return now(Early::refused(e));
            }
        };
        match admit(&snap, route, &principal) {
            Ok(a) => {
                decided(None, false);
                req.extensions_mut().insert(a);
                let fact = facts.then_some(Caller(principal));
                now(Early::inner(Attach::new(self.inner.call(req), fact)))
            }
            Err(e) => now(denied(e, facts.then_some(principal))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{hs256_token, hs256_tokens, recorder, routed, snapshot};
    use tower::ServiceExt as _;

    fn snap() -> Arc<Snapshot> {
        snapshot(&format!(
            "{}\n[[routes]]\nname = \"orders\"\npath = \"/orders/**\"\nupstream = \"echo\"\n\
             scopes = [\"orders:read\"]\n\n[[routes]]\nname = \"maybe\"\npath = \"/maybe/**\"\n\
             upstream = \"echo\"\nauth = \"optional\"\n",
            hs256_tokens()
        ))
    }

    fn with_token(req: Request<()>, token: &str) -> Request<()> {
        with_authorization(req, &format!("Bearer {token}"))
    }

    fn with_authorization(mut req: Request<()>, value: &str) -> Request<()> {
        req.headers_mut()
            .append("authorization", value.parse().expect("value"));
        req
    }

    #[tokio::test]
    async fn a_valid_token_with_the_scope_passes_with_its_caller() {
        let s = snap();
        let req = with_token(
            routed(&s, "/orders/1", "orders"),
            &hs256_token("orders:read"),
        );
        let resp = AuthLayer::default()
            .layer(recorder())
            .oneshot(req)
            .await
            .expect("admitted");
        let caller = resp.extensions().get::<Caller>().expect("caller fact");
        assert_eq!(caller.0.subject, "alice");
        let admitted = resp.extensions().get::<Admitted>().expect("admitted");
        let (_, effective) = admitted.0.as_ref().expect("a principal");
        assert!(effective.contains(&"orders:read".to_string()));
    }

    #[tokio::test]
    async fn refusals_never_reach_the_inner_service() {
        let s = snap();
        let cases = [
            (routed(&s, "/orders/1", "orders"), "no token", 401),
            (
                with_token(routed(&s, "/orders/1", "orders"), "not-a-jwt"),
                "malformed",
                401,
            ),
            (
                with_token(routed(&s, "/orders/1", "orders"), &hs256_token("other")),
                "wrong scope",
                403,
            ),
            (
                with_authorization(routed(&s, "/orders/1", "orders"), "Basic YTpi"),
                "another scheme",
                400,
            ),
            (
                with_token(
                    with_token(
                        routed(&s, "/orders/1", "orders"),
                        &hs256_token("orders:read"),
                    ),
                    &hs256_token("orders:read"),
                ),
                "two headers, both valid",
                400,
            ),
            (
                with_authorization(routed(&s, "/maybe/x", "maybe"), "Bearer a b"),
                "malformed on an optional route",
                400,
            ),
        ];
        for (req, case, status) in cases {
            let inner = tower::service_fn(|_req: Request<()>| async {
                panic!("a refused request reached the inner service");
                #[allow(unreachable_code)]
                Ok::<Response<Body>, Rejection>(Response::new(Body::Empty))
            });
            match AuthLayer::default().layer(inner).oneshot(req).await {
                Ok(_) => panic!("{case}: admitted"),
                Err(rej) => {
                    assert_eq!(rej.error.parts().0.as_u16(), status, "{case}");
                    if status == 400 {
                        assert!(
                            matches!(rej.error, GatewayError::MalformedAuthorization(_)),
                            "{case}: {:?}",
                            rej.error
                        );
                    }
                    // A 403 names its caller for the access log.
                    assert_eq!(rej.facts.get::<Caller>().is_some(), status == 403, "{case}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_cached_token_is_still_refused_in_a_malformed_header() {
        let s = snap();
        let token = hs256_token("orders:read");
        let pass = |req| AuthLayer::default().layer(recorder()).oneshot(req);
        pass(with_token(routed(&s, "/orders/1", "orders"), &token))
            .await
            .expect("verified");
        let cache = s.token_cache(0).expect("a cache");
        assert!(
            cache.get(&token).is_some(),
            "cached after the first request"
        );
        // The cached bytes, in headers that `extract` refuses: never a cache hit.
        let spaced = format!("Bearer  {token}");
        let tabbed = format!("Bearer\t{token}");
        let cases = [
            with_token(
                with_token(routed(&s, "/orders/1", "orders"), &token),
                &token,
            ),
            with_authorization(routed(&s, "/orders/1", "orders"), &spaced),
            with_authorization(routed(&s, "/orders/1", "orders"), &tabbed),
        ];
        for req in cases {
            match pass(req).await {
                Ok(_) => panic!("a malformed header was admitted from the cache"),
                Err(rej) => assert!(
                    matches!(rej.error, GatewayError::MalformedAuthorization(_)),
                    "{:?}",
                    rej.error
                ),
            }
        }
        // Another spelling of the scheme is the same token: admitted (from the cache).
        let upper = format!("BEARER {token}");
        let resp = pass(with_authorization(
            routed(&s, "/orders/1", "orders"),
            &upper,
        ))
        .await
        .expect("admitted");
        assert_eq!(
            resp.extensions().get::<Caller>().expect("caller").0.subject,
            "alice"
        );
    }

    #[tokio::test]
    async fn an_optional_route_admits_anonymous_requests_as_such() {
        let s = snap();
        let resp = AuthLayer::default()
            .layer(recorder())
            .oneshot(routed(&s, "/maybe/x", "maybe"))
            .await
            .expect("admitted");
        assert!(matches!(
            resp.extensions().get::<Admitted>(),
            Some(Admitted(None))
        ));
        assert!(resp.extensions().get::<Caller>().is_none());
    }
}
