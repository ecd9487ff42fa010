//! The token service end to end over loopback: every grant, every RFC 6749 error,
//! refresh rotation and reuse detection, revocation, disabled users, the bcrypt →
//! argon2id upgrade, the login rate limit, registration, JWKS and metadata, and the
//! timing of unknown users. SQLite here; `token_postgres.rs` runs the core flow on a
//! real PostgreSQL.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use portcullis::token::password::{Argon2Params, Hasher};
use portcullis::token::store::Store;
use serde_json::Value;

use crate::support::*;

/// The token service on SQLite with the default [`config`], no upstream; the
/// directory holds the store and lives as long as the returned handle.
pub async fn default_gateway() -> (tempfile::TempDir, portcullis::Gateway) {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(
        &config(&sqlite(dir.path()), "", ""),
        Some(closed_port().await),
    )
    .await;
    (dir, gw)
}

/// FastAPI's tutorial hash of "secret" (passlib bcrypt).
pub const JOHNDOE_BCRYPT: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
pub const SVC_SECRET: &str = "s3cret-of-the-reporting-service";
pub const WEB_SECRET: &str = "s3cret-of-the-web-app";

pub fn cheap_hasher() -> Hasher {
    Hasher::new(Argon2Params {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    })
}

/// A gateway config with the token service on: `store` is a URL, `extra` is appended
/// (and may override nothing: TOML refuses duplicate keys, so tests vary `tokens_extra`).
pub fn config(store: &str, tokens_extra: &str, extra: &str) -> String {
    let alice = cheap_hasher().hash("wonderland").expect("hash");
    let svc = portcullis::auth::api_key::hash(SVC_SECRET);
    let web = portcullis::auth::api_key::hash(WEB_SECRET);
    format!(
        r#"
[tokens]
issuer = "http://issuer.test"
audiences = ["api"]
signing_key = "es"
default_client = "cli"
{tokens_extra}

[[tokens.keys]]
kid = "es"
alg = "ES256"
private_key = "{FIX}/es256.key"

[users]
store = "{store}"
argon2_memory = "8MiB"
argon2_iterations = 1
argon2_parallelism = 1

[[users.seed]]
username = "johndoe"
password_hash = "{JOHNDOE_BCRYPT}"
roles = ["user"]

[[users.seed]]
username = "alice"
password_hash = "{alice}"
roles = ["admin"]

[[clients]]
client_id = "cli"
grants = ["password", "refresh_token"]

[[clients]]
client_id = "web"
secret_sha256 = "{web}"
grants = ["password", "refresh_token"]

[[clients]]
client_id = "svc"
secret_sha256 = "{svc}"
grants = ["client_credentials"]
scopes = ["items:read", "reports:read"]

[roles]
admin = ["items:read", "items:write"]
user = ["items:read"]

[[upstreams]]
name = "up"
url = "http://{{UP}}"

[[routes]]
path = "/items/{{id}}"
methods = ["GET"]
upstream = "up"
scopes = ["items:read"]

[[routes]]
path = "/items/**"
methods = ["POST"]
upstream = "up"
scopes = ["items:write"]

[[routes]]
path = "/reports/**"
upstream = "up"
scopes = ["reports:read"]
{extra}
"#
    )
}

pub fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}/users.db", dir.display())
}

/// `POST path` with a form body and extra header lines.
pub async fn post(addr: std::net::SocketAddr, path: &str, body: &str, headers: &[&str]) -> Raw {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("content-type"))
    {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    raw(addr, &req).await
}

/// Asserts an RFC 6749 §5.2 error: status, code, no-store, and the request id of the
/// `x-request-id` header in the body, like every other error body.
pub fn assert_oauth_error(r: &Raw, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"], code, "body: {}", r.body);
    assert!(v["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let rid = r
        .header("x-request-id")
        .expect("x-request-id on every answer");
    assert_eq!(v["request_id"], rid, "body: {}", r.body);
}

/// An error body without its `request_id` (which differs between any two requests).
fn without_request_id(r: &Raw) -> Value {
    let mut v = r.json();
    if let Some(o) = v.as_object_mut() {
        assert!(
            o.remove("request_id").is_some(),
            "no request_id: {}",
            r.body
        );
    }
    v
}

pub fn basic(id: &str, secret: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    format!(
        "Authorization: Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// The password grant for `user`, asserting success; returns the token response.
pub async fn login(addr: std::net::SocketAddr, user: &str, password: &str, extra: &str) -> Value {
    let r = post(
        addr,
        "/token",
        &format!("grant_type=password&username={user}&password={password}{extra}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.json()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// Verifies `token` against the gateway's published JWKS.
pub async fn verify_with_jwks(addr: std::net::SocketAddr, token: &str) -> Value {
    let jwks = get(addr, "/.well-known/jwks.json", &[]).await;
    assert_eq!(jwks.status, 200);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks.body).expect("jwk set");
    let header = decode_header(token).expect("header");
    let kid = header.kid.expect("kid");
    let jwk = set.find(&kid).expect("kid published");
    let key = DecodingKey::from_jwk(jwk).expect("key");
    let mut v = Validation::new(header.alg);
    v.set_audience(&["api"]);
    v.set_issuer(&["http://issuer.test"]);
    decode::<Value>(token, &key, &v)
        .expect("signature verifies")
        .claims
}

#[tokio::test]
async fn password_grant_issues_an_rfc_9068_token_that_opens_what_its_scopes_allow() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(&config(&sqlite(dir.path()), "", ""), Some(up.addr)).await;

    let body = login(gw.addr, "johndoe", "secret", "").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "items:read");
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|r| r.len() >= 43));
    let token = body["access_token"].as_str().expect("token");

    let header = decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some("es"));
    assert_eq!(header.alg, Algorithm::ES256);
    let c = verify_with_jwks(gw.addr, token).await;
    assert_eq!(c, claims_of(token));
    assert_eq!(c["iss"], "http://issuer.test");
    assert_eq!(c["sub"], "johndoe");
    assert_eq!(c["aud"], "api");
    assert_eq!(c["client_id"], "cli");
    assert_eq!(c["scope"], "items:read");
    assert_eq!(c["roles"], serde_json::json!(["user"]));
    let (iat, exp) = (
        c["iat"].as_i64().expect("iat"),
        c["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 900);
    assert_eq!(c["nbf"], c["iat"]);
    assert!((iat - now()).abs() < 30);
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_ne!(
        c["jti"],
        claims_of(
            login(gw.addr, "johndoe", "secret", "").await["access_token"]
                .as_str()
                .expect("t")
        )["jti"]
    );

    // The token opens the route its scope allows; the upstream sees the identity and
    // none of the client's forged headers.
    let r = get(
        gw.addr,
        "/items/7",
        &[
            &bearer(token),
            "X-Auth-Subject: root",
            "X-Auth-Scopes: items:write",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.last();
    assert_eq!(seen.headers["x-auth-subject"], "johndoe");
    assert_eq!(seen.headers["x-auth-scopes"], "items:read");
    assert_eq!(seen.headers["x-auth-client-id"], "cli");
    assert_eq!(seen.headers.get_all("x-auth-subject").iter().count(), 1);
    assert!(seen.headers.get("authorization").is_none());
    // …and not the routes it does not.
    let r = raw(gw.addr, &format!("POST /items/7 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 0\r\n{}\r\n\r\n", bearer(token))).await;
    assert_error(&r, 403, "insufficient_scope");
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.contains("scope=\"items:write\"")));

    // alice (admin) gets both scopes; asking for one narrows the token to it, and the
    // admin role is not expanded back (RFC 9068 tokens carry their grant in `scope`).
    let all = login(gw.addr, "alice", "wonderland", "").await;
    assert_eq!(all["scope"], "items:read items:write");
    let narrow = login(gw.addr, "alice", "wonderland", "&scope=items:read").await;
    assert_eq!(narrow["scope"], "items:read");
    let t = narrow["access_token"].as_str().expect("t");
    let r = raw(gw.addr, &format!("POST /items/7 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 0\r\n{}\r\n\r\n", bearer(t))).await;
    assert_error(&r, 403, "insufficient_scope");
    let t = all["access_token"].as_str().expect("t");
    let r = raw(gw.addr, &format!("POST /items/7 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 0\r\n{}\r\n\r\n", bearer(t))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Asking for more than the roles allow narrows silently (the default policy).
    let more = login(
        gw.addr,
        "johndoe",
        "secret",
        "&scope=items:read%20items:write",
    )
    .await;
    assert_eq!(more["scope"], "items:read");
}

#[tokio::test]
async fn every_token_error_answers_per_rfc_6749() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(
        &config(&sqlite(dir.path()), "login_rate = \"1000/1s\"", ""),
        Some(closed_port().await),
    )
    .await;
    let a = gw.addr;
    let good = "grant_type=password&username=alice&password=wonderland";
    // (case, body, extra headers, status, error)
    let cases: Vec<(&str, String, Vec<String>, u16, &str)> = vec![
        (
            "json body",
            r#"{"grant_type":"password"}"#.into(),
            vec!["Content-Type: application/json".into()],
            400,
            "invalid_request",
        ),
        (
            "no content type",
            good.into(),
            vec!["Content-Type: text/plain".into()],
            400,
            "invalid_request",
        ),
        (
            "no grant_type, no password",
            "username=alice".into(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "empty grant_type",
            "grant_type=&username=alice".into(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "repeated parameter",
            format!("{good}&username=bob"),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "unknown grant",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x"
                .into(),
            vec![],
            400,
            "unsupported_grant_type",
        ),
        (
            "implicit grant",
            "grant_type=token".into(),
            vec![],
            400,
            "unsupported_grant_type",
        ),
        (
            "no username",
            "grant_type=password&password=x".into(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "no password",
            "grant_type=password&username=alice".into(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "wrong password",
            "grant_type=password&username=alice&password=wonderlan".into(),
            vec![],
            400,
            "invalid_grant",
        ),
        (
            "unknown user",
            "grant_type=password&username=mallory&password=wonderland".into(),
            vec![],
            400,
            "invalid_grant",
        ),
        (
            "password case matters",
            "grant_type=password&username=alice&password=Wonderland".into(),
            vec![],
            400,
            "invalid_grant",
        ),
        (
            "huge password",
            format!(
                "grant_type=password&username=alice&password={}",
                "x".repeat(5000)
            ),
            vec![],
            400,
            "invalid_grant",
        ),
        (
            "scope nobody has",
            format!("{good}&scope=admin:all"),
            vec![],
            400,
            "invalid_scope",
        ),
        (
            "bad scope syntax",
            format!("{good}&scope=a%22b"),
            vec![],
            400,
            "invalid_scope",
        ),
        (
            "unknown client",
            format!("{good}&client_id=nobody"),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "public client with a secret",
            format!("{good}&client_id=cli&client_secret=x"),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "confidential client without secret",
            format!("{good}&client_id=web"),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "wrong secret (post)",
            format!("{good}&client_id=web&client_secret=nope"),
            vec![],
            401,
            "invalid_client",
        ),
        (
            "secret without id",
            format!("{good}&client_secret={WEB_SECRET}"),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "two auth methods",
            format!("{good}&client_secret={WEB_SECRET}"),
            vec![basic("web", WEB_SECRET)],
            400,
            "invalid_request",
        ),
        (
            "bearer is not client auth",
            good.into(),
            vec!["Authorization: Bearer abc".into()],
            401,
            "invalid_client",
        ),
        (
            "client_credentials by a public client",
            "grant_type=client_credentials".into(),
            vec![],
            400,
            "unauthorized_client",
        ),
        (
            "password grant by a service client",
            good.into(),
            vec![basic("svc", SVC_SECRET)],
            400,
            "unauthorized_client",
        ),
        (
            "refresh without token",
            "grant_type=refresh_token".into(),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "refresh with garbage",
            "grant_type=refresh_token&refresh_token=abc".into(),
            vec![],
            400,
            "invalid_grant",
        ),
    ];
    for (case, body, headers, status, code) in &cases {
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = post(a, "/token", body, &h).await;
        assert_eq!(r.status, *status, "{case}: {}", r.body);
        assert_oauth_error(&r, *status, code);
        assert!(
            !r.body.contains("wonderland") && !r.body.contains("s3cret"),
            "{case}: echoes a secret"
        );
    }
    let wrong = post(
        a,
        "/token",
        "grant_type=password&username=alice&password=nope",
        &[],
    )
    .await;
    let unknown = post(
        a,
        "/token",
        "grant_type=password&username=nobody-here&password=nope",
        &[],
    )
    .await;
    assert_eq!(
        without_request_id(&wrong),
        without_request_id(&unknown),
        "unknown user and wrong password look alike"
    );
    assert_eq!(
        wrong.body.len(),
        unknown.body.len(),
        "to the byte count: request ids have one length"
    );

    // Basic with a wrong secret: 401 with a Basic challenge (§5.2).
    let r = post(a, "/token", good, &[&basic("web", "wrong")]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Basic")));
    // Malformed Basic.
    let r = post(a, "/token", good, &["Authorization: Basic !!!"]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Other methods: 405 with Allow.
    let r = get(a, "/token", &[]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    // An oversized body.
    let r = post(
        a,
        "/token",
        &format!("{good}&pad={}", "x".repeat(20_000)),
        &[],
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);

    // The confidential client, both ways, gets a token for the same user.
    for h in [vec![basic("web", WEB_SECRET)], vec![]] {
        let body = if h.is_empty() {
            format!("{good}&client_id=web&client_secret={WEB_SECRET}")
        } else {
            good.to_string()
        };
        let hr: Vec<&str> = h.iter().map(String::as_str).collect();
        let r = post(a, "/token", &body, &hr).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            claims_of(r.json()["access_token"].as_str().expect("t"))["client_id"],
            "web"
        );
    }
}

/// Issue 11 item 8: `/token` and `/revoke` errors carry `request_id` like every other
/// error body (RFC 6749 §5.2 allows members beyond `error` and `error_description`),
/// equal to the `x-request-id` header: the client's own id when it sent a sane one.
#[tokio::test]
async fn token_and_revoke_errors_carry_the_request_id() {
    let (_dir, gw) = default_gateway().await;
    let a = gw.addr;
    /// One refusal: what, where, the form, extra headers, the answer.
    struct Case<'a> {
        what: &'a str,
        path: &'a str,
        body: &'a str,
        headers: Vec<String>,
        status: u16,
        code: &'a str,
    }
    let case = |what, path, body, headers, status, code| Case {
        what,
        path,
        body,
        headers,
        status,
        code,
    };
    let cases = [
        case(
            "a bad grant",
            "/token",
            "grant_type=refresh_token&refresh_token=not-a-token",
            vec![],
            400,
            "invalid_grant",
        ),
        case(
            "an unsupported grant",
            "/token",
            "grant_type=magic",
            vec![],
            400,
            "unsupported_grant_type",
        ),
        case(
            "a bad client",
            "/token",
            "grant_type=password&username=johndoe&password=secret",
            vec![basic("web", "wrong")],
            401,
            "invalid_client",
        ),
        case(
            "a revoke with a bad client",
            "/revoke",
            "token=whatever",
            vec![basic("web", "wrong")],
            401,
            "invalid_client",
        ),
        case(
            "a revoke without a token",
            "/revoke",
            "",
            vec![],
            400,
            "invalid_request",
        ),
    ];
    for c in &cases {
        let mut h: Vec<&str> = c.headers.iter().map(String::as_str).collect();
        let r = post(a, c.path, c.body, &h).await;
        assert_oauth_error(&r, c.status, c.code);
        let v = r.json();
        let members: Vec<&String> = v.as_object().expect("an object").keys().collect();
        assert_eq!(
            members,
            ["error", "error_description", "request_id"],
            "{}: {}",
            c.what,
            r.body
        );
        // The client's own id is kept and named in the body.
        h.push("X-Request-Id: client-chosen-id-42");
        let r = post(a, c.path, c.body, &h).await;
        assert_oauth_error(&r, c.status, c.code);
        assert_eq!(r.json()["request_id"], "client-chosen-id-42", "{}", c.what);
    }
}

#[tokio::test]
async fn without_a_default_client_the_client_must_identify_itself() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = config(&sqlite(dir.path()), "", "").replace("default_client = \"cli\"\n", "");
    let gw = gateway(&text, Some(closed_port().await)).await;
    let r = post(
        gw.addr,
        "/token",
        "grant_type=password&username=alice&password=wonderland",
        &[],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = post(
        gw.addr,
        "/token",
        "grant_type=password&username=alice&password=wonderland&client_id=cli",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn grant_type_is_optional_for_username_and_password_unless_required() {
    let (_dir, gw) = default_gateway().await;
    // FastAPI's OAuth2PasswordRequestForm clients may leave grant_type out.
    let r = post(gw.addr, "/token", "username=alice&password=wonderland", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = tempfile::tempdir().expect("tmp");
    let strict = gateway(
        &config(&sqlite(dir.path()), "require_grant_type = true", ""),
        Some(closed_port().await),
    )
    .await;
    let r = post(
        strict.addr,
        "/token",
        "username=alice&password=wonderland",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn reject_policy_refuses_scopes_beyond_the_roles() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(
        &config(&sqlite(dir.path()), "scope_policy = \"reject\"", ""),
        Some(closed_port().await),
    )
    .await;
    let r = post(
        gw.addr,
        "/token",
        "grant_type=password&username=johndoe&password=secret&scope=items:read%20items:write",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_scope");
    let ok = login(gw.addr, "johndoe", "secret", "&scope=items:read").await;
    assert_eq!(ok["scope"], "items:read");
}

async fn refresh(addr: std::net::SocketAddr, token: &str, extra: &str, headers: &[&str]) -> Raw {
    post(
        addr,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={token}{extra}"),
        headers,
    )
    .await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let (dir, gw) = default_gateway().await;
    let a = gw.addr;
    let first = login(a, "alice", "wonderland", "").await;
    let r1 = first["refresh_token"].as_str().expect("rt").to_string();

    // A narrower scope may be asked for; a wider one may not (and costs nothing).
    let r = refresh(a, &r1, "&scope=items:admin", &[]).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    // Another client cannot use it (and does not consume it).
    let r = refresh(
        a,
        &r1,
        &format!("&client_id=web&client_secret={WEB_SECRET}"),
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");

    let second = refresh(a, &r1, "&scope=items:read", &[]).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    assert_eq!(second["scope"], "items:read");
    assert_eq!(
        claims_of(second["access_token"].as_str().expect("t"))["scope"],
        "items:read"
    );
    let r2 = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_string();
    assert_ne!(r1, r2, "rotated on every use");

    // The successor keeps the original grant: no scope asked → both scopes again.
    let third = refresh(a, &r2, "", &[]).await;
    assert_eq!(third.status, 200, "{}", third.body);
    assert_eq!(third.json()["scope"], "items:read items:write");
    let r3 = third.json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();

    // Reuse of an already-rotated token: refused, and the whole family dies with it,
    // including the newest member the legitimate client holds.
    let reuse = refresh(a, &r1, "", &[]).await;
    assert_oauth_error(&reuse, 400, "invalid_grant");
    let r = refresh(a, &r3, "", &[]).await;
    assert_oauth_error(&r, 400, "invalid_grant");

    // Another login is a new family, unaffected.
    let other = login(a, "alice", "wonderland", "").await;
    let r = refresh(a, other["refresh_token"].as_str().expect("rt"), "", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Only digests are stored.
    let db = std::fs::read(dir.path().join("users.db")).expect("db file");
    let db = String::from_utf8_lossy(&db);
    assert!(
        !db.contains(&r1) && !db.contains(&r3),
        "a refresh token is stored in clear"
    );
    assert!(!db.contains("wonderland"));
}

#[tokio::test]
async fn client_credentials_for_confidential_clients() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(&config(&sqlite(dir.path()), "", ""), Some(up.addr)).await;
    let a = gw.addr;
    let r = post(
        a,
        "/token",
        "grant_type=client_credentials&scope=reports:read",
        &[&basic("svc", SVC_SECRET)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["scope"], "reports:read");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for client_credentials"
    );
    let token = body["access_token"].as_str().expect("t");
    let c = verify_with_jwks(a, token).await;
    assert_eq!(c["sub"], "svc");
    assert_eq!(c["client_id"], "svc");
    let r = get(a, "/reports/daily", &[&bearer(token)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.last().headers["x-auth-subject"], "svc");
    // No scope asked: everything the client may have.
    let r = post(
        a,
        "/token",
        &format!("grant_type=client_credentials&client_id=svc&client_secret={SVC_SECRET}"),
        &[],
    )
    .await;
    assert_eq!(r.json()["scope"], "items:read reports:read");
    // Beyond its scopes: narrowed, or refused when nothing is left.
    let r = post(
        a,
        "/token",
        "grant_type=client_credentials&scope=items:write",
        &[&basic("svc", SVC_SECRET)],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_scope");
    let r = post(
        a,
        "/token",
        "grant_type=client_credentials",
        &[&basic("svc", "guess")],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
}

#[tokio::test]
async fn revocation_of_refresh_and_access_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(&config(&sqlite(dir.path()), "", ""), Some(up.addr)).await;
    let a = gw.addr;
    let body = login(a, "johndoe", "secret", "").await;
    let (access, rt) = (
        body["access_token"].as_str().expect("t"),
        body["refresh_token"].as_str().expect("r"),
    );

    // Works, and is now in the verified-token cache.
    assert_eq!(get(a, "/items/1", &[&bearer(access)]).await.status, 200);
    // Unknown tokens, and another client's, are answered 200 without effect (RFC 7009).
    let r = post(a, "/revoke", "token=not-a-token", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        a,
        "/revoke",
        &format!("token={access}"),
        &[&basic("web", WEB_SECRET)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(a, "/items/1", &[&bearer(access)]).await.status,
        200,
        "another client cannot revoke it"
    );
    let r = post(
        a,
        "/revoke",
        &format!("token={rt}"),
        &[&basic("web", WEB_SECRET)],
    )
    .await;
    assert_eq!(r.status, 200);
    // A failed client authentication is an error.
    let r = post(
        a,
        "/revoke",
        &format!("token={access}"),
        &[&basic("web", "wrong")],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = post(a, "/revoke", "", &[]).await;
    assert_oauth_error(&r, 400, "invalid_request");

    // The access token, by jti: refused at once although it is cached.
    let r = post(
        a,
        "/revoke",
        &format!("token={access}&token_type_hint=access_token"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(a, "/items/1", &[&bearer(access)]).await;
    assert_error(&r, 401, "invalid_token");
    // Other tokens of the same user still work.
    let fresh = login(a, "johndoe", "secret", "").await;
    assert_eq!(
        get(
            a,
            "/items/1",
            &[&bearer(fresh["access_token"].as_str().expect("t"))]
        )
        .await
        .status,
        200
    );

    // The refresh token (no hint): its family can no longer refresh.
    let r = post(a, "/revoke", &format!("token={rt}"), &[]).await;
    assert_eq!(r.status, 200);
    let r = refresh(a, rt, "", &[]).await;
    assert_oauth_error(&r, 400, "invalid_grant");

    // The deny-list is in the store: a second gateway on the same store refuses the
    // revoked access token too.
    let gw2 = gateway(&config(&sqlite(dir.path()), "", ""), Some(up.addr)).await;
    let r = get(gw2.addr, "/items/1", &[&bearer(access)]).await;
    assert_error(&r, 401, "invalid_token");
}

#[tokio::test]
async fn disabled_users_and_the_bcrypt_upgrade() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = sqlite(dir.path());
    let gw = gateway(&config(&url, "", ""), Some(closed_port().await)).await;
    let a = gw.addr;
    let store = Store::open(&url).await.expect("store");
    let before = store
        .find_user("johndoe")
        .await
        .expect("q")
        .expect("seeded");
    assert_eq!(before.password_hash, JOHNDOE_BCRYPT);
    let body = login(a, "johndoe", "secret", "").await;
    let after = store.find_user("johndoe").await.expect("q").expect("user");
    assert!(
        after
            .password_hash
            .starts_with("$argon2id$v=19$m=8192,t=1,p=1$"),
        "{}",
        after.password_hash
    );
    // The upgraded hash keeps working; the bcrypt one is gone.
    login(a, "johndoe", "secret", "").await;
    let r = post(
        a,
        "/token",
        "grant_type=password&username=johndoe&password=secre",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");

    // Disabled: no login (same answer as a wrong password), no refresh.
    assert!(store.set_disabled("johndoe", true).await.expect("q"));
    let r = post(
        a,
        "/token",
        "grant_type=password&username=johndoe&password=secret",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let wrong = post(
        a,
        "/token",
        "grant_type=password&username=alice&password=nope",
        &[],
    )
    .await;
    assert_eq!(
        r.json()["error_description"],
        wrong.json()["error_description"]
    );
    let r = refresh(a, body["refresh_token"].as_str().expect("rt"), "", &[]).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert!(store.set_disabled("johndoe", false).await.expect("q"));
    login(a, "johndoe", "secret", "").await;
}

#[tokio::test]
async fn login_attempts_are_limited_per_ip_and_username() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(
        &config(&sqlite(dir.path()), "login_rate = \"5/5s\"", ""),
        Some(closed_port().await),
    )
    .await;
    let a = gw.addr;
    for i in 0..5 {
        let r = post(
            a,
            "/token",
            "grant_type=password&username=alice&password=guess",
            &[],
        )
        .await;
        assert_oauth_error(&r, 400, "invalid_grant");
        let _ = i;
    }
    let r = post(
        a,
        "/token",
        "grant_type=password&username=alice&password=wonderland",
        &[],
    )
    .await;
    assert_oauth_error(&r, 429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=5).contains(&retry), "{retry}");
    // Another username from the same IP has its own budget.
    login(a, "johndoe", "secret", "").await;
    // After Retry-After, alice may try again.
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    login(a, "alice", "wonderland", "").await;
}

#[tokio::test]
async fn registration_gives_default_roles_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let off = gateway(
        &config(&sqlite(dir.path()), "", ""),
        Some(closed_port().await),
    )
    .await;
    // Off by default: the path is not an endpoint (no route either → 404).
    let r = post(
        off.addr,
        "/register",
        "username=eve&password=long-enough-pw",
        &[],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);

    let dir = tempfile::tempdir().expect("tmp");
    let on =
        "[registration]\nenabled = true\ndefault_roles = [\"user\"]\nmin_password_length = 12\n";
    let gw = gateway(
        &config(&sqlite(dir.path()), "", on),
        Some(closed_port().await),
    )
    .await;
    let a = gw.addr;
    for (body, status) in [
        ("username=eve&password=short", 400),
        ("username=e&password=long-enough-pw", 400),
        ("username=eve&password=long-enough-pw&roles=admin", 400),
        (
            "username=eve&password=long-enough-pw&scope=items:write",
            400,
        ),
        ("username=alice&password=long-enough-pw", 409),
    ] {
        let r = post(a, "/register", body, &[]).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    let r = post(a, "/register", "username=eve&password=long-enough-pw", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["roles"], serde_json::json!(["user"]));
    let r = post(a, "/register", "username=eve&password=another-long-pw", &[]).await;
    assert_eq!(r.status, 409);
    let body = login(
        a,
        "eve",
        "long-enough-pw",
        "&scope=items:read%20items:write",
    )
    .await;
    assert_eq!(body["scope"], "items:read");
}

#[tokio::test]
async fn jwks_and_metadata_publish_public_keys_only() {
    let dir = tempfile::tempdir().expect("tmp");
    std::env::set_var(
        "PORTCULLIS_TEST_HS_SECRET",
        "0123456789abcdef0123456789abcdef-hs",
    );
    let extra_keys = format!(
        "\n[[tokens.keys]]\nkid = \"ed\"\nalg = \"EdDSA\"\nprivate_key = \"{FIX}/ed25519.key\"\n[[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_env = \"PORTCULLIS_TEST_HS_SECRET\"\n[[tokens.keys]]\nkid = \"rs\"\nalg = \"RS256\"\nprivate_key = \"{FIX}/rs256.key\"\n"
    );
    let text = config(&sqlite(dir.path()), "", "").replacen(
        "[users]",
        &format!("{extra_keys}\n[users]"),
        1,
    );
    let gw = gateway(&text, Some(closed_port().await)).await;
    let r = get(gw.addr, "/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("cache-control")
        .is_some_and(|c| c.contains("max-age")));
    let jwks = r.json();
    let keys = jwks["keys"].as_array().expect("keys");
    let kids: Vec<&str> = keys
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(
        kids,
        ["es", "ed", "rs"],
        "every asymmetric key, no HMAC secret"
    );
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "private member {private} in {k}");
        }
        assert_eq!(k["use"], "sig");
    }
    assert!(!r.body.contains("0123456789abcdef"));

    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = get(gw.addr, path, &[]).await.json();
        assert_eq!(m["issuer"], "http://issuer.test");
        assert_eq!(m["token_endpoint"], "http://issuer.test/token");
        assert_eq!(m["revocation_endpoint"], "http://issuer.test/revoke");
        assert_eq!(m["jwks_uri"], "http://issuer.test/.well-known/jwks.json");
        let grants = m["grant_types_supported"].as_array().expect("grants");
        for g in ["password", "refresh_token", "client_credentials"] {
            assert!(grants.iter().any(|x| x == g), "{g}");
        }
        assert!(m["scopes_supported"]
            .as_array()
            .expect("scopes")
            .iter()
            .any(|s| s == "items:write"));
        assert_eq!(
            m["access_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
    }
    let r = post(gw.addr, "/.well-known/jwks.json", "", &[]).await;
    assert_eq!(r.status, 405);
}

// Unknown usernames cost what wrong passwords cost: counted (one verification
// against a hash with the configured parameters) in
// `src/token/password.rs` `unknown_users_cost_one_verification_like_wrong_passwords`,
// not timed here. The same invalid_grant text for both is checked above.

#[tokio::test]
async fn static_users_log_in_and_stay_read_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let hash = cheap_hasher().hash("sidecar-password").expect("hash");
    let statics = format!(
        "\n[[users.static]]\nusername = \"bot\"\npassword_hash = \"{hash}\"\nroles = [\"admin\"]\n"
    );
    let text = config(&sqlite(dir.path()), "", "").replacen(
        "[[users.seed]]",
        &format!("{statics}\n[[users.seed]]"),
        1,
    );
    let gw = gateway(&text, Some(closed_port().await)).await;
    let body = login(gw.addr, "bot", "sidecar-password", "").await;
    assert_eq!(body["scope"], "items:read items:write");
    // Refresh works for static users too (their refresh tokens live in the store).
    let r = post(
        gw.addr,
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            body["refresh_token"].as_str().expect("rt")
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        gw.addr,
        "/token",
        "grant_type=password&username=bot&password=wrong",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    // Never written to the store.
    let store = Store::open(&sqlite(dir.path())).await.expect("store");
    assert!(store.find_user("bot").await.expect("q").is_none());
}

#[test]
fn token_service_config_errors_name_key_and_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = config(
        &sqlite(dir.path()),
        "scope_policy = \"lenient\"\nlogin_rate = \"fast\"\naccess_ttl = \"1s\"",
        "",
    )
    .replace("{UP}", "127.0.0.1:9")
    .replace("signing_key = \"es\"", "signing_key = \"nope\"")
    .replace(JOHNDOE_BCRYPT, "secret")
    .replace("default_client = \"cli\"", "default_client = \"web\"")
    .replace(
        "grants = [\"client_credentials\"]",
        "grants = [\"client_credentials\", \"implicit\"]",
    );
    let err = portcullis::config::parse_str(&text, Path::new("g.toml"))
        .expect_err("refused")
        .to_string();
    for want in [
        "tokens.signing_key",
        "tokens.scope_policy",
        "tokens.login_rate",
        "tokens.access_ttl",
        "users.seed[0].password_hash",
        "portcullis hash-password",
        "tokens.default_client",
        "clients[2].grants",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("wonderland"));
    // Sections of the token service without it turned on are pointed out.
    let err = portcullis::config::parse_str(
        "[users]\nstore = \"sqlite://x.db\"\n[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\n",
        Path::new("g.toml"),
    )
    .expect_err("refused")
    .to_string();
    assert!(err.contains("signing_key"), "{err}");
}

/// Rotation: several keys verify, one signs; switching the signing key keeps earlier
/// tokens valid until their key is removed.
#[tokio::test]
async fn signing_key_rotation_by_reload() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let with_keys = |signing: &str, keep_es: bool| {
        let ed = format!("\n[[tokens.keys]]\nkid = \"ed\"\nalg = \"EdDSA\"\nprivate_key = \"{FIX}/ed25519.key\"\n");
        let mut text = config(&sqlite(dir.path()), "", "")
            .replace(
                "signing_key = \"es\"",
                &format!("signing_key = \"{signing}\""),
            )
            .replacen("[users]", &format!("{ed}\n[users]"), 1);
        if !keep_es {
            text = text.replace(&format!("[[tokens.keys]]\nkid = \"es\"\nalg = \"ES256\"\nprivate_key = \"{FIX}/es256.key\"\n"), "");
        }
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}",
            text.replace("{UP}", &up.addr.to_string())
        );
        portcullis::config::parse_str(&text, Path::new("rot.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let gw = portcullis::Gateway::start(with_keys("es", true))
        .await
        .expect("start");
    let old = login(gw.addr, "alice", "wonderland", "").await["access_token"]
        .as_str()
        .expect("t")
        .to_string();
    assert_eq!(decode_header(&old).expect("h").kid.as_deref(), Some("es"));

    gw.reload(with_keys("ed", true));
    let new = login(gw.addr, "alice", "wonderland", "").await["access_token"]
        .as_str()
        .expect("t")
        .to_string();
    assert_eq!(decode_header(&new).expect("h").kid.as_deref(), Some("ed"));
    for t in [&old, &new] {
        assert_eq!(get(gw.addr, "/items/1", &[&bearer(t)]).await.status, 200);
        verify_with_jwks(gw.addr, t).await;
    }
    // The old key retired: its tokens are refused, the new ones keep working.
    gw.reload(with_keys("ed", false));
    assert_error(
        &get(gw.addr, "/items/1", &[&bearer(&old)]).await,
        401,
        "invalid_token",
    );
    assert_eq!(get(gw.addr, "/items/1", &[&bearer(&new)]).await.status, 200);
    let jwks = get(gw.addr, "/.well-known/jwks.json", &[]).await.json();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
}
