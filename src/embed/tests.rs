//! The layer with `oneshot` over a recording inner service: what is admitted carries
//! its principal, what is refused never reaches the inner service.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use tower::{Layer as _, ServiceExt as _};

use super::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn now() -> u64 {
    crate::auth::jwt::now_secs()
}

fn sign(claims: serde_json::Value) -> String {
    let secret = std::fs::read(format!("{FIX}/hs256.secret")).unwrap_or_else(|e| panic!("{e}"));
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap_or_else(|e| panic!("sign: {e}"))
}

fn token(scope: &str, roles: &[&str]) -> String {
    sign(
        serde_json::json!({"iss": "https://gw.test", "aud": "api", "sub": "alice",
        "exp": now() + 300, "iat": now(), "scope": scope, "roles": roles}),
    )
}

fn fragment() -> String {
    format!(
        "[tokens]\nissuer = \"https://gw.test\"\naudiences = [\"api\"]\n\
         [[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{FIX}/hs256.secret\"\n\
         [roles]\nadmin = [\"orders:write\"]\n\
         [[routes]]\npath = \"/orders/**\"\nscopes = [\"orders:read\"]\n\
         [[routes]]\npath = \"/admin/**\"\nscopes = [\"orders:write\"]\n\
         [[routes]]\npath = \"/health\"\nauth = \"none\"\n"
    )
}

/// Answers 200 with the caller's subject and effective scopes; panics if a request
/// without a principal reaches it on a protected path.
type Answer = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

fn app() -> impl tower::Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = Answer,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|req: Request<()>| {
        let who = req
            .extensions()
            .get::<Principal>()
            .map(|p| p.subject.clone());
        if who.is_none() && req.uri().path() != "/health" {
            panic!("an unauthenticated request reached the application");
        }
        let scopes = req.extensions().get::<Scopes>().map(|s| s.0.join(" "));
        let body = format!("{}|{}", who.unwrap_or_default(), scopes.unwrap_or_default());
        std::future::ready(Ok(Response::new(Full::new(Bytes::from(body)))))
    })
}

fn get(path: &str, token: Option<&str>) -> Request<()> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(()).unwrap_or_else(|e| panic!("{e}"))
}

async fn body<B: http_body::Body>(resp: Response<B>) -> String
where
    B::Error: std::fmt::Debug,
{
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn admitted_requests_carry_the_principal_and_effective_scopes() {
    let layer = AuthLayer::from_toml(&fragment()).expect("valid fragment");
    let resp = layer
        .layer(app())
        .oneshot(get("/admin/x", Some(&token("orders:read", &["admin"]))))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await, "alice|orders:read orders:write");
}

#[tokio::test]
async fn refusals_name_their_reason_and_never_reach_the_app() {
    let layer = AuthLayer::from_toml(&fragment()).expect("valid fragment");
    let expired = sign(serde_json::json!({"iss": "https://gw.test", "aud": "api",
        "sub": "alice", "exp": now() - 3600, "scope": "orders:read"}));
    let wrong_aud = sign(serde_json::json!({"iss": "https://gw.test", "aud": "other",
        "sub": "alice", "exp": now() + 300, "scope": "orders:read"}));
    let cases = [
        (get("/orders/1", None), 401, "unauthorized"),
        (get("/orders/1", Some("nope")), 401, "invalid_token"),
        (get("/orders/1", Some(&expired)), 401, "invalid_token"),
        (get("/orders/1", Some(&wrong_aud)), 401, "invalid_token"),
        (
            get("/orders/1", Some(&token("other", &[]))),
            403,
            "insufficient_scope",
        ),
        (
            get("/admin/1", Some(&token("orders:read", &[]))),
            403,
            "insufficient_scope",
        ),
        (
            get("/elsewhere", Some(&token("orders:read", &[]))),
            404,
            "not_found",
        ),
        (
            get("/orders/%2e%2e/admin", Some(&token("orders:read", &[]))),
            400,
            "invalid_request",
        ),
    ];
    for (req, status, code) in cases {
        let what = req.uri().to_string();
        let resp = layer.layer(app()).oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), status, "{what}");
        if status == 401 || status == 403 {
            assert!(resp.headers().contains_key("www-authenticate"), "{what}");
        }
        let b: serde_json::Value = serde_json::from_str(&body(resp).await).expect("json");
        assert_eq!(b["error"], code, "{what}");
    }
    let public = layer
        .layer(app())
        .oneshot(get("/health", None))
        .await
        .expect("ok");
    assert_eq!(public.status(), 200);
}

#[tokio::test]
async fn require_scopes_guards_one_route_and_fails_closed() {
    let layer = AuthLayer::builder()
        .issuer("https://gw.test")
        .audience("api")
        .hs256_key(
            "hs",
            &std::fs::read(format!("{FIX}/hs256.secret")).expect("fixture")[..64],
        )
        .build()
        .expect("valid");
    let svc = |s: &str| layer.layer(RequireScopes::all([s]).layer(app()));
    let ok = svc("orders:read")
        .oneshot(get("/x", Some(&token("orders:read", &[]))))
        .await
        .expect("ok");
    assert_eq!(ok.status(), 200);
    let no = svc("orders:write")
        .oneshot(get("/x", Some(&token("orders:read", &[]))))
        .await
        .expect("ok");
    assert_eq!(no.status(), 403);
    assert_eq!(
        no.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"orders:write\""
    );
    // Without an AuthLayer in front there is no principal: refused, not admitted.
    let alone = RequireScopes::all(["orders:read"])
        .layer(app())
        .oneshot(get("/x", Some(&token("orders:read", &[]))))
        .await
        .expect("ok");
    assert_eq!(alone.status(), 401);
}

#[test]
fn bad_policies_list_every_problem_with_key_and_fix() {
    let err = AuthLayer::from_toml(
        "[tokens]\nissuer = \"\"\n[[routes]]\npath = \"orders\"\nauth = \"sometimes\"\n",
    )
    .expect_err("refused");
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tokens.issuer",
            "tokens.audiences",
            "tokens.keys",
            "routes[0].auth",
            "routes[0].path"
        ]
    );
    assert!(err.issues.iter().all(|i| !i.fix.is_empty()));
    // `aud` is required unless opted out explicitly.
    let opted_out = format!(
        "[tokens]\nissuer = \"https://gw.test\"\nverify_audience = false\n\
         [[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{FIX}/hs256.secret\"\n"
    );
    assert!(AuthLayer::from_toml(&opted_out).is_ok());
    // Gateway-only keys are refused, not ignored.
    let e = AuthLayer::from_toml("[[routes]]\npath = \"/x\"\nupstream = \"echo\"\n")
        .expect_err("refused");
    assert!(e.issues[0].problem.contains("upstream"), "{e}");
}

#[test]
fn issuers_from_toml_need_audiences_a_source_and_a_runtime() {
    let e = AuthLayer::from_toml(
        "[[issuers]]\nissuer = \"https://idp.test/\"\njwks_url = \"https://idp.test/jwks\"\n\
         algorithms = [\"HS256\"]\n\n[[issuers]]\nissuer = \"https://b.test/\"\n\
         audiences = [\"api\"]\n",
    )
    .expect_err("refused");
    let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "issuers[1].jwks_url",
            "issuers[0].audiences",
            "issuers[0].algorithms",
            "issuers"
        ],
        "{e}"
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_is_400_naming_the_problem() {
    let layer = AuthLayer::from_toml(&fragment()).expect("valid fragment");
    let good = token("orders:read", &[]);
    let cases = [
        (vec![good.clone()], Malformed::NoScheme),
        (
            vec!["Basic YWxpY2U6c2VjcmV0".into()],
            Malformed::OtherScheme,
        ),
        (vec!["Bearer".into()], Malformed::EmptyToken),
        (vec![format!("Bearer  {good}")], Malformed::ExtraSpace),
        (vec![format!("Bearer {good} x")], Malformed::ExtraParts),
        (
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
            Malformed::Duplicate,
        ),
    ];
    for (values, problem) in cases {
        let mut b = Request::get("/orders/1");
        for v in &values {
            b = b.header("authorization", v);
        }
        let req = b.body(()).unwrap_or_else(|e| panic!("{e}"));
        let resp = layer.layer(app()).oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), 400, "{problem:?}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            format!(
                "Bearer realm=\"api\", error=\"invalid_request\", error_description=\"{}\"",
                problem.description()
            )
            .as_str(),
            "{problem:?}"
        );
        let b: serde_json::Value = serde_json::from_str(&body(resp).await).expect("json");
        assert_eq!(b["error"], "invalid_request", "{problem:?}");
        assert_eq!(b["error_description"], problem.description(), "{problem:?}");
    }
    // A public path does not read the header.
    let mut req = get("/health", None);
    req.headers_mut().insert(
        "authorization",
        "Basic YWxpY2U6c2VjcmV0".parse().expect("value"),
    );
    let resp = layer.layer(app()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200);
}
