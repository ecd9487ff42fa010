//! What the upstream may see of the client's request, after authentication: hop-by-hop
//! headers (and those `Connection` names) removed — after authentication, so that
//! `Connection: Authorization` cannot hide a valid token from it, and before the
//! identity is added, so that `Connection: x-auth-subject` cannot remove it; an
//! `Upgrade` kept only when the route allows it (`proxy/upgrade.rs`, as [`UpgradeTo`]);
//! the verified identity injected (`x-auth-*`, claim headers, the TLS client
//! certificate's thumbprint); `Authorization` removed
//! unless the route passes it; an API key never passed on; the route's request header
//! transform applied.

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use tower::Service;

use super::facts::{ctx, proceed, Admitted, Early, Rejection, Target};
use crate::body::Body;
use crate::error::{GatewayError, OrInternal as _};
use crate::proxy::{headers, upgrade};

/// The protocol the client may switch to (the route allows it), for the forward step.
#[derive(Debug, Clone)]
pub struct UpgradeTo(pub HeaderValue);

unit_layer!(IdentityLayer => Identity);

fn rewrite<B>(req: &mut Request<B>) -> Result<(), GatewayError> {
    let c = ctx(req)?;
    let snap = c.snap.clone();
    let client_cert = c.peer.tls.as_ref().and_then(|t| t.client_cert.clone());
    let config = &snap.config;
    let route = match req.extensions().get::<Target>() {
        Some(Target::Route(i)) => config.router.routes().get(*i),
        _ => None,
    }
    .or_internal()?;
    let admitted = req.extensions_mut().remove::<Admitted>();
    let asked = headers::remove_hop_by_hop(req.headers_mut());
    if let Some(to) = upgrade::allowed(asked, route, req.method(), req.version()) {
        req.extensions_mut().insert(UpgradeTo(to));
    }
    let h = req.headers_mut();
    if let Some(Admitted(Some((p, effective)))) = admitted {
        snap.identity
            .inject(h, &p, &effective, &config.claim_headers);
    }
    if let Some(cert) = client_cert {
        let id = &snap.identity;
        if let Some(san) = cert.sans_header() {
            h.insert(id.client_cert_san.clone(), san);
        }
        if let Some(subject) = cert.subject {
            h.insert(id.client_cert_subject.clone(), subject);
        }
        h.insert(id.client_cert.clone(), cert.sha256);
    }
    if !route.pass_authorization {
        h.remove(AUTHORIZATION);
    }
    if let Some(keys) = &config.api_keys {
        h.remove(&keys.header);
    }
    if let Some(t) = &route.request_headers {
        t.apply(h);
    }
    Ok(())
}

impl<S, B> Service<Request<B>> for Identity<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Early<S::Future>;

    forward_ready!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let checked = rewrite(&mut req);
        proceed(checked, || self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::principal::Principal;
    use crate::layer::testing::{recorder, routed, snapshot};
    use std::sync::Arc;
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn the_identity_is_injected_and_hop_by_hop_and_authorization_removed() {
        let s =
            snapshot("[[routes]]\nname = \"orders\"\npath = \"/orders/**\"\nupstream = \"echo\"\n");
        let mut req = routed(&s, "/orders/1", "orders");
        let h = req.headers_mut();
        h.insert("authorization", "Bearer t".parse().expect("value"));
        h.insert("connection", "x-custom".parse().expect("value"));
        h.insert("x-custom", "1".parse().expect("value"));
        h.insert("upgrade", "h2c".parse().expect("value"));
        let p = Principal {
            subject: "alice".into(),
            scopes: vec!["orders:read".into()],
            roles: vec![],
            client_id: Some("web".into()),
            issuer: "https://gw.test".into(),
            expires_at: 0,
            claims: Default::default(),
            expand_roles: false,
        };
        req.extensions_mut()
            .insert(Admitted(Some((Arc::new(p), vec!["orders:read".into()]))));
        let resp = IdentityLayer
            .layer(recorder())
            .oneshot(req)
            .await
            .expect("passes");
        let seen = resp.headers();
        assert_eq!(seen["x-seen-x-auth-subject"], "alice");
        assert_eq!(seen["x-seen-x-auth-scopes"], "orders:read");
        for gone in [
            "x-seen-authorization",
            "x-seen-connection",
            "x-seen-x-custom",
            "x-seen-upgrade",
        ] {
            assert!(!seen.contains_key(gone), "{gone} reached the upstream");
        }
    }
}
