//! Helpers for the layers' unit tests: a snapshot from a `gateway.toml` fragment and
//! requests carrying the entry's [`Ctx`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http::Request;

use super::facts::Ctx;
use crate::stack::Peer;
use crate::state::Snapshot;

/// An echo upstream `echo` and one public route `/public/**` on it come first, so a
/// fragment adds only what its test is about.
pub fn snapshot(fragment: &str) -> Arc<Snapshot> {
    Arc::new(Snapshot::detached(snapshot_config(fragment)))
}

/// The configuration [`snapshot`] is made of.
pub fn snapshot_config(fragment: &str) -> crate::config::Config {
    let text = format!(
        "{fragment}\n[[upstreams]]\nname = \"echo\"\necho = true\n\n\
         [[routes]]\nname = \"public\"\npath = \"/public/**\"\nupstream = \"echo\"\nauth = \"none\"\n"
    );
    crate::config::parse_str(&text, Path::new("layer-test.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}"))
}

/// A request for `uri` from 192.0.2.7, with its context.
pub fn request_with_ctx(snap: &Arc<Snapshot>, uri: &str) -> Request<()> {
    let mut req = Request::builder()
        .uri(uri)
        .header("host", "gw.test")
        .body(())
        .unwrap_or_else(|e| panic!("test request: {e}"));
    let addr: SocketAddr = ([192, 0, 2, 7], 40000).into();
    req.extensions_mut().insert(Ctx {
        snap: snap.clone(),
        peer: Arc::new(Peer::new(addr)),
        worker: 0,
        client_ip: addr.ip(),
        facts: true,
        trace: None,
    });
    req
}

/// `[tokens]` verifying HS256 tokens of `https://gw.test` for audience `api`.
pub fn hs256_tokens() -> String {
    format!(
        "[tokens]\nissuer = \"https://gw.test\"\naudiences = [\"api\"]\n[[tokens.keys]]\n\
         kid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{}/tests/fixtures/hs256.secret\"\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A token for [`hs256_tokens`]: subject alice with these scopes.
pub fn hs256_token(scope: &str) -> String {
    let secret = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hs256.secret"
    ))
    .unwrap_or_else(|e| panic!("fixture: {e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({"iss": "https://gw.test", "aud": "api", "sub": "alice",
        "exp": now + 300, "iat": now, "scope": scope});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap_or_else(|e| panic!("sign: {e}"))
}

/// The index of a route by name.
pub fn route(snap: &Snapshot, name: &str) -> usize {
    snap.config
        .router
        .routes()
        .iter()
        .position(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name}"))
}

/// A terminal service that answers `200` and reports what reached it: the request's
/// headers, as `x-seen-<name>` response headers, and its [`Admitted`] caller.
pub fn recorder() -> impl tower::Service<
    Request<()>,
    Response = http::Response<crate::body::Body>,
    Error = super::facts::Rejection,
    Future = std::future::Ready<super::facts::Outcome>,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|req: Request<()>| {
        let mut resp = http::Response::new(crate::body::Body::Empty);
        for (k, v) in req.headers() {
            if let Ok(name) = http::HeaderName::from_bytes(format!("x-seen-{k}").as_bytes()) {
                resp.headers_mut().append(name, v.clone());
            }
        }
        if let Some(a) = req.extensions().get::<super::facts::Admitted>() {
            resp.extensions_mut().insert(a.clone());
        }
        std::future::ready(Ok(resp))
    })
}

/// A request for `uri` with its context and target route.
pub fn routed(snap: &Arc<Snapshot>, uri: &str, route_name: &str) -> Request<()> {
    let mut req = request_with_ctx(snap, uri);
    req.extensions_mut()
        .insert(super::facts::Target::Route(route(snap, route_name)));
    req.extensions_mut()
        .insert(super::facts::Canonical(Arc::from(uri)));
    req
}
