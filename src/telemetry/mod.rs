//! Trace context (W3C Trace Context): every request gets a trace id and a span id of
//! its own. A `traceparent` is continued when the peer may set it
//! (`[telemetry] traceparent`: `"trusted"`, the default, believes the peers in
//! `server.trusted_proxies`; `"any"` everyone; `"off"` turns tracing off) and a new
//! trace is started otherwise, so that a client cannot choose the ids the logs are
//! joined on. The upstream receives `traceparent` naming the gateway's span as its
//! parent (and the `tracestate` that came with a continued trace); the access line
//! carries `trace_id`; with `otlp_endpoint`, every sampled request is exported as a
//! server span over OTLP/HTTP ([`export`]).

pub mod export;

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use http::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Whose `traceparent` is continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Peers in `server.trusted_proxies`.
    Trusted,
    /// Every client.
    Any,
    /// Tracing is off: no ids, no propagation, no export.
    Off,
}

/// `[telemetry]`, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub accept: Accept,
    /// OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces that are sampled (exported), 0.0–1.0.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            accept: Accept::Trusted,
            otlp_endpoint: None,
            service_name: "portcullis".into(),
            sample_ratio: 1.0,
        }
    }
}

/// One request's place in its trace (a request extension).
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The caller's span, when the trace was continued.
    pub parent: Option<[u8; 8]>,
    /// The gateway's span for this request.
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// Passed on with a continued trace.
    pub tracestate: Option<HeaderValue>,
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish() | 1
    });
}

/// splitmix64 on a per-thread random seed: ids unique enough for tracing, without a
/// system call per request. Not unpredictable (splitmix64 is invertible): trace ids
/// are correlation ids, never secrets or capabilities.
fn random_u64() -> u64 {
    RNG.with(|s| {
        let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn span_id() -> [u8; 8] {
    loop {
        let id = random_u64().to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks(2).enumerate() {
        let d = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = d(pair[0])? << 4 | d(pair[1])?;
    }
    Some(out)
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A `traceparent` value (version 00, or a later version read as 00 per §4.3), or
/// `None` when it is malformed or carries an all-zero id.
pub fn parse_traceparent(v: &HeaderValue) -> Option<([u8; 16], [u8; 8], u8)> {
    let b = v.as_bytes();
    if b.len() < 55 || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let version = unhex::<1>(&b[0..2])?[0];
    if version == 0xff || (version == 0 && b.len() != 55) {
        return None;
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let trace = unhex::<16>(&b[3..35])?;
    let parent = unhex::<8>(&b[36..52])?;
    let flags = unhex::<1>(&b[53..55])?[0];
    (trace != [0; 16] && parent != [0; 8]).then_some((trace, parent, flags))
}

impl TraceContext {
    /// The request's trace: continued from its headers when `continue_` and they
    /// hold a valid `traceparent`, else new (sampled by `sample_ratio`).
    pub fn of(headers: &HeaderMap, continue_: bool, sample_ratio: f64) -> TraceContext {
        let asked = continue_
            .then(|| {
                let mut all = headers.get_all(&TRACEPARENT).iter();
                match (all.next(), all.next()) {
                    (Some(v), None) => parse_traceparent(v),
                    _ => None,
                }
            })
            .flatten();
        match asked {
            Some((trace_id, parent, flags)) => TraceContext {
                trace_id,
                parent: Some(parent),
                span_id: span_id(),
                sampled: flags & 1 == 1,
                tracestate: headers.get(&TRACESTATE).filter(|v| v.len() <= 512).cloned(),
            },
            None => {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&random_u64().to_be_bytes());
                trace_id[8..].copy_from_slice(&span_id());
                // The top 53 bits of a random draw against the ratio.
                let draw = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
                TraceContext {
                    trace_id,
                    parent: None,
                    span_id: span_id(),
                    sampled: draw < sample_ratio,
                    tracestate: None,
                }
            }
        }
    }

    /// The `traceparent` the upstream gets: this trace, the gateway's span as parent.
    /// Written by hand into a fixed buffer: `format!` cost more than the rest of
    /// tracing on every proxied request.
    pub fn traceparent(&self) -> HeaderValue {
        let mut v = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut v[3..35], &self.trace_id);
        hex_into(&mut v[36..52], &self.span_id);
        if self.sampled {
            v[54] = b'1';
        }
        HeaderValue::from_bytes(&v).unwrap_or(HeaderValue::from_static(""))
    }

    /// Replaces whatever trace headers the request carries with this trace's.
    pub fn propagate(&self, h: &mut HeaderMap) {
        h.insert(TRACEPARENT.clone(), self.traceparent());
        match &self.tracestate {
            Some(s) => {
                h.insert(TRACESTATE.clone(), s.clone());
            }
            None => {
                h.remove(&TRACESTATE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(tp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT.clone(),
            HeaderValue::from_str(tp).expect("value"),
        );
        h.insert(TRACESTATE.clone(), HeaderValue::from_static("vendor=x"));
        h
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_a_bad_one_replaced() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let t = TraceContext::of(&headers(tp), true, 0.0);
        assert_eq!(hex(&t.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            t.parent.map(|p| hex(&p)).as_deref(),
            Some("b7ad6b7169203331")
        );
        assert!(t.sampled, "the caller's sampled flag wins over the ratio");
        assert_ne!(hex(&t.span_id), "b7ad6b7169203331", "a span of its own");
        let out = t.traceparent();
        let out = out.to_str().expect("ascii");
        assert!(out.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(out.ends_with("-01"));
        assert_eq!(
            t.tracestate.as_ref().map(|v| v.as_bytes()),
            Some(&b"vendor=x"[..])
        );

        // Not believed: a new trace, the caller's ids and state dropped.
        let t = TraceContext::of(&headers(tp), false, 1.0);
        assert_ne!(hex(&t.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert!(t.parent.is_none() && t.tracestate.is_none() && t.sampled);

        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "garbage",
        ] {
            assert!(
                parse_traceparent(&HeaderValue::from_static(bad)).is_none(),
                "{bad}"
            );
        }
        // A future version may carry more fields (W3C §4.3).
        let v2 = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more";
        assert!(parse_traceparent(&HeaderValue::from_static(v2)).is_some());
    }

    #[test]
    fn new_ids_differ_and_are_never_zero() {
        let a = TraceContext::of(&HeaderMap::new(), true, 1.0);
        let b = TraceContext::of(&HeaderMap::new(), true, 1.0);
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, [0; 8]);
        assert!(!TraceContext::of(&HeaderMap::new(), true, 0.0).sampled);
    }
}
