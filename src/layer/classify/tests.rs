use super::*;
use crate::layer::testing::{request_with_ctx, snapshot};
use tower::{Layer as _, ServiceExt as _};

/// The classifier over a service that answers with the target it was given.
async fn target_of(mut req: Request<()>) -> Result<Target, GatewayError> {
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(Canonical(Arc::from(path)));
    let svc = ClassifyLayer.layer(tower::service_fn(|req: Request<()>| async move {
        let t = req.extensions().get::<Target>().copied();
        let mut resp = Response::new(Body::Empty);
        resp.extensions_mut().insert(t);
        Ok::<_, Rejection>(resp)
    }));
    match svc.oneshot(req).await {
        Ok(resp) => resp
            .extensions()
            .get::<Option<Target>>()
            .copied()
            .flatten()
            .ok_or(GatewayError::Internal),
        Err(rej) => Err(rej.error),
    }
}

const ROUTES: &str = "[cors]\nallow_origins = [\"https://app.test\"]\n\n\
    [[routes]]\nname = \"orders\"\npath = \"/orders/**\"\nupstream = \"echo\"\nmethods = [\"GET\"]\n";

#[tokio::test]
async fn routes_404_and_405() {
    let snap = snapshot(ROUTES);
    let i = |name: &str| {
        snap.config
            .router
            .routes()
            .iter()
            .position(|r| r.name == name)
            .expect("route")
    };
    let req = request_with_ctx(&snap, "/orders/1");
    assert_eq!(target_of(req).await.ok(), Some(Target::Route(i("orders"))));
    let req = request_with_ctx(&snap, "/nowhere");
    assert!(matches!(target_of(req).await, Err(GatewayError::NoRoute)));
    let mut req = request_with_ctx(&snap, "/orders/1");
    *req.method_mut() = Method::DELETE;
    match target_of(req).await {
        Err(GatewayError::MethodNotAllowed(allow)) => assert!(allow.contains(&Method::GET)),
        other => panic!("expected 405, got {other:?}"),
    }
}

#[tokio::test]
async fn a_preflight_is_classified_by_the_method_it_asks_for() {
    let snap = snapshot(ROUTES);
    let mut req = request_with_ctx(&snap, "/orders/1");
    *req.method_mut() = Method::OPTIONS;
    req.headers_mut()
        .insert("origin", "https://app.test".parse().expect("value"));
    req.headers_mut().insert(
        "access-control-request-method",
        "GET".parse().expect("value"),
    );
    assert!(matches!(
        target_of(req).await,
        Ok(Target::Preflight(Some(_)))
    ));
    // OPTIONS without the preflight headers is an ordinary request: 405 here.
    let mut req = request_with_ctx(&snap, "/orders/1");
    *req.method_mut() = Method::OPTIONS;
    assert!(matches!(
        target_of(req).await,
        Err(GatewayError::MethodNotAllowed(_))
    ));
}

#[tokio::test]
async fn forward_auth_answers_trusted_proxies_only() {
    let snap =
        snapshot("[server]\nforward_auth_path = \"/auth\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n");
    let mut req = request_with_ctx(&snap, "/auth");
    req.headers_mut()
        .insert("x-original-method", "GET".parse().expect("value"));
    req.headers_mut()
        .insert("x-original-uri", "/public/x".parse().expect("value"));
    // The test peer (192.0.2.7) is not a trusted proxy.
    assert!(matches!(
        target_of(req).await,
        Err(GatewayError::UntrustedProxy)
    ));
}
