//! Tokens signed with the HS256 fixture (tests/fixtures/hs256.secret), the policy the
//! examples ship with, and an HTTP client.

use portcullis::embed::AuthLayer;

pub const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `examples/auth.toml`, as the examples load it.
pub fn layer() -> AuthLayer {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auth.toml");
    AuthLayer::from_file(path.as_ref()).unwrap_or_else(|e| panic!("{e}"))
}

/// Signs `claims` with the fixture key; `typ` in the header when given.
pub fn sign(claims: &serde_json::Value, typ: Option<&str>) -> String {
    let secret = std::fs::read(format!("{FIX}/hs256.secret")).unwrap_or_else(|e| panic!("{e}"));
    let secret = String::from_utf8_lossy(&secret).trim_end().to_string();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    header.typ = typ.map(str::to_string);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("sign: {e}"))
}

/// A valid token for subject alice with `scope`.
pub fn token(scope: &str) -> String {
    sign(&claims(scope, "api", now() + 300), None)
}

pub fn claims(scope: &str, aud: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({"iss": "https://gw.test", "aud": aud, "sub": "alice",
        "exp": exp, "iat": now().min(exp), "scope": scope})
}

/// The tokens every protected route must refuse, with what they are.
pub fn refused_tokens(scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("expired", sign(&claims(scope, "api", now() - 3600), None)),
        (
            "wrong aud",
            sign(&claims(scope, "other", now() + 300), None),
        ),
        (
            "typ dpop+jwt",
            sign(&claims(scope, "api", now() + 300), Some("dpop+jwt")),
        ),
        ("not a JWT", "abc.def.ghi".to_string()),
        (
            "wrong issuer",
            sign(
                &serde_json::json!({"iss": "https://evil.test", "aud": "api", "sub": "alice",
                    "exp": now() + 300, "scope": scope}),
                None,
            ),
        ),
    ]
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}
