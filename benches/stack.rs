//! The whole stack in-process (the performance gate of issue 10): `oneshot` through the
//! echo upstream, on a public route and on an HS256 route with a scope (the token is
//! verified once, then served from the verified-token cache, as on a keep-alive
//! client). No sockets: what is measured is the pipeline — every layer, the echo
//! upstream's answer and reading its body.
//!
//!   cargo bench --bench stack

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::BodyExt as _;
use portcullis::body::RequestBody;
use portcullis::stack::{self, Peer};
use portcullis::state::Shared;
use tower::ServiceExt as _;

fn config() -> portcullis::config::Config {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let text = format!(
        "[tokens]\nissuer = \"https://gw.test\"\naudiences = [\"api\"]\n\
         [[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{fixtures}/hs256.secret\"\n\n\
         [[upstreams]]\nname = \"echo\"\necho = true\n\n\
         [[routes]]\nname = \"public\"\npath = \"/public/**\"\nupstream = \"echo\"\nauth = \"none\"\n\n\
         [[routes]]\nname = \"orders\"\npath = \"/orders/**\"\nupstream = \"echo\"\nscopes = [\"orders:read\"]\n"
    );
    portcullis::config::parse_str(&text, Path::new("bench.toml")).expect("bench config")
}

fn token() -> String {
    let secret = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hs256.secret"
    ))
    .expect("secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({"iss": "https://gw.test", "aud": "api", "sub": "alice",
        "exp": now + 3600, "iat": now, "scope": "orders:read"});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .expect("token")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shared = rt.block_on(async { Shared::detached(config()) });
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let svc = stack::build(shared, Arc::new(Peer::new(peer)), 0);
    let bearer = format!("Bearer {}", token());
    let mut group = c.benchmark_group("stack");
    for (name, uri, auth) in [
        ("public", "/public/hello", None),
        ("hs256_scope", "/orders/42", Some(bearer.as_str())),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut req = Request::builder()
                    .uri(uri)
                    .header("host", "gw.test")
                    .header("user-agent", "bench/1")
                    .header("accept", "*/*");
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                let req = req.body(RequestBody::empty()).expect("request");
                let svc = svc.clone();
                async move {
                    let resp = svc.oneshot(req).await.expect("infallible");
                    assert_eq!(resp.status(), 200);
                    resp.into_body().collect().await.expect("body");
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
