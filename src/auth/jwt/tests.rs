use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

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
    Verifier::new(
        "https://gw.test".into(),
        vec!["api".into(), "other".into()],
        Duration::from_secs(60),
        max_lifetime,
        ClaimChecks::default(),
        keys,
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
    let v = Verifier::new(
        "https://gw.test".into(),
        vec!["api".into()],
        Duration::from_secs(60),
        Some(Duration::from_secs(600)),
        ClaimChecks::default(),
        keys,
    );
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
    let v2 = Verifier::new(
        "https://gw.test".into(),
        vec!["api".into()],
        Duration::from_secs(60),
        None,
        ClaimChecks::default(),
        two,
    );
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
    let v = Verifier::new(
        String::new(),
        vec![],
        Duration::from_secs(60),
        None,
        ClaimChecks {
            issuer: false,
            audience: false,
        },
        keys,
    );
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
