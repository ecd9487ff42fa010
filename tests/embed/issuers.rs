//! An external issuer behind the library layer, its JWKS served over loopback: the
//! issuer is chosen by the token's `iss` (a token naming the IdP is held to the IdP's
//! keys and algorithms, never tried against the application's own), and an unknown
//! `kid` refetches the JWKS once per cooldown, not once per token.

use crate::axum_app;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use portcullis::embed::{AuthLayer, ClaimRules, IssuerConfig, JwksSource};

use super::support::{claims, client, now, sign, FIX};

const IDP: &str = "https://idp.test/";

/// Serves the RS256 fixture as a JWKS (kid `k1`); counts the fetches.
async fn jwks_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut jwk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{FIX}/rs256.jwk.json")).expect("fixture"))
            .expect("json");
    jwk["kid"] = "k1".into();
    let body = Bytes::from(serde_json::json!({"keys": [jwk]}).to_string());
    let counter = fetches.clone();
    tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else {
                return;
            };
            let (body, counter) = (body.clone(), counter.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let resp = http::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()));
                    async move { resp }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/jwks"), fetches)
}

fn rs256(kid: &str, claims: &serde_json::Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(
        &std::fs::read(format!("{FIX}/rs256.key")).expect("fixture"),
    )
    .expect("pem");
    jsonwebtoken::encode(&h, claims, &key).expect("sign")
}

fn idp_claims() -> serde_json::Value {
    serde_json::json!({"iss": IDP, "aud": "api", "sub": "kc-user", "exp": now() + 300,
        "iat": now(), "scope": "orders:read"})
}

#[tokio::test]
async fn the_issuer_is_chosen_by_iss_and_unknown_kids_refetch_once_per_cooldown() {
    let (url, fetches) = jwks_server().await;
    let secret = std::fs::read(format!("{FIX}/hs256.secret")).expect("fixture");
    let auth = AuthLayer::builder()
        .issuer("https://gw.test")
        .audience("api")
        .hs256_key("hs", &secret)
        // Own tokens' `iss` unchecked: the own key alone would accept the forged
        // token below; only choosing the issuer by `iss` refuses it.
        .without_issuer_check()
        .external_issuer(IssuerConfig {
            issuer: IDP.into(),
            source: JwksSource::Url(url),
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            rules: ClaimRules::new(IDP.into(), vec!["api".into()], Duration::from_secs(60)),
            min_refresh: Duration::from_secs(3600),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(3600),
        })
        .build()
        .expect("valid");
    // Readiness, as a probe would wait for it: the first fetch has stored the keys.
    while !auth.is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let app = axum_app::app(auth.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |t: String| {
        let url = format!("{base}/orders/7");
        async move {
            let resp = client()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .expect("request");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };

    // The IdP's token, verified with its JWKS.
    let (status, body) = get(rs256("k1", &idp_claims())).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "order for kc-user (scopes: orders:read)")
    );
    // Own tokens still verify with the own key.
    assert_eq!(
        get(sign(&claims("orders:read", "api", now() + 300), None))
            .await
            .0,
        200
    );
    let after_start = fetches.load(Ordering::SeqCst);
    assert_eq!(after_start, 1, "one fetch at start");

    // A token naming the IdP but signed with the application's HS256 key: held to the
    // IdP's keys and algorithms, so refused (trying each issuer would accept it).
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some("hs".into());
    let forged = jsonwebtoken::encode(
        &hs,
        &idp_claims(),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .expect("sign");
    assert_eq!(get(forged).await.0, 401);

    // An unknown kid asks for one refetch; the next unknown kid, within the cooldown,
    // none.
    assert_eq!(get(rs256("rotated", &idp_claims())).await.0, 401);
    assert_eq!(fetches.load(Ordering::SeqCst), after_start + 1);
    assert_eq!(get(rs256("forged-2", &idp_claims())).await.0, 401);
    assert_eq!(get(rs256("forged-3", &idp_claims())).await.0, 401);
    assert_eq!(fetches.load(Ordering::SeqCst), after_start + 1);
}
