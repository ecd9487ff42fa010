//! `x-request-id`: kept when the client (or a proxy in front) sent a sane one,
//! generated otherwise, and echoed on every response, errors included.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-sent id is kept if it is 1–128 characters of `[A-Za-z0-9._:-]`; anything
/// else (spaces, quotes, control characters, huge values) is replaced so that it can
/// be logged and echoed safely.
fn is_valid(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

/// 32 hex digits: a random per-process prefix and a counter. Unique, cheap, and not a
/// secret (request ids are not meant to be unguessable).
pub fn generate() -> HeaderValue {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let s = format!("{seed:016x}{n:016x}");
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The request's id: the client's if valid, else a new one (also written back into
/// the request headers so the upstream sees the same id).
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(v), None) = (values.next(), values.next()) {
        if is_valid(v) {
            return v.clone();
        }
    }
    let id = generate();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid() {
        let mut h = HeaderMap::new();
        h.insert(
            X_REQUEST_ID.clone(),
            HeaderValue::from_static("abc-123_x.y:z"),
        );
        assert_eq!(ensure(&mut h), "abc-123_x.y:z");

        for bad in ["has space", "quote\"", "", &"x".repeat(129)] {
            let mut h = HeaderMap::new();
            h.insert(
                X_REQUEST_ID.clone(),
                HeaderValue::from_str(bad).expect("hv"),
            );
            let id = ensure(&mut h);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
            assert_eq!(h[&X_REQUEST_ID], id);
        }
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID.clone(), HeaderValue::from_static("a"));
        h.append(X_REQUEST_ID.clone(), HeaderValue::from_static("b"));
        assert_eq!(ensure(&mut h).len(), 32, "two ids: neither is trusted");
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
    }

    #[test]
    fn generated_ids_are_unique() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
    }
}
