//! Bearer token extraction (RFC 6750 §2.1): the `Authorization` header only.

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Missing,
    /// A bearer token (the scheme name is case-insensitive, RFC 9110 §11.1).
    Token(&'a str),
    /// Present but not usable: another scheme, an empty or malformed token.
    Invalid,
    /// More than one `Authorization` header: ambiguous, refused with 400.
    Duplicate,
}

/// RFC 6750 b64token characters.
fn is_b64token(s: &str) -> bool {
    !s.is_empty()
        && s.trim_end_matches('=').bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Extracts the bearer token.
pub fn extract(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Bearer::Missing;
    };
    if values.next().is_some() {
        return Bearer::Duplicate;
    }
    let Ok(value) = value.to_str() else {
        return Bearer::Invalid;
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && is_b64token(token) => {
            Bearer::Token(token)
        }
        _ => Bearer::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(values: &[&'static str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn extraction() {
        assert_eq!(extract(&h(&[])), Bearer::Missing);
        assert_eq!(
            extract(&h(&["Bearer abc.def.ghi"])),
            Bearer::Token("abc.def.ghi")
        );
        assert_eq!(
            extract(&h(&["bearer abc.def.ghi"])),
            Bearer::Token("abc.def.ghi")
        );
        assert_eq!(extract(&h(&["BEARER abc"])), Bearer::Token("abc"));
        assert_eq!(extract(&h(&["Bearer a", "Bearer b"])), Bearer::Duplicate);
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer  abc",
            "Bearer a b",
            "Bearer a\"b",
            "Token abc",
        ] {
            assert_eq!(extract(&h(&[bad])), Bearer::Invalid, "{bad}");
        }
    }
}
