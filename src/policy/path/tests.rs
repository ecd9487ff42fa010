//! Unit tests of path canonicalization: a table of cases, canonical outputs as
//! fixed points, properties (idempotent, escaped dots and slashes never resolve, no
//! panics), and double-encoded separators refused.

use super::*;
use proptest::prelude::*;

use PathError::*;

/// (raw path, expected canonical path or error)
const CASES: &[(&str, Result<&str, PathError>)] = &[
    // plain paths stay as they are
    ("/", Ok("/")),
    ("/items", Ok("/items")),
    ("/items/42", Ok("/items/42")),
    ("/items/", Ok("/items/")),
    ("/a:b@c!$&'()*+,=", Ok("/a:b@c!$&'()*+,=")),
    // case is significant
    ("/ADMIN", Ok("/ADMIN")),
    // repeated slashes merge
    ("//admin", Ok("/admin")),
    ("///admin//x///", Ok("/admin/x/")),
    ("//", Ok("/")),
    // dot segments resolve, never above the root
    ("/public/../admin", Ok("/admin")),
    ("/public/./admin", Ok("/public/admin")),
    ("/../admin", Ok("/admin")),
    ("/../../../etc/passwd", Ok("/etc/passwd")),
    ("/a/b/..", Ok("/a/")),
    ("/a/b/.", Ok("/a/b/")),
    ("/a/..", Ok("/")),
    ("/.", Ok("/")),
    ("/..", Ok("/")),
    ("/a/.../b", Ok("/a/.../b")),
    ("/a/..b/c", Ok("/a/..b/c")),
    ("/public/..//admin", Ok("/admin")),
    // escaped unreserved characters are decoded, others normalised to upper case
    ("/%61dmin", Ok("/admin")),
    ("/%7euser", Ok("/~user")),
    ("/a%2Db", Ok("/a-b")),
    ("/a%2eb", Ok("/a.b")),
    ("/a%20b", Ok("/a%20b")),
    ("/a%3fb", Ok("/a%3Fb")),
    ("/caf%c3%a9", Ok("/caf%C3%A9")),
    ("/100%25", Ok("/100%25")),
    // characters outside pchar are encoded
    ("/a\"b", Ok("/a%22b")),
    ("/a|b", Ok("/a%7Cb")),
    ("/{x}", Ok("/%7Bx%7D")),
    ("/caf\u{e9}", Ok("/caf%C3%A9")),
    // refused: encoded separators
    ("/admin%2f..", Err(EncodedSeparator)),
    ("/admin%2F..%2Fsecret", Err(EncodedSeparator)),
    ("/public%5c..%5cadmin", Err(EncodedSeparator)),
    ("/a%00b", Err(EncodedSeparator)),
    // refused: encoded dot segments
    ("/%2e%2e/admin", Err(EncodedDotSegment)),
    ("/public/%2e%2e/admin", Err(EncodedDotSegment)),
    ("/public/.%2e/admin", Err(EncodedDotSegment)),
    ("/public/%2E/admin", Err(EncodedDotSegment)),
    ("/%2e", Err(EncodedDotSegment)),
    // refused: path parameters
    ("/admin;jsessionid=1", Err(PathParameter)),
    ("/public/..;/admin", Err(PathParameter)),
    ("/admin%3bx", Err(PathParameter)),
    // refused: backslashes, fragments, control characters, spaces
    ("/public\\..\\admin", Err(Backslash)),
    ("/a#frag", Err(Fragment)),
    ("/a\tb", Err(ControlChar)),
    ("/a\u{7f}", Err(ControlChar)),
    ("/a b", Err(ControlChar)),
    ("/a%0d%0aX-Injected:1", Err(ControlChar)),
    ("/a%7F", Err(ControlChar)),
    // refused: malformed escapes
    ("/a%", Err(BadEscape)),
    ("/a%2", Err(BadEscape)),
    ("/a%zz", Err(BadEscape)),
    ("/a%%32%65", Err(BadEscape)),
    // refused: bytes that are not UTF-8
    ("/a%ff", Err(NotUtf8)),
    ("/a%c3", Err(NotUtf8)),
    // refused: not an absolute path
    ("", Err(NotAbsolute)),
    ("admin", Err(NotAbsolute)),
    ("*", Err(NotAbsolute)),
];

#[test]
fn table() {
    assert!(CASES.len() >= 40);
    for (raw, want) in CASES {
        let got = canonicalize(raw);
        assert_eq!(got.as_deref().map_err(|e| *e), *want, "input {raw:?}");
    }
}

#[test]
fn canonical_outputs_are_fixed_points() {
    for (raw, want) in CASES {
        if let Ok(canon) = want {
            assert_eq!(canonicalize(canon).as_deref(), Ok(*canon), "from {raw:?}");
        }
    }
}

#[test]
fn split_keeps_the_query_untouched() {
    assert_eq!(split_target("/a/b?x=%2F..&y"), ("/a/b", Some("x=%2F..&y")));
    assert_eq!(split_target("/a"), ("/a", None));
    assert_eq!(split_target("/a?"), ("/a", Some("")));
}

fn has_dot_segment(p: &str) -> bool {
    p.split('/').any(|s| s == "." || s == "..")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The fast path (a path canonical already is returned as it is) never differs
    /// from the rules applied segment by segment.
    #[test]
    fn the_fast_path_agrees_with_the_rules(raw in "/?[a-z/.%2eE!'@=;~ \\\"<>-]{0,12}") {
        prop_assert_eq!(canonicalize(&raw), canonicalize_slowly(&raw));
        if is_canonical(&raw) {
            let slow = canonicalize_slowly(&raw);
            prop_assert_eq!(slow.as_deref(), Ok(raw.as_str()));
        }
    }

    #[test]
    fn idempotent_and_clean(raw in "/[a-zA-Z/.%25eE0-9;:~ \\\\#-]{0,24}") {
        if let Ok(canon) = canonicalize(&raw) {
            let again = canonicalize(&canon);
            prop_assert_eq!(again.as_deref(), Ok(canon.as_str()));
            prop_assert!(canon.starts_with('/'));
            prop_assert!(!canon.contains("//"), "double slash in {}", canon);
            prop_assert!(!has_dot_segment(&canon), "dot segment in {}", canon);
            prop_assert!(!canon.contains(';') && !canon.contains('\\'));
        }
    }

    #[test]
    fn escapes_of_dots_and_slashes_never_resolve(prefix in "/[a-z]{1,5}", n in 1usize..4) {
        let sneaky = format!("{prefix}/{}", "%2e%2e/".repeat(n));
        prop_assert!(canonicalize(&sneaky).is_err());
        let slashes = format!("{prefix}%2f..%2fadmin");
        prop_assert!(canonicalize(&slashes).is_err());
    }

    #[test]
    fn arbitrary_strings_never_panic(raw in "\\PC{0,40}") {
        let _ = canonicalize(&raw);
    }
}

#[test]
fn double_encoded_separators_refused() {
    for raw in [
        "/public/%252e%252e/admin",
        "/public/%252E%252E/admin",
        "/public%252fadmin",
        "/public%252Fadmin",
        "/public%255cadmin",
        "/public%255Cadmin",
        "/x%2500",
    ] {
        assert!(double_encoded(raw), "{raw}");
        assert_eq!(
            canonicalize_with(raw, true),
            Err(PathError::DoubleEncoded),
            "{raw}"
        );
        assert!(
            canonicalize_with(raw, false).is_ok(),
            "{raw} allowed when asked"
        );
    }
    // Spelled with escaped unreserved characters: double-encoded once canonical.
    for raw in [
        "/public/%25%32%65%25%32%65/admin",
        "/public%25%32%66admin",
        "/x%25%30%30",
    ] {
        assert!(!double_encoded(raw), "{raw}: not visible raw");
        assert_eq!(
            canonicalize_with(raw, true),
            Err(PathError::DoubleEncoded),
            "{raw}"
        );
    }
    for raw in ["/a%25b", "/100%25", "/%2525", "/%252a", "/%25"] {
        assert!(!double_encoded(raw), "{raw}");
        assert!(canonicalize_with(raw, true).is_ok(), "{raw}");
    }
}
