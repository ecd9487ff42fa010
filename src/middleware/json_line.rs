//! The pieces of an access line, appended to one buffer without `fmt`: a JSON string
//! (escaped by serde_json only when it needs escaping), a number, hex, an IP address
//! and the RFC 3339 timestamp with microseconds. One line per request is written by
//! default, so these are on the hot path: `write!` of numbers and addresses,
//! `serde_json` on every string, a fresh timestamp `String` and a buffer per line cost
//! ~4 k instructions per request (`bench/instructions.sh`, target `full`; figures in
//! `bench/README.md`).

use std::cell::Cell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `,"key":"value"`, the value escaped as JSON. Inlined, so that the key's copy is
/// a constant one.
#[inline(always)]
pub fn push_str(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    if needs_escape(value.as_bytes()) {
        escaped(out, value);
    } else {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
}

/// serde_json escapes quotes, backslashes and control characters.
#[cold]
fn escaped(out: &mut Vec<u8>, value: &str) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Whether `s` holds a byte JSON must escape: below 0x20, `"` or `\`. Eight bytes at
/// a time: a word has a byte below `n` (n ≤ 128) exactly when `(x - n·1) & !x & 0x80·1`
/// is not zero, and a byte equal to `c` exactly when `x ^ c·1` has a zero byte. A
/// borrow can only carry upward from a byte that is itself below `n`, so the test is
/// exact for the word as a whole (bytes ≥ 0x80, UTF-8, never match).
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        if below(x, 0x20) | below(x ^ (ONES * 0x22), 1) | below(x ^ (ONES * 0x5c), 1) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `,"key":value`.
#[inline(always)]
pub fn push_num(out: &mut Vec<u8>, key: &str, value: u64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    push_digits(out, value);
}

/// `,"key":"hex"`, lower-case, two digits per byte.
pub fn push_hex(out: &mut Vec<u8>, key: &str, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    for pair in bytes.chunks(16) {
        let mut hex = [0u8; 32];
        for (b, h) in pair.iter().zip(hex.chunks_exact_mut(2)) {
            h[0] = DIGITS[usize::from(b >> 4)];
            h[1] = DIGITS[usize::from(b & 0xf)];
        }
        out.extend_from_slice(&hex[..pair.len() * 2]);
    }
    out.push(b'"');
}

/// `,"key":"address"`, as `IpAddr`'s `Display` writes it (IPv4 without `fmt`).
pub fn push_ip(out: &mut Vec<u8>, key: &str, ip: IpAddr) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    match ip {
        IpAddr::V4(v4) => {
            // At most `255.255.255.255`: formed in place, appended once.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
                if h > 0 {
                    text[len] = b'0' + h;
                    len += 1;
                }
                if h > 0 || t > 0 {
                    text[len] = b'0' + t;
                    len += 1;
                }
                text[len] = b'0' + o;
                len += 1;
            }
            out.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

fn push_digits(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// The first second RFC 3339 (and humantime) cannot write: 10000-01-01T00:00:00Z.
const YEAR_10000: u64 = 253_402_300_800;

/// `now` as RFC 3339 in UTC with microseconds (`2026-12-07T15:40:12.123456Z`), the
/// date and time of day formatted once per second per thread. A clock outside years
/// 1970–9999 is written as the nearer end of that range (humantime panics beyond it).
pub fn push_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let last = Duration::from_secs(YEAR_10000) - Duration::from_micros(1);
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(last);
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let text =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
        let Some(p) = text.as_bytes().get(..19) else {
            // Not reached: in range, the seconds form is always 20 bytes.
            out.extend_from_slice(text.as_bytes());
            return;
        };
        prefix.copy_from_slice(p);
        SECOND.set((secs, prefix));
    }
    out.extend_from_slice(&prefix);
    out.push(b'.');
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for d in digits.iter_mut().rev() {
        // Below 10, as above.
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(value: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, "k", value);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn strings_that_need_escaping_are_escaped() {
        assert_eq!(field("plain /path"), r#","k":"plain /path""#);
        assert_eq!(field("a\"b\\c\nd\u{1}"), r#","k":"a\"b\\c\nd\u0001""#);
        assert_eq!(field(""), r#","k":"""#);
    }

    #[test]
    fn each_escaped_byte_is_found_in_every_position() {
        for bad in (0u8..0x20).chain([b'"', b'\\']) {
            for len in 1..=24 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = bad;
                    assert!(needs_escape(&v), "byte {bad:#x} at {at} of {len}");
                }
            }
        }
        // Neighbours of the escaped bytes, and UTF-8, pass.
        assert!(!needs_escape(
            " !#$[]^_`~\u{7f}é€ plain text of some length".as_bytes()
        ));
    }

    #[test]
    fn numbers_print_as_display_does() {
        for n in [0, 7, 10, 99, 1_000, 123_456_789, u64::MAX] {
            let mut out = Vec::new();
            push_num(&mut out, "n", n);
            assert_eq!(out, format!(",\"n\":{n}").into_bytes());
        }
    }

    #[test]
    fn timestamps_match_humantime_across_seconds() {
        let base = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        for (s, us) in [
            (0, 0),
            (0, 999_999),
            (1, 5),
            (86_400 * 366, 120_000),
            (0, 42),
        ] {
            let t = base + Duration::from_secs(s) + Duration::from_micros(us);
            let mut out = Vec::new();
            push_timestamp(&mut out, t);
            let want = humantime::format_rfc3339_micros(t).to_string();
            assert_eq!(String::from_utf8(out).expect("utf-8"), want);
        }
    }

    #[test]
    fn clocks_outside_the_writable_years_are_clamped() {
        let write = |t: SystemTime| {
            let mut out = Vec::new();
            push_timestamp(&mut out, t);
            String::from_utf8(out).expect("utf-8")
        };
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(write(before), "1970-01-01T00:00:00.000000Z");
        let after = UNIX_EPOCH + Duration::from_secs(YEAR_10000 + 86_400);
        assert_eq!(write(after), "9999-12-31T23:59:59.999999Z");
        // The cache does not carry the clamp over to an ordinary time.
        let t = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        assert_eq!(write(t), humantime::format_rfc3339_micros(t).to_string());
    }

    #[test]
    fn ipv4_octets_of_every_width_are_displayed() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.20.199.250",
            "127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            let mut out = Vec::new();
            push_ip(&mut out, "ip", ip);
            assert_eq!(out, format!(",\"ip\":\"{ip}\"").into_bytes());
        }
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        let mut out = Vec::new();
        push_hex(&mut out, "t", &[0x00, 0x0f, 0xa0, 0xff]);
        assert_eq!(out, br#","t":"000fa0ff""#.to_vec());
    }

    proptest! {
        /// Addresses read as `IpAddr`'s `Display` writes them, IPv4 and IPv6.
        #[test]
        fn addresses_are_displayed(ip in any::<IpAddr>()) {
            let mut out = Vec::new();
            push_ip(&mut out, "ip", ip);
            prop_assert_eq!(String::from_utf8(out).expect("utf-8"), format!(",\"ip\":\"{ip}\""));
        }

        /// The word-at-a-time test agrees with the byte test, in every position.
        #[test]
        fn the_escape_test_is_exact(s in proptest::collection::vec(any::<u8>(), 0..40),
                                    mostly in "[ -~]{0,30}[\\x00-\\x1f\"\\\\]?[ -~é]{0,30}") {
            let bytewise = |v: &[u8]| v.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(needs_escape(&s), bytewise(&s));
            prop_assert_eq!(needs_escape(mostly.as_bytes()), bytewise(mostly.as_bytes()));
        }

        /// Every string comes out as the JSON serde_json would write for it.
        #[test]
        fn strings_are_json(value in any::<String>()) {
            let mut out = Vec::new();
            push_str(&mut out, "k", &value);
            let mut want = b",\"k\":".to_vec();
            serde_json::to_writer(&mut want, &value).expect("json");
            prop_assert_eq!(out, want);
        }

        #[test]
        fn timestamps_are_humantime(secs in 0u64..YEAR_10000, micros in 0u32..1_000_000) {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros));
            let mut out = Vec::new();
            push_timestamp(&mut out, t);
            prop_assert_eq!(String::from_utf8(out).expect("utf-8"), humantime::format_rfc3339_micros(t).to_string());
        }
    }
}
