//! Header rules at the proxy boundary: hop-by-hop headers (RFC 9110 §7.6.1) removed in
//! both directions, and the `X-Forwarded-*` family set from what Portcullis saw, with
//! client-sent values believed only from a trusted proxy.

use std::net::IpAddr;

use http::header::{Entry, CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");
static PROXY_AUTHORIZATION: HeaderName = HeaderName::from_static("proxy-authorization");
/// The h2c upgrade's settings (RFC 7540 §3.2): meaningful for one hop only.
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Removes hop-by-hop headers and every header the `Connection` header names.
///
/// Returns the `Upgrade` value when the message asks for a protocol upgrade
/// (`Connection: upgrade` + `Upgrade: …`), so that the caller can pass the upgrade on
/// deliberately.
pub fn remove_hop_by_hop(h: &mut HeaderMap) -> Option<HeaderValue> {
    // One pass over the names (standard names compare as tags), no allocation when a
    // message carries none; then one removal per name present.
    let mut present: Vec<HeaderName> = Vec::new();
    let (mut has_connection, mut has_upgrade) = (false, false);
    for name in h.keys() {
        if name == CONNECTION {
            has_connection = true;
        } else if name == UPGRADE {
            has_upgrade = true;
        } else if is_hop_by_hop(name) && !present.contains(name) {
            present.push(name.clone());
        }
    }
    if !has_connection && !has_upgrade && present.is_empty() {
        return None;
    }
    let mut upgrade_requested = false;
    // Every `Connection` line, removed as it is read (one lookup). Tokens as bytes: a
    // value with a non-ASCII byte elsewhere still names headers.
    let connection = match has_connection.then(|| h.entry(CONNECTION)) {
        Some(Entry::Occupied(e)) => Some(e.remove_entry_mult().1),
        _ => None,
    };
    for value in connection.into_iter().flatten() {
        for token in value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
        {
            if token.eq_ignore_ascii_case(b"upgrade") {
                upgrade_requested = true;
            } else if token.is_empty() || token.eq_ignore_ascii_case(b"keep-alive") {
                // Nothing, or removed as hop-by-hop already when present.
            } else if let Ok(name) = HeaderName::from_bytes(token) {
                present.push(name);
            }
        }
    }
    let upgrade = if has_upgrade { h.remove(UPGRADE) } else { None };
    for name in present {
        h.remove(name);
    }
    upgrade.filter(|_| upgrade_requested)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == UPGRADE
        || name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == PROXY_AUTHENTICATE
        || name == PROXY_AUTHORIZATION
        || name == HTTP2_SETTINGS
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    !trusted.is_empty() && trusted.iter().any(|n| n.contains(&ip))
}

fn joined(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = h
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, h: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let Some(xff) = joined(h, &X_FORWARDED_FOR) else {
        return peer;
    };
    let mut last = peer;
    for entry in xff.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            return last;
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        last = ip;
    }
    last
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` on a request going upstream.
///
/// From an untrusted peer every client-sent `X-Forwarded-*`, `Forwarded` and
/// `X-Real-IP` is discarded and replaced by what Portcullis observed; from a trusted
/// proxy the peer is appended to `X-Forwarded-For` and the proxy's `-Proto`/`-Host`
/// are kept.
///
/// `peer` is the peer's address already rendered as a header value (computed once per
/// connection).
pub fn set_forwarded(
    h: &mut HeaderMap,
    peer: &HeaderValue,
    trusted: bool,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    // One pass over the names: what the request carries of the family. Most requests
    // carry none, and a lookup or removal of an absent name still hashes it.
    let seen = Forwarding::of(h);
    let xff = match (trusted && seen.xff)
        .then(|| joined(h, &X_FORWARDED_FOR))
        .flatten()
    {
        Some(prev) => {
            let both = format!("{prev}, {}", peer.to_str().unwrap_or_default());
            HeaderValue::from_str(&both).unwrap_or_else(|_| peer.clone())
        }
        None => peer.clone(),
    };
    h.insert(X_FORWARDED_FOR.clone(), xff);
    if !(trusted && seen.xfp) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(trusted && seen.xfh) {
        match host {
            Some(v) => {
                h.insert(X_FORWARDED_HOST.clone(), v);
            }
            None if seen.xfh => {
                h.remove(&X_FORWARDED_HOST);
            }
            None => {}
        }
    }
    if !trusted && !seen.claims.is_empty() {
        for n in seen.claims {
            h.remove(n);
        }
    }
}

/// The forwarding headers a request carries: the three Portcullis sets, and the
/// client's claims that it removes when the peer is not a trusted proxy.
#[derive(Default)]
struct Forwarding {
    xff: bool,
    xfp: bool,
    xfh: bool,
    claims: Vec<HeaderName>,
}

impl Forwarding {
    fn of(h: &HeaderMap) -> Forwarding {
        let mut seen = Forwarding::default();
        for name in h.keys() {
            match name.as_str() {
                "x-forwarded-for" => seen.xff = true,
                "x-forwarded-proto" => seen.xfp = true,
                "x-forwarded-host" => seen.xfh = true,
                n if is_client_claim(n) && !seen.claims.contains(name) => {
                    seen.claims.push(name.clone());
                }
                _ => {}
            }
        }
        seen
    }
}

/// `Forwarded`, `X-Real-IP` and the other headers through which frameworks learn a
/// client address, scheme, port or path prefix from "the proxy" (Node's `request-ip`
/// reads `X-Client-IP` before `X-Forwarded-For`; Werkzeug's `ProxyFix` and Spring read
/// `X-Forwarded-Prefix` and `-Port`; gorilla reads `X-Forwarded-Scheme`). From an
/// untrusted peer they are claims of the client's: removed. (`X-Forwarded-For`,
/// `-Proto` and `-Host` are matched before this and replaced.)
fn is_client_claim(n: &str) -> bool {
    n.starts_with("x-forwarded-")
        || matches!(
            n,
            "forwarded"
                | "x-real-ip"
                | "x-client-ip"
                | "true-client-ip"
                | "x-cluster-client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
                | "x-original-forwarded-for"
                | "x-proxyuser-ip"
                | "client-ip"
        )
}

#[cfg(test)]
mod tests;
