//! Helpers shared by the fuzz targets: named invariants, HS256 signing, fixtures.
//!
//! Every property a target asserts goes through [`check`] with a name. A failing check
//! panics (libFuzzer turns the panic into a crash and saves the input), unless its name
//! is listed in `PORTCULLIS_FUZZ_KNOWN` (comma-separated): that lets a developer keep
//! fuzzing past a bug that is known and being fixed elsewhere. CI never sets it.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Invariant names turned off by `PORTCULLIS_FUZZ_KNOWN`.
fn known() -> &'static [String] {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        std::env::var("PORTCULLIS_FUZZ_KNOWN")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// Asserts the invariant `name`; `detail` is only built when it fails.
#[track_caller]
pub fn check(name: &str, ok: bool, detail: impl FnOnce() -> String) {
    if !ok && !known().iter().any(|k| k == name) {
        panic!("invariant `{name}` violated: {}", detail());
    }
}

/// The test suite's HS256 secret (`tests/fixtures/hs256.secret`, trimmed as the
/// gateway trims it).
pub fn hs256_secret() -> Vec<u8> {
    let text = std::fs::read_to_string(test_fixture("hs256.secret")).expect("hs256.secret");
    text.trim_end().as_bytes().to_vec()
}

/// `tests/fixtures/NAME` (the keys the integration suite uses).
pub fn test_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// A compact JWS over exactly these header and claims bytes, HMAC-SHA256 with `key`.
pub fn sign_hs256(header_json: &[u8], claims_json: &[u8], key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(claims_json)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Whether `token` carries a valid HMAC-SHA256 signature with `key`.
pub fn hs256_valid(token: &str, key: &[u8]) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, input.as_bytes(), &sig).is_ok()
}

/// The JSON object of one base64url part of a compact JWS (0 = header, 1 = claims).
pub fn jws_part(token: &str, i: usize) -> Option<serde_json::Map<String, serde_json::Value>> {
    let part = token.split('.').nth(i)?;
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Seconds since the epoch, as a float (NumericDate).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Lower-case hex SHA-256 (API key and client secret digests).
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
