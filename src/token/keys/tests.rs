//! Unit tests of signing keys: generated keys sign and their public halves verify,
//! an existing RSA key publishes its JWK, bad material is refused, and an HMAC
//! secret is never published.

use super::*;

#[test]
fn generated_keys_sign_and_their_public_halves_verify() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let g = generate(alg).expect("generate");
        let (key, decoding) =
            SigningKey::from_private_pem("k", alg, g.private.as_bytes()).expect("load");
        let jwk = key.jwk.clone().expect("public jwk");
        assert_eq!(jwk["kid"], "k");
        assert_eq!(jwk["alg"], alg_name(alg));
        assert!(jwk.get("d").is_none(), "no private part in the JWK");
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some("k".into());
        let token = jsonwebtoken::encode(
            &header,
            &json!({"sub": "a", "exp": 4e9 as u64}),
            &key.encoding,
        )
        .expect("sign");
        let mut v = jsonwebtoken::Validation::new(alg);
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(&token, &decoding, &v).expect("derived key verifies");
        // The written public PEM verifies too.
        let public = g.public.expect("public pem");
        let from_file = match alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(public.as_bytes()),
            _ => DecodingKey::from_ed_pem(public.as_bytes()),
        }
        .expect("public pem parses");
        jsonwebtoken::decode::<Value>(&token, &from_file, &v).expect("public pem verifies");
    }
}

#[test]
fn existing_rsa_key_gives_its_public_jwk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let pem = std::fs::read(dir.join("rs256.key")).expect("fixture");
    let (key, _) = SigningKey::from_private_pem("r", Algorithm::RS256, &pem).expect("load");
    let jwk = key.jwk.expect("jwk");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["e"], "AQAB");
    assert!(jwk.get("d").is_none());
}

#[test]
fn wrong_or_broken_material_is_refused() {
    let es = generate(Algorithm::ES256).expect("generate").private;
    assert!(SigningKey::from_private_pem("k", Algorithm::EdDSA, es.as_bytes()).is_err());
    assert!(SigningKey::from_private_pem("k", Algorithm::RS256, es.as_bytes()).is_err());
    assert!(SigningKey::from_private_pem("k", Algorithm::ES256, b"hello").is_err());
    let public = generate(Algorithm::ES256)
        .expect("generate")
        .public
        .expect("pub");
    assert!(SigningKey::from_private_pem("k", Algorithm::ES256, public.as_bytes()).is_err());
    assert!(generate(Algorithm::RS256).is_err());
}

#[test]
fn hs256_secret_is_32_random_bytes_and_never_public() {
    let a = generate(Algorithm::HS256).expect("generate");
    let b = generate(Algorithm::HS256).expect("generate");
    assert!(a.public.is_none());
    assert_ne!(a.private, b.private);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(a.private.trim()).expect("b64").len(),
        32
    );
    assert!(
        SigningKey::from_secret("h", b"0123456789abcdef0123456789abcdef")
            .jwk
            .is_none()
    );
}
