//! The canonical path (`src/policy/path.rs`): one spelling per resource, or a refusal.
//!
//! Input: a raw request target (path and optional query), as the request line carries
//! it. For every accepted path:
//! - `idempotent`: canonicalizing the result again gives the result;
//! - `shape`: it starts with `/`, has no `//`, no `.` or `..` segment, and only
//!   RFC 3986 `pchar`s, `/` and well-formed upper-case `%XX` escapes;
//! - `no-escaped-unreserved`: no escape of an unreserved character is left (so no
//!   `%2e`-made dot can be decoded into a dot segment by an upstream);
//! - `no-double-encoded-separator`: no `%25` followed by `2e`/`2f`/`5c`/`00` (an
//!   upstream that decodes twice would see a dot, slash, backslash or NUL; issue 9
//!   item 8);
//! - `meaning`: percent-decoding the result gives the same segments as resolving dot
//!   segments over the percent-decoded segments of the input (what an upstream that
//!   decodes sees is what the policy saw);
//! - `no-forbidden`: an accepted input has no raw `\`, `#`, `;`, space or control
//!   character in its path and no escaped `/`, `\`, NUL, `;` or control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{canonicalize, split_target};
use portcullis_fuzz::check;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_pchar_raw(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes one segment; `None` on a malformed escape.
fn decode(seg: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(seg.len());
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == b'%' {
            let hi = hex(*seg.get(i + 1)?)?;
            let lo = hex(*seg.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(seg[i]);
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4 over decoded segments, empty segments merged: what the path means.
fn meaning(path: &str) -> Option<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        match raw {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(decode(raw.as_bytes())?),
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let (path, _query) = split_target(target);
    let Ok(canon) = canonicalize(path) else {
        return;
    };

    check(
        "idempotent",
        canonicalize(&canon).as_deref() == Ok(canon.as_str()),
        || format!("{path:?} → {canon:?} → {:?}", canonicalize(&canon)),
    );

    let b = canon.as_bytes();
    let mut escapes_ok = true;
    let mut escaped_unreserved = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let digits = b.get(i + 1..i + 3);
                let upper = |d: &u8| d.is_ascii_digit() || (b'A'..=b'F').contains(d);
                match digits {
                    Some(d) if d.iter().all(upper) => {
                        let v = hex(d[0]).unwrap_or(0) << 4 | hex(d[1]).unwrap_or(0);
                        escaped_unreserved |= is_unreserved(v);
                    }
                    _ => escapes_ok = false,
                }
                i += 3;
            }
            c => {
                escapes_ok &= c == b'/' || is_pchar_raw(c);
                i += 1;
            }
        }
    }
    let segments_ok = canon.split('/').skip(1).all(|s| s != "." && s != "..");
    check(
        "shape",
        canon.starts_with('/') && !canon.contains("//") && segments_ok && escapes_ok,
        || format!("{path:?} → {canon:?}"),
    );
    check("no-escaped-unreserved", !escaped_unreserved, || {
        format!("{path:?} → {canon:?}")
    });
    let upper = canon.to_ascii_uppercase();
    check(
        "no-double-encoded-separator",
        !["%252E", "%252F", "%255C", "%2500"]
            .iter()
            .any(|s| upper.contains(s)),
        || format!("{path:?} → {canon:?}"),
    );

    check(
        "meaning",
        meaning(path).is_some() && meaning(path) == meaning(&canon),
        || {
            format!(
                "{path:?} means {:?}, {canon:?} means {:?}",
                meaning(path),
                meaning(&canon)
            )
        },
    );

    let raw_forbidden = path
        .bytes()
        .any(|c| matches!(c, b'\\' | b'#' | b';') || c <= 0x20 || c == 0x7f);
    let escaped_forbidden = path.split('/').any(|seg| {
        decode(seg.as_bytes()).is_some_and(|d| {
            // A segment whose decoded bytes hold a separator or control character only
            // because of an escape.
            let raw = seg.as_bytes();
            d.iter()
                .any(|&c| matches!(c, b'/' | b'\\' | 0 | b';') || c < 0x20 || c == 0x7f)
                && !raw.iter().any(|&c| c < 0x20 || c == 0x7f)
        })
    });
    check("no-forbidden", !raw_forbidden && !escaped_forbidden, || {
        format!("{path:?} was accepted as {canon:?}")
    });
});
