use super::*;
use serde_json::json;

#[test]
fn claim_paths() {
    let c: Map<String, Value> = serde_json::from_value(json!({
        "realm_access": {"roles": ["admin"]},
        "https://example.com/roles": ["ops"],
        "scp": ["a", "b"]
    }))
    .expect("map");
    assert_eq!(
        ClaimPath("realm_access.roles".into()).get(&c),
        Some(&json!(["admin"]))
    );
    assert_eq!(
        ClaimPath("https://example.com/roles".into()).get(&c),
        Some(&json!(["ops"]))
    );
    assert_eq!(ClaimPath("scp".into()).get(&c), Some(&json!(["a", "b"])));
    assert_eq!(ClaimPath("realm_access.missing".into()).get(&c), None);
    assert_eq!(ClaimPath("scp.x".into()).get(&c), None);
}

#[test]
fn max_age_is_read() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::CACHE_CONTROL,
        "public, max-age=300, must-revalidate".parse().expect("hv"),
    );
    assert_eq!(max_age(&h), Some(Duration::from_secs(300)));
    h.insert(
        reqwest::header::CACHE_CONTROL,
        "no-cache".parse().expect("hv"),
    );
    assert_eq!(max_age(&h), None);
}

#[test]
fn issuer_is_peeked_without_verification() {
    use base64::Engine as _;
    let p =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp.test/"}"#);
    assert_eq!(
        peek_issuer(&format!("e30.{p}.sig")).as_deref(),
        Some("https://idp.test/")
    );
    assert_eq!(peek_issuer("garbage"), None);
}

// The issuer's verification, with keys put in place directly (the fetch is tested over
// loopback in tests/gateway/issuers.rs). Each case also holds for `[tokens]`: both run
// `jwt::claims::check`.

use crate::auth::principal::ClaimMapping;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, EncodingKey, Header};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
const ISS: &str = "https://idp.test/";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).expect("fixture")
}

fn client(max_lifetime: Option<Duration>, mapping: ClaimMapping) -> Arc<JwksClient> {
    let mut rules = ClaimRules::new(ISS.into(), vec!["api".into()], Duration::from_secs(60));
    rules.max_lifetime = max_lifetime;
    rules.mapping = mapping;
    let c = JwksClient::new(IssuerConfig {
        issuer: ISS.into(),
        source: JwksSource::Url("http://127.0.0.1:9/jwks".into()),
        algorithms: vec![Algorithm::RS256],
        rules,
        min_refresh: Duration::from_secs(60),
        max_refresh: Duration::from_secs(3600),
        unknown_kid_cooldown: Duration::from_secs(30),
    });
    let key = DecodingKey::from_rsa_pem(&fixture("rs256.pub")).expect("pem");
    let mut keys = KeySet::new();
    keys.insert("k1".into(), (Algorithm::RS256, Arc::new(key)));
    c.keys.store(Arc::new(keys));
    c
}

fn now() -> f64 {
    claims::now_f64().floor()
}

fn base() -> Value {
    json!({"iss": ISS, "aud": ["account", "api"], "sub": "kc-user", "exp": now() + 300.0,
           "iat": now(), "scp": ["items:read"], "realm_access": {"roles": ["admin"]}})
}

fn with(extra: Value) -> Value {
    let mut c = base();
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn sign_with(header: &Header, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&fixture("rs256.key")).expect("pem");
    encode(header, claims, &key).expect("sign")
}

fn sign(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("k1".into());
    sign_with(&h, claims)
}

/// RS256 over exactly this header text.
fn sign_header(header: &str, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_rsa_pem(&fixture("rs256.key")).expect("pem");
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).expect("sign");
    format!("{input}.{sig}")
}

async fn verdict(c: &JwksClient, t: &str) -> Result<String, TokenError> {
    c.verify(t).await.map(|p| p.subject)
}

fn keycloak() -> ClaimMapping {
    ClaimMapping {
        scope_claims: vec![ClaimPath("scp".into())],
        roles_claim: ClaimPath("realm_access.roles".into()),
        expand_roles: true,
    }
}

#[tokio::test]
async fn issuer_tokens_meet_the_time_rules_of_own_tokens() {
    let c = client(Some(Duration::from_secs(3600)), keycloak());
    assert_eq!(verdict(&c, &sign(&base())).await.as_deref(), Ok("kc-user"));
    let cases = [
        (
            "nbf in an hour",
            with(json!({"nbf": now() + 3600.0})),
            TokenError::NotYetValid,
        ),
        (
            "iat in an hour",
            with(json!({"iat": now() + 3600.0})),
            TokenError::NotYetValid,
        ),
        (
            "lifetime over max_lifetime",
            with(json!({"exp": now() + 7200.0})),
            TokenError::LifetimeTooLong,
        ),
        (
            "no iat while max_lifetime is set",
            {
                let mut c = base();
                c.as_object_mut().expect("obj").remove("iat");
                c
            },
            TokenError::BadClaims,
        ),
        (
            "expired",
            with(json!({"exp": now() - 3600.0})),
            TokenError::Expired,
        ),
        (
            "exp a string",
            with(json!({"exp": "99999999999"})),
            TokenError::BadClaims,
        ),
        (
            "exp negative",
            with(json!({"exp": -1})),
            TokenError::BadClaims,
        ),
    ];
    for (name, claims, want) in cases {
        assert_eq!(verdict(&c, &sign(&claims)).await, Err(want), "{name}");
    }
}

#[tokio::test]
async fn issuer_tokens_with_fractional_dates_are_accepted() {
    let c = client(Some(Duration::from_secs(3600)), keycloak());
    let t = sign(&with(
        json!({"iat": now() - 0.25, "nbf": now() - 0.5, "exp": now() + 300.75}),
    ));
    let p = c
        .verify(&t)
        .await
        .expect("fractional NumericDates (RFC 7519 §2)");
    assert_eq!(p.expires_at as f64, now() + 300.0);
}

#[tokio::test]
async fn issuer_claims_have_fixed_types() {
    let c = client(None, keycloak());
    let cases = [
        (
            "iss an array",
            with(json!({"iss": ["https://evil.example", ISS]})),
        ),
        ("iss an array of ours", with(json!({"iss": [ISS]}))),
        ("sub a number", with(json!({"sub": 7}))),
        ("aud a number", with(json!({"aud": 7}))),
        (
            "aud array with a non-string",
            with(json!({"aud": ["api", 7]})),
        ),
        ("jti an object", with(json!({"jti": {}}))),
    ];
    for (name, claims) in cases {
        assert_eq!(
            verdict(&c, &sign(&claims)).await,
            Err(TokenError::BadClaims),
            "{name}"
        );
    }
    assert_eq!(
        verdict(&c, &sign(&with(json!({"iss": "https://evil.example"})))).await,
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        verdict(&c, &sign(&with(json!({"aud": "other"})))).await,
        Err(TokenError::WrongAudience)
    );
}

#[tokio::test]
async fn issuer_headers_meet_the_allow_list() {
    let c = client(None, keycloak());
    for typ in [
        "",
        r#","typ":"JWT""#,
        r#","typ":"at+jwt""#,
        r#","typ":"application/at+jwt""#,
    ] {
        let h = format!(r#"{{"alg":"RS256","kid":"k1"{typ}}}"#);
        assert!(c.verify(&sign_header(&h, &base())).await.is_ok(), "{h}");
    }
    for extra in [
        r#","typ":"dpop+jwt""#,
        r#","typ":"secevent+jwt""#,
        r#","typ":"foo""#,
        r#","enc":"A256GCM""#,
        r#","zip":"DEF""#,
        r#","crit":["exp"]"#,
    ] {
        let h = format!(r#"{{"alg":"RS256","kid":"k1"{extra}}}"#);
        assert_eq!(
            verdict(&c, &sign_header(&h, &base())).await,
            Err(TokenError::BadHeader),
            "{h}"
        );
    }
}

#[tokio::test]
async fn issuer_scopes_come_from_the_configured_claim_only() {
    // scope_claim = "scp": a `scope` claim is not read, even when `scp` is absent.
    let c = client(None, keycloak());
    let mut claims = base();
    claims.as_object_mut().expect("obj").remove("scp");
    claims["scope"] = json!("items:write");
    claims["roles"] = json!(["root"]);
    let p = c.verify(&sign(&claims)).await.expect("valid");
    assert!(p.scopes.is_empty(), "{:?}", p.scopes);
    assert_eq!(p.roles, vec!["admin"], "realm_access.roles, not roles");
    assert_eq!(
        p.claims.get("scope"),
        Some(&json!("items:write")),
        "claims are kept as the token said"
    );
    let off = client(
        None,
        ClaimMapping {
            expand_roles: false,
            ..keycloak()
        },
    );
    assert!(
        !off.verify(&sign(&base()))
            .await
            .expect("valid")
            .expand_roles
    );
}

/// A token that arrives before the first fetch has finished waits for it and does not
/// spend the unknown-kid refetch; after a finished fetch, an unknown `kid` does.
#[tokio::test(start_paused = true)]
async fn the_first_fetch_does_not_spend_the_unknown_kid_cooldown() {
    let c = client(None, keycloak());
    let keys = c.keys.swap(Arc::new(KeySet::new()));
    let token = sign(&base());
    let fetched = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // What the refresher does after its first fetch.
            c.keys.store(keys);
            c.version.send_modify(|v| *v += 1);
        })
    };
    assert_eq!(verdict(&c, &token).await.as_deref(), Ok("kc-user"));
    fetched.await.expect("task");
    let spent = || {
        c.last_refetch_request
            .lock()
            .map(|l| l.is_some())
            .unwrap_or(true)
    };
    assert!(!spent(), "waiting for the first fetch spent the cooldown");
    // An unknown kid once a key set is held: one refetch request, then the cooldown.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rotated".into());
    let unknown = sign_with(&h, &base());
    assert_eq!(verdict(&c, &unknown).await, Err(TokenError::UnknownKey));
    assert!(spent());
}
