//! The sign-in cookie never crosses the gateway: it is removed from the `Cookie`
//! header of every forwarded request (an upstream, its logs or a header-echo endpoint
//! would otherwise hold the user's sign-in session), and an upstream's `Set-Cookie`
//! for that name is dropped (it could plant or replace a session).
//!
//! Cheap when absent: the `Cookie` values are searched for the name's bytes first,
//! and rebuilt only when it is there.

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

use crate::token::browser::session::{COOKIE_PLAIN, COOKIE_TLS};

fn is_ours(name: &[u8]) -> bool {
    let name = name.trim_ascii();
    name == COOKIE_PLAIN.as_bytes() || name == COOKIE_TLS.as_bytes()
}

fn mentions(v: &HeaderValue) -> bool {
    v.as_bytes()
        .windows(COOKIE_PLAIN.len())
        .any(|w| w == COOKIE_PLAIN.as_bytes())
}

/// Removes the sign-in cookie from a request's `Cookie` headers.
pub fn strip_request(h: &mut HeaderMap) {
    if !h.get_all(COOKIE).iter().any(mentions) {
        return;
    }
    let kept: Vec<HeaderValue> = h
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| {
            let pairs: Vec<&[u8]> = v
                .as_bytes()
                .split(|b| *b == b';')
                .filter(|p| {
                    let name = p.split(|b| *b == b'=').next().unwrap_or(p);
                    !is_ours(name) && !p.trim_ascii().is_empty()
                })
                .map(<[u8]>::trim_ascii)
                .collect();
            (!pairs.is_empty())
                .then(|| HeaderValue::from_bytes(&pairs.join(&b"; "[..])).ok())
                .flatten()
        })
        .collect();
    h.remove(COOKIE);
    for v in kept {
        h.append(COOKIE, v);
    }
}

/// Drops an upstream's `Set-Cookie` for the sign-in cookie.
pub fn strip_response(h: &mut HeaderMap) {
    if !h.get_all(SET_COOKIE).iter().any(mentions) {
        return;
    }
    let kept: Vec<HeaderValue> = h
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| {
            let b = v.as_bytes();
            let name = b.split(|c| *c == b'=').next().unwrap_or(b);
            !is_ours(name)
        })
        .cloned()
        .collect();
    h.remove(SET_COOKIE);
    for v in kept {
        h.append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_cookie_is_stripped_both_ways() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; portcullis-session=s3; b=2"),
        );
        h.append(
            COOKIE,
            HeaderValue::from_static("__Host-portcullis-session=s4"),
        );
        h.append(COOKIE, HeaderValue::from_static("xportcullis-session=keep"));
        strip_request(&mut h);
        let left: Vec<_> = h
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        assert_eq!(left, vec!["a=1; b=2", "xportcullis-session=keep"]);
        let mut r = HeaderMap::new();
        r.append(
            SET_COOKIE,
            HeaderValue::from_static("portcullis-session=evil; Path=/"),
        );
        r.append(SET_COOKIE, HeaderValue::from_static("app=1; Path=/"));
        strip_response(&mut r);
        let left: Vec<_> = r.get_all(SET_COOKIE).iter().collect();
        assert_eq!(left, vec![HeaderValue::from_static("app=1; Path=/")]);
    }
}
