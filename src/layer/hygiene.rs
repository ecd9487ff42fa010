//! The request head, checked and cleaned before anything reads it
//! (`middleware/hygiene.rs`: refused methods, target length, header count and size,
//! one sane `Host`, `Transfer-Encoding`, `_`/`.` in names, identity headers in every
//! spelling, override headers), then the one canonical path (`policy/path.rs`), kept
//! as the [`Canonical`] extension for routing, policy and the upstream, and attached to
//! the answer for the access log.

use std::sync::Arc;

use http::{Request, Response};
use tower::Service;

use super::facts::{ctx, Attach, Canonical, Early, Rejection};
use crate::body::Body;
use crate::error::GatewayError;
use crate::middleware::hygiene;
use crate::policy::path::canonicalize_with;

unit_layer!(HygieneLayer => Hygiene);

/// Checks and cleans the head; the canonical path, and whether the log wants it.
fn clean<B>(req: &mut Request<B>) -> Result<(Arc<str>, bool), GatewayError> {
    let c = ctx(req)?;
    let (snap, facts) = (c.snap.clone(), c.facts);
    let server = &snap.config.server;
    hygiene::apply(req, server, &snap.identity.claim_header_names)?;
    let canonical = canonicalize_with(req.uri().path(), server.reject_double_encoding)?;
    Ok((Arc::from(canonical), facts))
}

impl<S, B> Service<Request<B>> for Hygiene<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Rejection>,
{
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = Early<Attach<S::Future, Canonical>>;

    forward_ready!();

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match clean(&mut req) {
            Ok((path, logged)) => {
                let fact = logged.then(|| Canonical(path.clone()));
                req.extensions_mut().insert(Canonical(path));
                Early::inner(Attach::new(self.inner.call(req), fact))
            }
            Err(e) => Early::refused(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::{request_with_ctx, snapshot};
    use tower::{Layer as _, ServiceExt as _};

    fn echo_path() -> impl Service<Request<()>, Response = Response<Body>, Error = Rejection> {
        tower::service_fn(|req: Request<()>| async move {
            let path = req.extensions().get::<Canonical>().map(|c| c.0.to_string());
            let leaked = req.headers().contains_key("x-auth-subject");
            Ok::<_, Rejection>(Response::new(Body::full(format!(
                "{}|{leaked}",
                path.unwrap_or_default()
            ))))
        })
    }

    async fn text(resp: Response<Body>) -> String {
        use http_body_util::BodyExt as _;
        let b = resp.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[tokio::test]
    async fn the_canonical_path_is_passed_down_and_identity_headers_removed() {
        let snap = snapshot("[server]\naccess_log = true\n");
        let mut req = request_with_ctx(&snap, "/public/a/./b/../c");
        req.headers_mut()
            .insert("X-Auth-Subject", "admin".parse().expect("value"));
        let resp = HygieneLayer
            .layer(echo_path())
            .oneshot(req)
            .await
            .expect("passes");
        assert_eq!(
            resp.extensions().get::<Canonical>().map(|c| &*c.0),
            Some("/public/a/c")
        );
        assert_eq!(text(resp).await, "/public/a/c|false");
    }

    #[tokio::test]
    async fn a_bad_head_never_reaches_the_inner_service() {
        let snap = snapshot("");
        for (uri, method) in [("/public/a%2fb", "GET"), ("/public/x", "TRACE")] {
            let mut req = request_with_ctx(&snap, uri);
            *req.method_mut() = method.parse().expect("method");
            let inner = tower::service_fn(|_req: Request<()>| async {
                panic!("must not be called");
                #[allow(unreachable_code)]
                Ok::<Response<Body>, Rejection>(Response::new(Body::Empty))
            });
            let out = HygieneLayer.layer(inner).oneshot(req).await;
            assert!(out.is_err(), "{method} {uri}");
        }
    }
}
