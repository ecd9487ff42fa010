//! Canonical request paths (DESIGN.md principle 1: one canonical path).
//!
//! The raw path of every request is turned, once, into a canonical form that routing,
//! policy, rate-limit keys, logs and the forwarded request all use. Anything whose
//! meaning could differ between Portcullis and an upstream is refused instead of being
//! guessed at, so that a route rule can never be bypassed by spelling.
//!
//! Rules, in order:
//! - the path must start with `/` (origin form; the query is split off beforehand and
//!   is never touched);
//! - `%XX` escapes must be well formed; an escaped unreserved character (`A-Z a-z 0-9
//!   - . _ ~`) is decoded, every other escape is kept with upper-case hex digits;
//! - refused: escaped `/` `\` NUL (`%2F` `%5C` `%00`), any control character raw or
//!   escaped, `;` raw or escaped (path parameters), raw `\`, raw `#` (fragment), raw
//!   space, a segment that is `.` or `..` only because of escapes (`%2e%2e`), and bytes
//!   that do not decode to UTF-8;
//! - other characters outside RFC 3986 `pchar` (`"`, `<`, `|`, non-ASCII…) are
//!   percent-encoded;
//! - repeated slashes are merged; `.` segments are dropped; `..` removes the previous
//!   segment and never climbs above the root;
//! - a trailing slash is kept (`/items/` and `/items` are different paths), and a path
//!   that ended in a dot segment keeps one (`/a/b/..` → `/a/`, as RFC 3986 §5.2.4).
//!
//! Paths stay case-sensitive (RFC 3986 §6.2.2.1): `/ADMIN` is not `/admin`.

use std::fmt::Write as _;

/// Why a path was refused; every variant answers `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target must be an absolute path starting with '/'")]
    NotAbsolute,
    #[error("malformed percent-encoding in the path")]
    BadEscape,
    #[error("encoded '/', '\\' or NUL in the path")]
    EncodedSeparator,
    #[error("encoded dot segment in the path")]
    EncodedDotSegment,
    #[error("path parameters (';') are not accepted")]
    PathParameter,
    #[error("backslash in the path")]
    Backslash,
    #[error("control character or space in the path")]
    ControlChar,
    #[error("fragment ('#') in the request target")]
    Fragment,
    #[error("the path does not decode to UTF-8")]
    NotUtf8,
    #[error("double-encoded dot, slash, backslash or NUL in the path")]
    DoubleEncoded,
}

/// Splits a request target (`/path?query`) into its path and raw query.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters allowed raw in a canonical segment besides the unreserved ones
/// (RFC 3986 sub-delims minus `;`, plus `:` and `@`).
fn is_raw_allowed(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_escaped(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "%{b:02X}");
}

/// What a raw segment turned out to be.
enum Segment {
    Keep,
    Current,
    Parent,
}

/// Appends `/` and the canonical form of one raw segment to `out`.
fn push_segment(out: &mut String, raw: &[u8]) -> Result<Segment, PathError> {
    let start = out.len();
    out.push('/');
    let mut escaped = false;
    let mut high_escape = false;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let (hi, lo) = match (raw.get(i + 1), raw.get(i + 2)) {
                    (Some(&h), Some(&l)) => (hex_val(h), hex_val(l)),
                    _ => (None, None),
                };
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi << 4 | lo;
                match v {
                    b'/' | b'\\' | 0 => return Err(PathError::EncodedSeparator),
                    b';' => return Err(PathError::PathParameter),
                    v if v < 0x20 || v == 0x7f => return Err(PathError::ControlChar),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        high_escape |= v >= 0x80;
                        push_escaped(out, v);
                    }
                }
                escaped = true;
                i += 3;
                continue;
            }
            b';' => return Err(PathError::PathParameter),
            b'\\' => return Err(PathError::Backslash),
            b'#' => return Err(PathError::Fragment),
            b if b <= 0x20 || b == 0x7f => return Err(PathError::ControlChar),
            b if is_unreserved(b) || is_raw_allowed(b) => out.push(char::from(b)),
            b => push_escaped(out, b),
        }
        i += 1;
    }
    let seg = &out.as_bytes()[start + 1..];
    if high_escape && !decodes_to_utf8(seg) {
        return Err(PathError::NotUtf8);
    }
    match (seg, escaped) {
        (b"." | b"..", true) => Err(PathError::EncodedDotSegment),
        (b".", false) => Ok(Segment::Current),
        (b"..", false) => Ok(Segment::Parent),
        _ => Ok(Segment::Keep),
    }
}

/// Whether a canonical segment (only well-formed `%XX` escapes) decodes to UTF-8.
fn decodes_to_utf8(seg: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(seg.len());
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == b'%' {
            let v = seg
                .get(i + 1..i + 3)
                .and_then(|h| Some(hex_val(h[0])? << 4 | hex_val(h[1])?));
            decoded.push(v.unwrap_or(0xff));
            i += 3;
        } else {
            decoded.push(seg[i]);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// Whether `raw` holds `%25` followed by `2e`, `2f`, `5c` or `00` (any case): a dot,
/// slash, backslash or NUL encoded twice. Such a path canonicalizes to a harmless
/// `%252E`, but an upstream (or a framework in front of it) that decodes twice sees
/// `.`, `/`, `\` or NUL and may route it elsewhere.
pub fn double_encoded(raw: &str) -> bool {
    raw.as_bytes().windows(5).any(|w| {
        w[0] == b'%'
            && w[1] == b'2'
            && w[2] == b'5'
            && matches!(
                (w[3].to_ascii_lowercase(), w[4].to_ascii_lowercase()),
                (b'2', b'e') | (b'2', b'f') | (b'5', b'c') | (b'0', b'0')
            )
    })
}

/// [`canonicalize`], refusing [`double_encoded`] paths when asked to
/// (`server.reject_double_encoding`, on by default). The canonical form is checked,
/// not the raw one: canonicalization decodes escaped unreserved characters, so
/// `%25%32%65` becomes `%252e` only then.
pub fn canonicalize_with(raw: &str, reject_double_encoding: bool) -> Result<String, PathError> {
    let canonical = canonicalize(raw)?;
    if reject_double_encoding && double_encoded(&canonical) {
        return Err(PathError::DoubleEncoded);
    }
    Ok(canonical)
}

/// Turns a raw request path (without the query) into its canonical form.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    if is_canonical(raw) {
        return Ok(raw.to_owned());
    }
    canonicalize_slowly(raw)
}

/// Bytes that a canonical segment holds as they are: unreserved and the allowed
/// sub-delims (no `%`: an escape takes the slow path).
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
                    | b':'
                    | b'@'
            );
        b += 1;
    }
    t
};

/// Whether `raw` is canonical already (most paths are), so that the rules above would
/// give it back unchanged: a leading `/`, only [`PLAIN`] bytes in segments, no empty
/// segment but a trailing one, no `.` or `..` segment.
fn is_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let plain_segment = |s: &[u8]| !s.is_empty() && s != b"." && s != b"..";
    let mut start = 1;
    for (i, &c) in b.iter().enumerate().skip(1) {
        if c == b'/' {
            if !plain_segment(&b[start..i]) {
                return false;
            }
            start = i + 1;
        } else if !PLAIN[usize::from(c)] {
            return false;
        }
    }
    let last = &b[start..];
    last.is_empty() || plain_segment(last)
}

/// The rules above, applied segment by segment.
fn canonicalize_slowly(raw: &str) -> Result<String, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut out = String::with_capacity(raw.len() + 8);
    // Where each kept segment starts in `out`, so that `..` can drop the last one.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    let mut parts = rest.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if part.is_empty() {
            trailing_slash = last;
            continue;
        }
        trailing_slash = false;
        let start = out.len();
        match push_segment(&mut out, part.as_bytes())? {
            Segment::Keep => starts.push(start),
            Segment::Current => {
                out.truncate(start);
                trailing_slash = last;
            }
            Segment::Parent => {
                out.truncate(starts.pop().unwrap_or(0));
                trailing_slash = last;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
