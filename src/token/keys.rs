//! Signing keys: loading private keys, their public JWKs, and new key pairs.
//!
//! A `[[tokens.keys]]` entry with `private_key` (PEM, PKCS#8; PKCS#1 also for RSA) can
//! sign; its public half is derived from it, verifies tokens and is published in the
//! JWKS. HS256 secrets sign and verify but never appear in the JWKS.
//! `portcullis keys generate` makes ES256 and EdDSA key pairs and HS256 secrets with
//! the system's CSPRNG (ring cannot generate RSA keys; the command says which
//! `openssl` line does).

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

/// A key that signs the tokens Portcullis issues.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public JWK (`None` for HS256: a secret is never published).
    pub jwk: Option<Value>,
}

impl fmt::Debug for SigningKey {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The body of the first PEM block of `text`, and its label.
pub fn pem_decode(text: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(text).map_err(|_| "not a PEM file (not text)".to_string())?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
        })
        .ok_or("not a PEM file (no -----BEGIN line)")?
        .to_string();
    let mut b64 = String::new();
    for line in lines {
        if line.starts_with("-----END ") {
            let der = STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| "the PEM body is not valid base64".to_string())?;
            return Ok((label, der));
        }
        b64.push_str(line);
    }
    Err("the PEM block has no -----END line".into())
}

/// Wraps DER in a PEM block.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The public half of a private key as a JWK and as a decoding key.
fn public_of(alg: Algorithm, label: &str, der: &[u8]) -> Result<(Value, DecodingKey), String> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match alg {
        Algorithm::RS256 => {
            let pair = match label {
                "PRIVATE KEY" => RsaKeyPair::from_pkcs8(der),
                "RSA PRIVATE KEY" => RsaKeyPair::from_der(der),
                other => return Err(format!("a \"{other}\" PEM block is not an RSA private key")),
            }
            .map_err(|e| format!("not a usable RSA private key: {e}"))?;
            let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
            let n = b64(&public.n);
            let e = b64(&public.e);
            let key = DecodingKey::from_rsa_components(&n, &e)
                .map_err(|e| format!("RSA public key: {e}"))?;
            Ok((json!({"kty": "RSA", "n": n, "e": e}), key))
        }
        Algorithm::ES256 => {
            if label != "PRIVATE KEY" {
                return Err("ES256 keys must be PKCS#8 (\"BEGIN PRIVATE KEY\"); convert with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`".into());
            }
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(|e| format!("not a usable P-256 private key: {e}"))?;
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err("unexpected P-256 public key encoding".into());
            }
            let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
            let key = DecodingKey::from_ec_components(&x, &y)
                .map_err(|e| format!("EC public key: {e}"))?;
            Ok((json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}), key))
        }
        Algorithm::EdDSA => {
            if label != "PRIVATE KEY" {
                return Err("EdDSA keys must be PKCS#8 (\"BEGIN PRIVATE KEY\")".into());
            }
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|e| format!("not a usable Ed25519 private key: {e}"))?;
            let x = b64(pair.public_key().as_ref());
            let key = DecodingKey::from_ed_components(&x)
                .map_err(|e| format!("Ed25519 public key: {e}"))?;
            Ok((json!({"kty": "OKP", "crv": "Ed25519", "x": x}), key))
        }
        other => Err(format!("{other:?} keys are not private-key signing keys")),
    }
}

impl SigningKey {
    /// A signing key from a private key in PEM, and the decoding key of its public half.
    pub fn from_private_pem(
        kid: &str,
        alg: Algorithm,
        pem: &[u8],
    ) -> Result<(SigningKey, DecodingKey), String> {
        let (label, der) = pem_decode(pem)?;
        let (mut jwk, decoding) = public_of(alg, &label, &der)?;
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => return Err("not a private-key algorithm".into()),
        }
        .map_err(|e| format!("cannot sign with this key: {e}"))?;
        if let Value::Object(m) = &mut jwk {
            m.insert("kid".into(), kid.into());
            m.insert("alg".into(), alg_name(alg).into());
            m.insert("use".into(), "sig".into());
        }
        Ok((
            SigningKey {
                kid: kid.to_string(),
                alg,
                encoding,
                jwk: Some(jwk),
            },
            decoding,
        ))
    }

    /// A signing key from an HMAC secret (at least 32 bytes, checked by the caller).
    pub fn from_secret(kid: &str, secret: &[u8]) -> SigningKey {
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            jwk: None,
        }
    }
}

/// The JOSE name of an algorithm Portcullis uses.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

/// A freshly generated key: the private file's contents and the public PEM (`None`
/// for an HMAC secret, which has no public half).
#[derive(Debug)]
pub struct Generated {
    pub private: String,
    pub public: Option<String>,
}

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Generates a new key for `alg`.
pub fn generate(alg: Algorithm) -> Result<Generated, String> {
    let rng = SystemRandom::new();
    let spki = |prefix: &[u8], key: &[u8]| {
        let mut der = prefix.to_vec();
        der.extend_from_slice(key);
        pem_encode("PUBLIC KEY", &der)
    };
    match alg {
        Algorithm::ES256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| "key generation failed".to_string())?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| "key generation failed".to_string())?;
            Ok(Generated {
                private: pem_encode("PRIVATE KEY", pkcs8.as_ref()),
                public: Some(spki(&P256_SPKI_PREFIX, pair.public_key().as_ref())),
            })
        }
        Algorithm::EdDSA => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| "key generation failed".to_string())?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| "key generation failed".to_string())?;
            Ok(Generated {
                private: pem_encode("PRIVATE KEY", pkcs8.as_ref()),
                public: Some(spki(&ED25519_SPKI_PREFIX, pair.public_key().as_ref())),
            })
        }
        Algorithm::HS256 => {
            let mut secret = [0u8; 32];
            rng.fill(&mut secret)
                .map_err(|_| "no randomness".to_string())?;
            Ok(Generated {
                private: format!("{}\n", URL_SAFE_NO_PAD.encode(secret)),
                public: None,
            })
        }
        Algorithm::RS256 => Err(
            "Portcullis does not generate RSA keys; make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out rs256.pem` (ES256 or EdDSA keys are smaller and faster)"
                .into(),
        ),
        other => Err(format!("{other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests;
