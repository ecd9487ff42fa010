//! Bearer token extraction (RFC 6750 §2.1): the `Authorization` header only.
//!
//! A header that is there but does not hold `Bearer <token>` is a malformed request
//! (RFC 6750 §3.1 `invalid_request`, `400`), not an invalid token: the answer says
//! which problem it has ([`Malformed::description`]), so that a client that sends a
//! bare token, `Basic` credentials or a stray space learns what to fix. A token that
//! is well-formed but not valid stays `401 invalid_token`, whose description never
//! says which check failed.

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Missing,
    /// A bearer token (the scheme name is case-insensitive, RFC 9110 §11.1).
    Token(&'a str),
    /// Present but not `Bearer <token>`: refused `400 invalid_request`.
    Malformed(Malformed),
}

/// Why an `Authorization` header is not a bearer credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// More than one `Authorization` header: ambiguous.
    Duplicate,
    /// An empty header value.
    Empty,
    /// A single word that is not `Bearer`: a token sent without its scheme.
    NoScheme,
    /// Another scheme (`Basic`, `Digest`, `Token`…) where a bearer token is expected.
    OtherScheme,
    /// `Bearer` and nothing after it.
    EmptyToken,
    /// More than one space (or a tab) between `Bearer` and the token.
    ExtraSpace,
    /// A space inside the token: more than one part after `Bearer`.
    ExtraParts,
    /// A character outside RFC 6750's `b64token` (quotes, commas, non-ASCII…).
    BadCharacter,
}

impl Malformed {
    /// What is wrong, for the client: `error_description` in the body and in
    /// `WWW-Authenticate`. Never echoes the header; no `"` or `\` (RFC 6750 §3).
    pub fn description(self) -> &'static str {
        match self {
            Malformed::Duplicate => "more than one Authorization header",
            Malformed::Empty => "the Authorization header is empty; expected Bearer <token>",
            Malformed::NoScheme => {
                "the Authorization header has no scheme; expected Bearer <token>"
            }
            Malformed::OtherScheme => {
                "the Authorization scheme is not Bearer; expected Bearer <token>"
            }
            Malformed::EmptyToken => "the bearer token is empty; expected Bearer <token>",
            Malformed::ExtraSpace => {
                "more than one space between Bearer and the token; expected exactly one"
            }
            Malformed::ExtraParts => {
                "the Authorization header has more than one part after Bearer; expected one token"
            }
            Malformed::BadCharacter => {
                "the bearer token has a character outside the RFC 6750 token syntax"
            }
        }
    }
}

/// RFC 6750 b64token characters: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
/// "/" ) *"="` — what [`extract`] returns as a token, and all the verified-token cache
/// accepts as a key (`auth/cache.rs`).
pub(crate) fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The characters of `b64token` before its `=` padding, as a table.
static B64TOKEN_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Extracts the bearer token.
pub fn extract(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Bearer::Missing;
    };
    if values.next().is_some() {
        return Bearer::Malformed(Malformed::Duplicate);
    }
    if let Some(token) = usual(value.as_bytes()) {
        return Bearer::Token(token);
    }
    match value.to_str() {
        Ok(v) => parse(v),
        // obs-text (bytes ≥ 0x80): never part of a token.
        Err(_) => Bearer::Malformed(Malformed::BadCharacter),
    }
}

/// The usual header, read as bytes: `Bearer` in any case, one space, and a token of
/// b64token characters without padding, one table lookup per byte (the table refuses
/// obs-text too, so the value needs no separate check that it is visible ASCII).
/// Every JWT takes this path; anything else (`None`) takes [`parse`], which it agrees
/// with wherever it answers.
fn usual(value: &[u8]) -> Option<&str> {
    let token = after_scheme(value)?;
    if !token.iter().all(|&b| B64TOKEN_CHAR[usize::from(b)]) {
        return None;
    }
    std::str::from_utf8(token).ok()
}

/// What follows `Bearer ` (any case, one space), when something does.
fn after_scheme(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

/// The bytes after `Bearer ` in the request's only `Authorization` header, not checked
/// any further: for a lookup among tokens verified before (`auth/cache.rs`). Bytes
/// identical to a token that [`extract`] once returned are extracted the same way
/// again, so a hit needs no parse; anything else must still go through [`extract`].
#[cfg(feature = "server")]
pub(crate) fn raw(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    after_scheme(value.as_bytes())
}

/// `Bearer SP b64token`, the scheme in any case. Leading and trailing whitespace is
/// not part of a field value (RFC 9110 §5.5); hyper strips it already.
fn parse(value: &str) -> Bearer<'_> {
    let value = value.trim_matches(is_space);
    if value.is_empty() {
        return Bearer::Malformed(Malformed::Empty);
    }
    let Some(at) = value.find(is_space) else {
        return Bearer::Malformed(if value.eq_ignore_ascii_case("bearer") {
            Malformed::EmptyToken
        } else {
            Malformed::NoScheme
        });
    };
    let (scheme, rest) = value.split_at(at);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Malformed(Malformed::OtherScheme);
    }
    // `rest` starts with the separator and, trimmed above, ends with a token.
    let Some(token) = rest.strip_prefix(' ') else {
        return Bearer::Malformed(Malformed::ExtraSpace);
    };
    if token.starts_with(is_space) {
        return Bearer::Malformed(Malformed::ExtraSpace);
    }
    if token.contains(is_space) {
        return Bearer::Malformed(Malformed::ExtraParts);
    }
    if !is_b64token(token) {
        return Bearer::Malformed(Malformed::BadCharacter);
    }
    Bearer::Token(token)
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
        assert_eq!(
            extract(&h(&["Bearer a-b_c~d+e/f=="])),
            Bearer::Token("a-b_c~d+e/f==")
        );
        // Whitespace around the value is not part of it (hyper strips it already).
        assert_eq!(extract(&h(&[" Bearer abc "])), Bearer::Token("abc"));
    }

    #[test]
    fn each_malformation_is_named() {
        use Malformed::*;
        let cases = [
            (&["Bearer a", "Bearer b"][..], Duplicate),
            (&["Bearer a", "Basic b"][..], Duplicate),
            (&[""][..], Empty),
            (&["   "][..], Empty),
            (&["abc.def.ghi"][..], NoScheme),
            (&["eyJhbGciOiJIUzI1NiJ9.e30.sig"][..], NoScheme),
            (&["Basic dXNlcjpwYXNz"][..], OtherScheme),
            (&["Token abc"][..], OtherScheme),
            (&["Bearer: abc"][..], OtherScheme),
            (&["Bearer"][..], EmptyToken),
            (&["bearer"][..], EmptyToken),
            (&["Bearer "][..], EmptyToken),
            (&["Bearer  abc"][..], ExtraSpace),
            (&["Bearer\tabc"][..], ExtraSpace),
            (&["Bearer a b"][..], ExtraParts),
            (&["Bearer a\tb"][..], ExtraParts),
            (&["Bearer a\"b"][..], BadCharacter),
            (&["Bearer a,b"][..], BadCharacter),
            (&["Bearer ==="][..], BadCharacter),
            (&["Bearer a=b"][..], BadCharacter),
        ];
        for (values, want) in cases {
            assert_eq!(extract(&h(values)), Bearer::Malformed(want), "{values:?}");
        }
        let mut m = HeaderMap::new();
        m.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").expect("obs-text"),
        );
        assert_eq!(extract(&m), Bearer::Malformed(BadCharacter));
    }

    #[test]
    fn the_fast_table_agrees_with_the_grammar() {
        for b in 0u8..=127 {
            let s = format!("a{}a", char::from(b));
            let want = b != b'=' && is_b64token(&s);
            assert_eq!(B64TOKEN_CHAR[usize::from(b)], want, "byte {b}");
        }
        assert!(B64TOKEN_CHAR[128..].iter().all(|&ok| !ok));
    }

    proptest::proptest! {
        /// The byte-level path answers exactly what the whole parse answers, for any
        /// header value (visible ASCII and spaces mostly, to reach both paths).
        #[test]
        fn the_usual_path_agrees_with_the_parse(
            scheme in "(?i:bearer)|Basic|[A-Za-z]{0,7}",
            sep in "[ \t]{0,2}",
            token in "[A-Za-z0-9._~+/=\x22, -]{0,40}|[\x21-\x7e]{0,12}",
            tail in proptest::option::of("[ \t\u{80}-\u{ff}]{1,2}"),
        ) {
            let mut bytes = format!("{scheme}{sep}{token}").into_bytes();
            if let Some(t) = &tail {
                bytes.extend(t.chars().map(|c| u8::try_from(u32::from(c) & 0xff).unwrap_or(0)));
            }
            let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()) };
            let exact = match value.to_str() {
                Ok(v) => parse(v),
                Err(_) => Bearer::Malformed(Malformed::BadCharacter),
            };
            if let Some(t) = usual(value.as_bytes()) {
                proptest::prop_assert_eq!(&Bearer::Token(t), &exact);
            }
            let mut m = HeaderMap::new();
            m.insert(AUTHORIZATION, value.clone());
            proptest::prop_assert_eq!(extract(&m), exact);
        }
    }

    #[test]
    fn the_usual_path_takes_a_jwt_and_leaves_the_rest() {
        let jwt = b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_";
        assert_eq!(
            usual(jwt),
            Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_")
        );
        assert_eq!(usual(b"bEaReR abc"), Some("abc"));
        for other in [
            &b"Bearer abc=="[..],
            b"Bearer  abc",
            b"Bearer\tabc",
            b"Bearer ",
            b"Bearer",
            b"Basic1 abc",
            b"Bearer caf\xc3\xa9",
            b" Bearer abc",
        ] {
            assert_eq!(usual(other), None, "{other:?}");
        }
    }

    #[cfg(feature = "server")]
    proptest::proptest! {
        /// What the cache relies on: for any key it can hold (a b64token), a header
        /// whose raw bytes are that key is extracted as exactly that token.
        #[test]
        fn a_raw_match_on_a_cacheable_token_is_what_extract_returns(
            key in "[A-Za-z0-9._~+/-]{1,30}={0,2}",
            scheme in "(?i:bearer)|Bearer|Basic",
            sep in "[ \t]{1,2}",
            pre in "[ \t]{0,1}",
            post in "[ \t]{0,1}",
            twice in proptest::bool::weighted(0.2),
        ) {
            let Ok(value) = HeaderValue::from_str(&format!("{pre}{scheme}{sep}{key}{post}")) else {
                return Ok(());
            };
            let mut m = HeaderMap::new();
            m.append(AUTHORIZATION, value.clone());
            if twice {
                m.append(AUTHORIZATION, value);
            }
            proptest::prop_assert!(is_b64token(&key));
            if raw(&m) == Some(key.as_bytes()) {
                proptest::prop_assert_eq!(extract(&m), Bearer::Token(&key));
            }
        }
    }

    #[test]
    #[cfg(feature = "server")]
    fn raw_is_what_follows_the_scheme_of_the_only_header() {
        assert_eq!(raw(&h(&["Bearer a.b.c"])), Some(&b"a.b.c"[..]));
        assert_eq!(raw(&h(&["bearer a,b"])), Some(&b"a,b"[..]));
        assert_eq!(raw(&h(&["Bearer  a"])), Some(&b" a"[..]));
        assert_eq!(raw(&h(&["Bearer a", "Bearer a"])), None);
        assert_eq!(raw(&h(&["Bearer "])), None);
        assert_eq!(raw(&h(&["Basic a"])), None);
        assert_eq!(raw(&h(&[])), None);
        // Whatever `extract` returns for the usual header is exactly `raw`.
        let m = h(&["Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"]);
        assert_eq!(extract(&m), Bearer::Token("eyJhbGciOiJIUzI1NiJ9.e30.c2ln"));
        assert_eq!(raw(&m), Some(&b"eyJhbGciOiJIUzI1NiJ9.e30.c2ln"[..]));
    }

    #[test]
    fn descriptions_are_distinct_and_fit_a_quoted_string() {
        use Malformed::*;
        let all = [
            Duplicate,
            Empty,
            NoScheme,
            OtherScheme,
            EmptyToken,
            ExtraSpace,
            ExtraParts,
            BadCharacter,
        ];
        let mut seen = std::collections::HashSet::new();
        for m in all {
            let d = m.description();
            assert!(seen.insert(d), "{m:?}: the same text as another");
            // RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E.
            assert!(
                d.bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{m:?}: {d}"
            );
        }
    }
}
