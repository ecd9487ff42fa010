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
    static PREFIX: OnceLock<[u8; 16]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        hex(h.finish())
    });
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(prefix);
    id[16..].copy_from_slice(&hex(COUNTER.fetch_add(1, Ordering::Relaxed)));
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// 16 lowercase hex digits, by hand: `format!` costs more than the rest of the id.
fn hex(mut n: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; 16];
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
    out
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
    fn hex_digits_are_big_endian_and_padded() {
        assert_eq!(&hex(0), b"0000000000000000");
        assert_eq!(&hex(0x1f), b"000000000000001f");
        assert_eq!(&hex(u64::MAX), b"ffffffffffffffff");
        assert_eq!(&hex(0x0123_4567_89ab_cdef), b"0123456789abcdef");
    }

    #[test]
    fn generated_ids_are_unique() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            assert!(id
                .as_bytes()
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        }
        // The same process prefix, then a counter that only grows.
        assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16]);
        let counter = |v: &HeaderValue| {
            let hex = std::str::from_utf8(&v.as_bytes()[16..]).expect("ascii");
            u64::from_str_radix(hex, 16).expect("hex")
        };
        assert!(counter(&b) > counter(&a));
    }
}
