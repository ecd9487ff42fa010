use super::*;
use crate::auth::principal::{ClaimMapping, ClaimPath};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).expect("fixture")
}

fn verifier(max_lifetime: Option<Duration>) -> Verifier {
    let keys = vec![
        (
            "hs".to_string(),
            Algorithm::HS256,
            decoding_key(Algorithm::HS256, &fixture("hs256.secret")).expect("hs"),
        ),
        (
            "rs".to_string(),
            Algorithm::RS256,
            decoding_key(Algorithm::RS256, &fixture("rs256.pub")).expect("rs"),
        ),
        (
            "es".to_string(),
            Algorithm::ES256,
            decoding_key(Algorithm::ES256, &fixture("es256.pub")).expect("es"),
        ),
        (
            "ed".to_string(),
            Algorithm::EdDSA,
            decoding_key(Algorithm::EdDSA, &fixture("ed25519.pub")).expect("ed"),
        ),
    ];
    let mut rules = rules(&["api", "other"]);
    rules.max_lifetime = max_lifetime;
    Verifier::new(rules, keys)
}

fn rules(audiences: &[&str]) -> ClaimRules {
    ClaimRules::new(
        "https://gw.test".into(),
        audiences.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(60),
    )
}

fn now() -> i64 {
    i64::try_from(now_secs()).expect("time")
}

fn claims() -> Value {
    json!({"iss": "https://gw.test", "aud": "api", "sub": "alice", "exp": now() + 300, "iat": now(), "scope": "items:read items:write", "roles": ["user"], "client_id": "cli"})
}

fn sign(kid: Option<&str>, alg: Algorithm, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    h.typ = Some("at+jwt".into());
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(&fixture("hs256.secret")),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture("rs256.key")).expect("rsa"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&fixture("es256.key")).expect("ec"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&fixture("ed25519.key")).expect("ed"),
        _ => panic!("alg"),
    };
    encode(&h, claims, &key).expect("sign")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn with_claim(k: &str, v: Value) -> Value {
    let mut c = claims();
    c[k] = v;
    c
}

fn without_claim(k: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().expect("obj").remove(k);
    c
}

#[test]
fn refused_tokens() {
    let v = verifier(None);
    let hs = |c: &Value| sign(Some("hs"), Algorithm::HS256, c);
    let good = hs(&claims());
    let (h, rest) = good.split_once('.').expect("dot");
    let (p, s) = rest.split_once('.').expect("dot");

    let none_token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    let none_with_kid = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "hs"})),
        b64(&claims())
    );
    // HS256 signed with the RSA public key's bytes, aimed at the RSA key.
    let confusion = {
        let mut hdr = Header::new(Algorithm::HS256);
        hdr.kid = Some("rs".into());
        encode(
            &hdr,
            &claims(),
            &EncodingKey::from_secret(&fixture("rs256.pub")),
        )
        .expect("sign")
    };
    let tampered = format!("{h}.{}.{s}", b64(&with_claim("sub", json!("mallory"))));
    let crit = {
        let hdr = b64(&json!({"alg": "HS256", "kid": "hs", "crit": ["exp"]}));
        format!("{hdr}.{p}.{s}")
    };
    let cases: Vec<(&str, String, TokenError)> = vec![
        ("alg none", none_token, TokenError::UnknownKey),
        (
            "alg none with kid",
            none_with_kid,
            TokenError::WrongAlgorithm,
        ),
        (
            "HS256 with RSA public key",
            confusion,
            TokenError::WrongAlgorithm,
        ),
        (
            "RS256 token claiming the HS key",
            sign(Some("hs"), Algorithm::RS256, &claims()),
            TokenError::WrongAlgorithm,
        ),
        (
            "expired",
            hs(&with_claim("exp", json!(now() - 3600))),
            TokenError::Expired,
        ),
        (
            "nbf in the future",
            hs(&with_claim("nbf", json!(now() + 3600))),
            TokenError::NotYetValid,
        ),
        (
            "iat in the future",
            hs(&with_claim("iat", json!(now() + 3600))),
            TokenError::NotYetValid,
        ),
        (
            "wrong iss",
            hs(&with_claim("iss", json!("https://evil.test"))),
            TokenError::WrongIssuer,
        ),
        (
            "wrong aud",
            hs(&with_claim("aud", json!("elsewhere"))),
            TokenError::WrongAudience,
        ),
        (
            "aud array without ours",
            hs(&with_claim("aud", json!(["x", "y"]))),
            TokenError::WrongAudience,
        ),
        (
            "unknown kid",
            sign(Some("nope"), Algorithm::HS256, &claims()),
            TokenError::UnknownKey,
        ),
        (
            "alg none without kid",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims())),
            TokenError::UnknownKey,
        ),
        ("tampered payload", tampered, TokenError::BadSignature),
        (
            "truncated",
            good[..good.len() - 5].to_string(),
            TokenError::BadSignature,
        ),
        ("two segments", format!("{h}.{p}"), TokenError::Malformed),
        ("garbage", "not-a-token".to_string(), TokenError::Malformed),
        (
            "huge",
            format!("{h}.{}.{s}", "A".repeat(MAX_TOKEN_BYTES)),
            TokenError::TooLarge,
        ),
        (
            "missing exp",
            hs(&without_claim("exp")),
            TokenError::BadClaims,
        ),
        (
            "missing iss",
            hs(&without_claim("iss")),
            TokenError::BadClaims,
        ),
        (
            "missing sub",
            hs(&without_claim("sub")),
            TokenError::BadClaims,
        ),
        (
            "sub not a string",
            hs(&with_claim("sub", json!(42))),
            TokenError::BadClaims,
        ),
        (
            "sub with a newline",
            hs(&with_claim("sub", json!("alice\r\nx-auth-admin: 1"))),
            TokenError::BadClaims,
        ),
        (
            "scope not a string",
            hs(&with_claim("scope", json!({"a": 1}))),
            TokenError::BadClaims,
        ),
        ("crit header", crit, TokenError::BadHeader),
    ];
    for (name, token, want) in &cases {
        let got = v.verify(token).map(|p| p.subject);
        assert_eq!(got, Err(*want), "{name}");
    }
    // exp as a string is refused whatever the library calls it.
    assert!(v
        .verify(&hs(&with_claim("exp", json!("9999999999"))))
        .is_err());
}

#[test]
fn accepted_tokens() {
    let v = verifier(None);
    for (kid, alg) in [
        ("hs", Algorithm::HS256),
        ("rs", Algorithm::RS256),
        ("es", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ] {
        let p = v
            .verify(&sign(Some(kid), alg, &claims()))
            .unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(p.subject, "alice");
        assert_eq!(p.scopes, vec!["items:read", "items:write"]);
        assert_eq!(p.roles, vec!["user"]);
        assert_eq!(p.client_id.as_deref(), Some("cli"));
        assert_eq!(p.issuer, "https://gw.test");
    }
    // audience arrays, `scp` arrays, leeway on exp
    let p = v
        .verify(&sign(
            Some("hs"),
            Algorithm::HS256,
            &with_claim("aud", json!(["x", "other"])),
        ))
        .expect("aud array");
    assert_eq!(p.subject, "alice");
    let mut c = without_claim("scope");
    c["scp"] = json!(["a", "b"]);
    assert_eq!(
        v.verify(&sign(Some("hs"), Algorithm::HS256, &c))
            .expect("scp")
            .scopes,
        vec!["a", "b"]
    );
    assert!(
        v.verify(&sign(
            Some("hs"),
            Algorithm::HS256,
            &with_claim("exp", json!(now() - 30))
        ))
        .is_ok(),
        "within leeway"
    );
}

#[test]
fn single_key_needs_no_kid_and_lifetime_is_bounded() {
    let keys = vec![(
        "only".to_string(),
        Algorithm::HS256,
        decoding_key(Algorithm::HS256, &fixture("hs256.secret")).expect("hs"),
    )];
    let mut r = rules(&["api"]);
    r.max_lifetime = Some(Duration::from_secs(600));
    let v = Verifier::new(r, keys);
    assert!(v.verify(&sign(None, Algorithm::HS256, &claims())).is_ok());
    let long = with_claim("exp", json!(now() + 7200));
    assert_eq!(
        v.verify(&sign(None, Algorithm::HS256, &long))
            .map(|p| p.subject),
        Err(TokenError::LifetimeTooLong)
    );
    assert_eq!(
        v.verify(&sign(None, Algorithm::HS256, &without_claim("iat")))
            .map(|p| p.subject),
        Err(TokenError::BadClaims)
    );
}

#[test]
fn without_kid_the_key_of_the_token_algorithm_is_used() {
    let v = verifier(None);
    assert!(v.verify(&sign(None, Algorithm::HS256, &claims())).is_ok());
    assert!(v.verify(&sign(None, Algorithm::RS256, &claims())).is_ok());
    // Two keys of one algorithm: a token without kid is ambiguous.
    let two = vec![
        (
            "a".to_string(),
            Algorithm::HS256,
            decoding_key(Algorithm::HS256, &fixture("hs256.secret")).expect("hs"),
        ),
        (
            "b".to_string(),
            Algorithm::HS256,
            decoding_key(Algorithm::HS256, &[7u8; 32]).expect("hs"),
        ),
    ];
    let v2 = Verifier::new(rules(&["api"]), two);
    assert_eq!(
        v2.verify(&sign(None, Algorithm::HS256, &claims()))
            .map(|p| p.subject),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn issuer_and_audience_checks_can_be_turned_off_explicitly() {
    let keys = vec![(
        "hs".to_string(),
        Algorithm::HS256,
        decoding_key(Algorithm::HS256, &fixture("hs256.secret")).expect("hs"),
    )];
    let mut r = ClaimRules::new(String::new(), vec![], Duration::from_secs(60));
    r.verify_issuer = false;
    r.verify_audience = false;
    let v = Verifier::new(r, keys);
    let mut c = without_claim("iss");
    c.as_object_mut().expect("obj").remove("aud");
    assert!(v.verify(&sign(Some("hs"), Algorithm::HS256, &c)).is_ok());
    // exp stays required.
    c.as_object_mut().expect("obj").remove("exp");
    assert_eq!(
        v.verify(&sign(Some("hs"), Algorithm::HS256, &c))
            .map(|p| p.subject),
        Err(TokenError::BadClaims)
    );
}

#[test]
fn weak_hmac_secrets_are_refused() {
    assert!(decoding_key(Algorithm::HS256, b"short").is_err());
    assert!(decoding_key(Algorithm::RS256, b"not pem").is_err());
    assert!(decoding_key(Algorithm::HS384, &[0u8; 64]).is_err());
}

/// An HS256 token with exactly this header and payload text (no re-serialization).
fn sign_raw(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(&fixture("hs256.secret")),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{input}.{sig}")
}

fn hs_header(extra: Value) -> String {
    let mut h = json!({"alg": "HS256", "kid": "hs"});
    if let (Some(h), Some(e)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            h.insert(k.clone(), v.clone());
        }
    }
    h.to_string()
}

fn verdict(v: &Verifier, token: &str) -> Result<String, TokenError> {
    v.verify(token).map(|p| p.subject)
}

#[test]
fn registered_claims_have_fixed_types() {
    let v = verifier(None);
    let hs = |c: &Value| sign(Some("hs"), Algorithm::HS256, c);
    let cases: Vec<(&str, Value)> = vec![
        (
            "iss an array naming us",
            with_claim("iss", json!(["https://evil.example", "https://gw.test"])),
        ),
        (
            "iss an array of ours",
            with_claim("iss", json!(["https://gw.test"])),
        ),
        ("iss a number", with_claim("iss", json!(1))),
        ("sub an array", with_claim("sub", json!(["alice"]))),
        ("sub empty", with_claim("sub", json!(""))),
        ("aud a number", with_claim("aud", json!(1))),
        ("aud an object", with_claim("aud", json!({"api": true}))),
        (
            "aud array with a non-string",
            with_claim("aud", json!([1, "api"])),
        ),
        ("exp a string", with_claim("exp", json!("9999999999"))),
        ("exp a boolean", with_claim("exp", json!(true))),
        ("exp an array", with_claim("exp", json!([now() + 300]))),
        ("exp null", with_claim("exp", Value::Null)),
        ("exp negative", with_claim("exp", json!(-1))),
        (
            "exp past year 9999",
            with_claim("exp", json!(253_402_300_800_i64)),
        ),
        ("exp huge", with_claim("exp", json!(1e300))),
        ("exp beyond u64", with_claim("exp", json!(1e20))),
        ("nbf a string", with_claim("nbf", json!("0"))),
        ("nbf negative", with_claim("nbf", json!(-5.5))),
        ("iat a string", with_claim("iat", json!(now().to_string()))),
        ("iat an object", with_claim("iat", json!({"t": now()}))),
        ("jti a number", with_claim("jti", json!(7))),
        ("client_id a number", with_claim("client_id", json!(7))),
    ];
    for (name, c) in &cases {
        assert_eq!(verdict(&v, &hs(c)), Err(TokenError::BadClaims), "{name}");
    }
    // A huge number in the JSON text itself (not representable as f64).
    let huge = sign_raw(
        &hs_header(json!({})),
        &claims()
            .to_string()
            .replacen(&format!("\"exp\":{}", now() + 300), "\"exp\":1e400", 1),
    );
    assert!(v.verify(&huge).is_err(), "exp 1e400");
    // Types are checked even where the value check is off.
    let keys = vec![(
        "hs".to_string(),
        Algorithm::HS256,
        decoding_key(Algorithm::HS256, &fixture("hs256.secret")).expect("hs"),
    )];
    let mut r = rules(&["api"]);
    r.verify_issuer = false;
    r.verify_audience = false;
    let lax = Verifier::new(r, keys);
    for (name, c) in [
        ("iss array", with_claim("iss", json!(["https://gw.test"]))),
        ("aud number", with_claim("aud", json!(5))),
    ] {
        assert_eq!(verdict(&lax, &hs(&c)), Err(TokenError::BadClaims), "{name}");
    }
}

#[test]
fn fractional_numeric_dates_are_accepted() {
    let v = verifier(Some(Duration::from_secs(600)));
    let n = now() as f64;
    let mut c = claims();
    c["iat"] = json!(n - 0.25);
    c["nbf"] = json!(n - 0.5);
    c["exp"] = json!(n + 300.75);
    let p = v
        .verify(&sign(Some("hs"), Algorithm::HS256, &c))
        .expect("fractional iat/nbf/exp (RFC 7519 §2)");
    assert_eq!(p.expires_at, u64::try_from(now() + 300).expect("u64"));
    // "iat": 1764600000.75 as in the issue, checked at a time just after it.
    let mut c = claims();
    c["iat"] = json!(1_764_600_000.75);
    c["exp"] = json!(1_764_600_300.5);
    let t = sign(Some("hs"), Algorithm::HS256, &c);
    assert!(v.verify_at(&t, 1_764_600_001.0).is_ok());
    // The fraction counts: exp + leeway reached → expired; iat past now + leeway → refused.
    assert_eq!(
        v.verify_at(&t, 1_764_600_360.5).map(|p| p.subject),
        Err(TokenError::Expired)
    );
    assert!(v.verify_at(&t, 1_764_600_360.4).is_ok());
    assert_eq!(
        v.verify_at(&t, 1_764_599_940.5).map(|p| p.subject),
        Err(TokenError::NotYetValid),
        "iat 60.25 s ahead with a 60 s leeway"
    );
    // Lifetime bound with fractions: 600.5 s > 600 s.
    let mut c = claims();
    c["iat"] = json!(n);
    c["exp"] = json!(n + 600.5);
    assert_eq!(
        verdict(&v, &sign(Some("hs"), Algorithm::HS256, &c)),
        Err(TokenError::LifetimeTooLong)
    );
}

#[test]
fn typ_is_allow_listed() {
    let v = verifier(None);
    let payload = claims().to_string();
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("application/jwt"),
        Some("at+jwt"),
        Some("AT+JWT"),
        Some("application/at+jwt"),
        Some("Application/AT+JWT"),
    ] {
        let h = hs_header(typ.map_or(json!({}), |t| json!({"typ": t})));
        let p = v
            .verify(&sign_raw(&h, &payload))
            .unwrap_or_else(|e| panic!("typ {typ:?}: {e}"));
        let at = typ.is_some_and(|t| t.to_ascii_lowercase().ends_with("at+jwt"));
        assert_eq!(
            p.expand_roles, !at,
            "typ {typ:?}: roles expanded unless at+jwt"
        );
    }
    for typ in [
        json!("dpop+jwt"),
        json!("secevent+jwt"),
        json!("logout+jwt"),
        json!("application/dpop+jwt"),
        json!("foo"),
        json!("text/jwt"),
        json!("at+jwt+x"),
        json!(""),
        json!(42),
        json!(["JWT"]),
        Value::Null,
    ] {
        let h = hs_header(json!({ "typ": typ }));
        assert_eq!(
            verdict(&v, &sign_raw(&h, &payload)),
            Err(TokenError::BadHeader),
            "typ {typ}"
        );
    }
}

#[test]
fn jwe_headers_and_shapes_are_refused() {
    let v = verifier(None);
    let payload = claims().to_string();
    for extra in [
        json!({"enc": "A256GCM"}),
        json!({"enc": "A128CBC-HS256", "typ": "JWT"}),
        json!({"zip": "DEF"}),
        json!({"crit": ["b64"], "b64": false}),
    ] {
        let h = hs_header(extra.clone());
        assert_eq!(
            verdict(&v, &sign_raw(&h, &payload)),
            Err(TokenError::BadHeader),
            "{extra}"
        );
    }
    // A JWE in compact form has five segments.
    let good = sign(Some("hs"), Algorithm::HS256, &claims());
    assert_eq!(
        verdict(&v, &format!("{good}.x.y")),
        Err(TokenError::Malformed)
    );
    // jku / x5u / jwk are never followed: the configured key still decides.
    let h = hs_header(
        json!({"jku": "https://evil.example/jwks", "x5u": "https://evil.example/c", "jwk": {"kty": "oct", "k": "AAAA"}}),
    );
    assert!(v.verify(&sign_raw(&h, &payload)).is_ok());
}

#[test]
fn members_named_twice_are_refused() {
    let v = verifier(None);
    let body = claims().to_string();
    let dup_iss = body.replacen('{', "{\"iss\":\"https://evil.example\",", 1);
    assert_eq!(
        verdict(&v, &sign_raw(&hs_header(json!({})), &dup_iss)),
        Err(TokenError::BadClaims),
        "iss twice"
    );
    let dup_alg = r#"{"alg":"none","alg":"HS256","kid":"hs"}"#;
    assert_eq!(
        verdict(&v, &sign_raw(dup_alg, &body)),
        Err(TokenError::Malformed),
        "alg twice"
    );
    assert_eq!(
        verdict(&v, &sign_raw(r#"["HS256"]"#, &body)),
        Err(TokenError::Malformed),
        "header not an object"
    );
    assert_eq!(
        verdict(&v, &sign_raw(&hs_header(json!({})), "[1]")),
        Err(TokenError::BadClaims),
        "claims not an object"
    );
}

#[test]
fn scope_and_roles_claims_are_configured() {
    let keys = || {
        vec![(
            "hs".to_string(),
            Algorithm::HS256,
            decoding_key(Algorithm::HS256, &fixture("hs256.secret")).expect("hs"),
        )]
    };
    let mut only_scope = rules(&["api"]);
    only_scope.mapping = ClaimMapping {
        scope_claims: vec![ClaimPath("scope".into())],
        roles_claim: ClaimPath("realm_access.roles".into()),
        expand_roles: false,
    };
    let v = Verifier::new(only_scope, keys());
    let mut c = without_claim("scope");
    c["scp"] = json!(["items:write"]);
    c["realm_access"] = json!({"roles": ["admin"]});
    let p = v
        .verify(&sign(Some("hs"), Algorithm::HS256, &c))
        .expect("valid");
    assert!(p.scopes.is_empty(), "scp is not read: {:?}", p.scopes);
    assert_eq!(
        p.roles,
        vec!["admin"],
        "roles from realm_access.roles, not roles"
    );
    assert!(!p.expand_roles, "expand_roles = false");
    c["scope"] = json!("items:read");
    let p = v
        .verify(&sign(Some("hs"), Algorithm::HS256, &c))
        .expect("valid");
    assert_eq!(p.scopes, vec!["items:read"]);
    // The default reads `scope`, then `scp`, and expands roles of non-at+jwt tokens.
    let d = Verifier::new(rules(&["api"]), keys());
    let mut c = without_claim("scope");
    c["scp"] = json!("a b");
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("hs".into());
    let t = encode(&h, &c, &EncodingKey::from_secret(&fixture("hs256.secret"))).expect("sign");
    let p = d.verify(&t).expect("valid");
    assert_eq!(p.scopes, vec!["a", "b"]);
    assert!(p.expand_roles);
}
