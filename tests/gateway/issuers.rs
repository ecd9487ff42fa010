//! External issuers: a JWKS server on loopback (with OIDC discovery), Keycloak-shaped
//! tokens, key rotation, forged kids, an IdP that goes down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::*;

struct Idp {
    base: String,
    keys: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
}

fn jwk(file: &str, kid: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIX}/{file}")).expect("jwk"))
            .expect("json");
    v["kid"] = json!(kid);
    v
}

async fn idp(initial: Vec<Value>) -> Idp {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = l.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let keys = Arc::new(Mutex::new(initial));
    let down = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, d, f, b) = (keys.clone(), down.clone(), fetches.clone(), base.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (k, d, f, b) = (k.clone(), d.clone(), f.clone(), b.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (k, d, f, b) = (k.clone(), d.clone(), f.clone(), b.clone());
                async move {
                    let resp = match req.uri().path() {
                        "/.well-known/openid-configuration" => {
                            Response::new(Full::new(Bytes::from(
                                json!({"issuer": b, "jwks_uri": format!("{b}/jwks")}).to_string(),
                            )))
                        }
                        "/jwks" => {
                            f.fetch_add(1, Ordering::SeqCst);
                            if d.load(Ordering::SeqCst) {
                                Response::builder()
                                    .status(503)
                                    .body(Full::new(Bytes::new()))
                                    .expect("resp")
                            } else {
                                let body = json!({"keys": *k.lock().expect("lock")}).to_string();
                                Response::builder()
                                    .header("cache-control", "public, max-age=3600")
                                    .body(Full::new(Bytes::from(body)))
                                    .expect("resp")
                            }
                        }
                        _ => Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::new()))
                            .expect("resp"),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Idp {
        base,
        keys,
        down,
        fetches,
    }
}

/// The IdP's usual claims (Keycloak's shape), with `extra` replacing them (`null`
/// removes one).
fn idp_claims(iss: &str, extra: Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let mut claims = json!({"iss": iss, "aud": ["account", "api"], "sub": "kc-user", "exp": now + 300, "iat": now,
                            "scp": ["items:read"], "realm_access": {"roles": ["admin"]}});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    claims
}

fn token(iss: &str, kid: &str, keyfile: &str, extra: Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.into());
    let key = std::fs::read(format!("{FIX}/{keyfile}")).expect("key");
    let claims = idp_claims(iss, extra);
    encode(&h, &claims, &EncodingKey::from_rsa_pem(&key).expect("pem")).expect("sign")
}

fn config(idp: &Idp, cooldown: &str) -> String {
    format!(
        r#"[server]
admin_listen = "127.0.0.1:0"

[[issuers]]
issuer = "{base}"
discovery = true
audiences = ["api"]
scope_claim = "scp"
roles_claim = "realm_access.roles"
unknown_kid_cooldown = "{cooldown}"

[[upstreams]]
name = "up"
url = "http://{{UP}}"

[[routes]]
path = "/items/{{id}}"
upstream = "up"
scopes = ["items:read"]

[[routes]]
path = "/admin/**"
upstream = "up"
roles = ["admin"]
"#,
        base = idp.base
    )
}

async fn ready(gw: &portcullis::Gateway) -> bool {
    let admin = gw.admin_addr.expect("admin");
    for _ in 0..100 {
        if get(admin, "/readyz", &[]).await.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn keycloak_shaped_tokens_through_discovery() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "30s"), Some(up.addr)).await;
    assert!(ready(&gw).await, "keys fetched at start");
    let t = token(&idp.base, "k1", "rs256.key", json!({}));
    assert_eq!(get(gw.addr, "/items/1", &[&bearer(&t)]).await.status, 200);
    let h = up.last().headers;
    assert_eq!(h["x-auth-subject"], "kc-user");
    assert_eq!(h["x-auth-scopes"], "items:read");
    assert_eq!(h["x-auth-roles"], "admin");
    assert_eq!(h["x-auth-issuer"], idp.base.as_str());
    assert_eq!(
        get(gw.addr, "/admin/x", &[&bearer(&t)]).await.status,
        200,
        "realm_access.roles"
    );

    // Refused: another issuer, wrong audience, a key of the IdP's used with another kid's
    // name, an HS256 token whose secret is the IdP's public key.
    let other = token("https://evil.test/", "k1", "rs256.key", json!({}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&other)]).await.status,
        401
    );
    let wrong_aud = token(&idp.base, "k1", "rs256.key", json!({"aud": "other"}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&wrong_aud)])
            .await
            .status,
        401
    );
    let forged = token(&idp.base, "k1", "rs256b.key", json!({}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&forged)]).await.status,
        401
    );
    let confusion = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let claims = json!({"iss": idp.base, "aud": "api", "sub": "x", "exp": now + 60, "scp": ["items:read"]});
        encode(
            &h,
            &claims,
            &EncodingKey::from_secret(&std::fs::read(format!("{FIX}/rs256.pub")).expect("pub")),
        )
        .expect("sign")
    };
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&confusion)])
            .await
            .status,
        401
    );
    let no_scope = token(&idp.base, "k1", "rs256.key", json!({"scp": ["other"]}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&no_scope)]).await.status,
        403
    );
}

#[tokio::test]
async fn rotation_forged_kids_and_an_idp_outage() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "2s"), Some(up.addr)).await;
    assert!(ready(&gw).await);
    let start = idp.fetches.load(Ordering::SeqCst);

    // Rotation: a new key appears at the IdP; the first token signed with it makes
    // Portcullis refetch, and it is accepted.
    idp.keys
        .lock()
        .expect("lock")
        .push(jwk("rs256b.jwk.json", "k2"));
    let rotated = token(&idp.base, "k2", "rs256b.key", json!({}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&rotated)]).await.status,
        200
    );
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        start + 1,
        "one refetch for the new kid"
    );

    // Forged kids: 40 tokens naming unknown keys cost at most one more fetch (cooldown).
    for i in 0..40 {
        let t = token(&idp.base, &format!("forged-{i}"), "rs256.key", json!({}));
        assert_eq!(get(gw.addr, "/items/1", &[&bearer(&t)]).await.status, 401);
    }
    let after_forged = idp.fetches.load(Ordering::SeqCst);
    assert!(
        after_forged <= start + 2,
        "forged kids caused {} fetches",
        after_forged - start
    );

    // Outage: the IdP answers 503; the keys already fetched keep working.
    idp.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await; // past the cooldown
    let unknown = token(&idp.base, "k3", "rs256.key", json!({}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&unknown)]).await.status,
        401
    );
    assert!(
        idp.fetches.load(Ordering::SeqCst) > after_forged,
        "a refetch was attempted while down"
    );
    let fresh = token(&idp.base, "k1", "rs256.key", json!({"sub": "after-outage"}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&fresh)]).await.status,
        200,
        "stale keys keep serving"
    );
    assert_eq!(up.last().headers["x-auth-subject"], "after-outage");
}

#[tokio::test]
async fn readiness_waits_for_the_first_key_set() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    idp.down.store(true, Ordering::SeqCst);
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "30s"), Some(up.addr)).await;
    let admin = gw.admin_addr.expect("admin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(admin, "/readyz", &[]).await.status, 503, "no keys yet");
    idp.down.store(false, Ordering::SeqCst);
    // The retry backs off from one second.
    assert!(ready(&gw).await, "ready once the IdP answers");
    assert!(idp.fetches.load(Ordering::SeqCst) >= 2);
}

/// Issue 10: a reload keeps each unchanged issuer's client, so external tokens keep
/// verifying on the keys held while the IdP is down, with no refetch, and `/readyz`
/// stays 200. A changed entry that fetches the same key set takes the keys over; an
/// added issuer without keys yet does not flip readiness either.
#[tokio::test]
async fn a_reload_while_the_idp_is_down_keeps_its_keys_and_readiness() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "30s"), Some(up.addr)).await;
    assert!(ready(&gw).await);
    let admin = gw.admin_addr.expect("admin");
    let fresh = |sub: &str| bearer(&token(&idp.base, "k1", "rs256.key", json!({"sub": sub})));
    assert_eq!(
        get(gw.addr, "/items/1", &[&fresh("before")]).await.status,
        200
    );

    idp.down.store(true, Ordering::SeqCst);
    let fetches = idp.fetches.load(Ordering::SeqCst);
    let more = "[[routes]]\npath = \"/more/**\"\nupstream = \"up\"\nauth = \"none\"\n";
    gw.reload(config_of(
        &format!("{}{more}", config(&idp, "30s")),
        Some(up.addr),
    ));
    assert_eq!(get(gw.addr, "/more/x", &[]).await.status, 200, "reloaded");
    assert_eq!(get(admin, "/readyz", &[]).await.status, 200);
    assert_eq!(
        get(gw.addr, "/items/1", &[&fresh("during")]).await.status,
        200
    );
    assert_eq!(up.last().headers["x-auth-subject"], "during");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), fetches, "no refetch");

    // The issuer's entry changed (its cooldown), not where its keys come from.
    gw.reload(config_of(
        &format!("{}{more}", config(&idp, "10s")),
        Some(up.addr),
    ));
    assert_eq!(get(admin, "/readyz", &[]).await.status, 200);
    assert_eq!(
        get(gw.addr, "/items/1", &[&fresh("changed")]).await.status,
        200
    );
    assert_eq!(up.last().headers["x-auth-subject"], "changed");

    // A new issuer whose IdP does not answer: its tokens wait for its keys, the
    // gateway stays in rotation.
    let closed = closed_port().await;
    let second = format!(
        "[[issuers]]\nissuer = \"http://{closed}\"\njwks_url = \"http://{closed}/jwks\"\naudiences = [\"api\"]\n"
    );
    gw.reload(config_of(
        &format!("{}{more}{second}", config(&idp, "10s")),
        Some(up.addr),
    ));
    assert_eq!(get(admin, "/readyz", &[]).await.status, 200);
    assert_eq!(
        get(gw.addr, "/items/1", &[&fresh("added")]).await.status,
        200
    );
}

/// A token of the IdP with exactly this header text; `extra` as in [`idp_claims`].
fn token_with_header(iss: &str, header: &str, extra: Value) -> String {
    sign_raw_header(
        Algorithm::RS256,
        "rs256.key",
        header,
        &idp_claims(iss, extra),
    )
}

fn secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as f64
}

/// Issue 9 item 3: an external issuer's tokens meet the rules Portcullis' own tokens
/// meet — `nbf`, future `iat`, NumericDates with fractions, `iss` a string. Refused
/// tokens never reach the upstream.
#[tokio::test]
async fn issuer_tokens_meet_the_same_claim_rules() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "30s"), Some(up.addr)).await;
    assert!(ready(&gw).await);
    let n = secs();
    let ok = |extra: Value| token(&idp.base, "k1", "rs256.key", extra);
    for (name, extra) in [
        ("plain", json!({})),
        ("fractional iat", json!({"iat": n - 0.75})),
        ("fractional exp", json!({"exp": n + 300.25})),
        ("fractional nbf", json!({"nbf": n - 1.5})),
    ] {
        let r = get(gw.addr, "/items/1", &[&bearer(&ok(extra))]).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
    }
    let seen = up.seen().len();
    for (name, extra) in [
        ("nbf in an hour", json!({"nbf": n + 3600.0})),
        ("iat in an hour", json!({"iat": n + 3600.0})),
        (
            "iss an array",
            json!({"iss": ["https://evil.example", idp.base]}),
        ),
        ("exp a string", json!({"exp": "99999999999"})),
    ] {
        let r = get(gw.addr, "/items/1", &[&bearer(&ok(extra))]).await;
        assert_error(&r, 401, "invalid_token");
        assert_eq!(up.seen().len(), seen, "{name} reached the upstream");
    }
}

/// Issue 9 item 3: `max_lifetime` per issuer bounds `exp - iat`, as for `[tokens]`.
#[tokio::test]
async fn issuer_max_lifetime_is_enforced() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let text = config(&idp, "30s").replacen(
        "roles_claim = \"realm_access.roles\"\n",
        "roles_claim = \"realm_access.roles\"\nmax_lifetime = \"1h\"\n",
        1,
    );
    let gw = gateway(&text, Some(up.addr)).await;
    assert!(ready(&gw).await);
    let n = secs();
    let within = token(&idp.base, "k1", "rs256.key", json!({"exp": n + 3500.0}));
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&within)]).await.status,
        200
    );
    for (name, extra) in [
        ("lifetime over max_lifetime", json!({"exp": n + 7200.0})),
        ("no iat", json!({"iat": null})),
    ] {
        let t = token_with_header(&idp.base, r#"{"alg":"RS256","kid":"k1"}"#, extra);
        let r = get(gw.addr, "/items/1", &[&bearer(&t)]).await;
        assert_error(&r, 401, "invalid_token");
        assert_eq!(up.seen().len(), 1, "{name} reached the upstream");
    }
}

/// Issue 9 item 3: the header allow-list holds for external issuers too.
#[tokio::test]
async fn issuer_tokens_typ_allow_list_and_jwe_headers() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "30s"), Some(up.addr)).await;
    assert!(ready(&gw).await);
    assert_header_allow_list(
        gw.addr,
        &up,
        "/items/1",
        |extra| format!(r#"{{"alg":"RS256","kid":"k1"{extra}}}"#),
        |header| token_with_header(&idp.base, header, json!({})),
    )
    .await;
}

/// Issue 9 item 3: `scope_claim = "scp"` reads `scp` only; a `scope` claim no longer
/// stands in when `scp` is absent.
#[tokio::test]
async fn issuer_scope_claim_is_the_only_scope_source() {
    let idp = idp(vec![jwk("rs256.jwk.json", "k1")]).await;
    let up = Upstream::start().await;
    let gw = gateway(&config(&idp, "30s"), Some(up.addr)).await;
    assert!(ready(&gw).await);
    let t = token_with_header(
        &idp.base,
        r#"{"alg":"RS256","kid":"k1"}"#,
        json!({"scp": null, "scope": "items:read"}),
    );
    let r = get(gw.addr, "/items/1", &[&bearer(&t)]).await;
    assert_error(&r, 403, "insufficient_scope");
    assert!(up.seen().is_empty());
}
