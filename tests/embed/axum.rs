//! `examples/axum_app.rs` behind `AuthLayer` (policy `examples/auth.toml`) over HTTP
//! on loopback: what is admitted reaches the handler with its caller; everything else
//! is refused with RFC 6750 JSON and a `WWW-Authenticate` challenge, before any
//! handler runs.

use crate::axum_app;

use super::support::{client, layer, refused_tokens, token};

async fn start() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, axum_app::app(layer())).await });
    format!("http://{addr}")
}

/// GET `url`, with a bearer token when given.
async fn get(url: impl reqwest::IntoUrl, token: Option<&str>) -> reqwest::Response {
    let req = client().get(url);
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    req.send().await.expect("request")
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.expect("a JSON body")
}

#[tokio::test]
async fn a_token_with_the_scope_reaches_the_handler_with_its_caller() {
    let base = start().await;
    let resp = get(format!("{base}/orders/7"), Some(&token("orders:read"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.expect("body"),
        "order for alice (scopes: orders:read)"
    );
    // A public route needs nothing.
    let resp = get(format!("{base}/health"), None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn no_token_is_401_with_a_bearer_challenge() {
    let base = start().await;
    let resp = get(format!("{base}/orders/7"), None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"api\"");
    assert_eq!(json(resp).await["error"], "unauthorized");
}

#[tokio::test]
async fn refused_tokens_are_401_invalid_token() {
    let base = start().await;
    for (what, t) in refused_tokens("orders:read") {
        let resp = get(format!("{base}/orders/7"), Some(&t)).await;
        assert_eq!(resp.status(), 401, "{what}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"api\", error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert_eq!(json(resp).await["error"], "invalid_token", "{what}");
    }
}

#[tokio::test]
async fn a_malformed_authorization_header_is_400_naming_the_problem() {
    let base = start().await;
    let t = token("orders:read");
    let cases = [
        ("no scheme", vec![t.clone()], "no scheme"),
        (
            "Basic",
            vec!["Basic YWxpY2U6c2VjcmV0".to_string()],
            "not Bearer",
        ),
        ("empty", vec!["Bearer".to_string()], "empty"),
        (
            "two spaces",
            vec![format!("Bearer  {t}")],
            "more than one space",
        ),
        (
            "two headers",
            vec![format!("Bearer {t}"); 2],
            "more than one Authorization",
        ),
    ];
    for (what, values, says) in cases {
        let mut req = client().get(format!("{base}/orders/7"));
        for v in values {
            req = req.header("authorization", v);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 400, "{what}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            challenge.starts_with(
                "Bearer realm=\"api\", error=\"invalid_request\", error_description=\""
            ),
            "{what}: {challenge}"
        );
        let body = json(resp).await;
        assert_eq!(body["error"], "invalid_request", "{what}");
        let d = body["error_description"].as_str().unwrap_or_default();
        assert!(d.contains(says), "{what}: {d}");
        assert!(
            challenge.contains(d),
            "{what}: the same text in the challenge"
        );
    }
}

#[tokio::test]
async fn a_missing_scope_is_403_insufficient_scope() {
    let base = start().await;
    // The route policy ([[routes]] /orders/** needs orders:read).
    let resp = get(format!("{base}/orders/7"), Some(&token("profile"))).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"orders:read\""
    );
    assert_eq!(json(resp).await["error"], "insufficient_scope");
    // RequireScopes on one handler: orders:read passes the route, not the handler.
    let url = format!("{base}/orders/7/cancel");
    let resp = client()
        .post(&url)
        .bearer_auth(token("orders:read"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"orders:write\""
    );
    let resp = client()
        .post(&url)
        .bearer_auth(token("orders:read orders:write"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "cancelled by alice");
}

#[tokio::test]
async fn paths_no_route_names_and_ambiguous_paths_are_refused() {
    let base = start().await;
    let t = token("orders:read orders:write");
    for (path, status) in [("/admin", 404), ("/orders/a%2fb", 400)] {
        let resp = get(format!("{base}{path}"), Some(&t)).await;
        assert_eq!(resp.status(), status, "{path}");
    }
}
