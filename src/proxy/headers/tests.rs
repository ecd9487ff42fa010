//! Unit tests of forwarded headers: hop-by-hop and `Connection`-named headers are
//! removed, upgrades reported, and `X-Forwarded-*` replaced for untrusted peers and
//! appended for trusted ones (the client IP walks the trusted hops).

use super::*;

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

#[test]
fn hop_by_hop_and_connection_named_headers_go() {
    let mut h = map(&[
        ("connection", "keep-alive, x-secret"),
        ("connection", "X-Other"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("x-other", "1"),
        ("te", "trailers"),
        ("trailer", "x"),
        ("transfer-encoding", "chunked"),
        ("proxy-authorization", "Basic x"),
        ("proxy-connection", "keep-alive"),
        ("upgrade", "h2c"),
        ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ("accept", "*/*"),
    ]);
    assert_eq!(
        remove_hop_by_hop(&mut h),
        None,
        "no 'upgrade' token: not an upgrade"
    );
    assert_eq!(
        h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        vec!["accept"]
    );
}

#[test]
fn every_header_connection_names_goes_even_close_and_beside_non_ascii() {
    let mut h = HeaderMap::new();
    h.append(CONNECTION, HeaderValue::from_static("close"));
    h.append(
        CONNECTION,
        HeaderValue::from_bytes(b" X-Secret ,\xff, ").expect("obs-text is allowed"),
    );
    h.append(
        HeaderName::from_static("close"),
        HeaderValue::from_static("1"),
    );
    h.append(
        HeaderName::from_static("x-secret"),
        HeaderValue::from_static("1"),
    );
    h.append(
        HeaderName::from_static("accept"),
        HeaderValue::from_static("*/*"),
    );
    assert_eq!(remove_hop_by_hop(&mut h), None);
    assert_eq!(
        h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        vec!["accept"]
    );
}

#[test]
fn upgrade_is_reported() {
    let mut h = map(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "k"),
    ]);
    assert_eq!(
        remove_hop_by_hop(&mut h),
        Some(HeaderValue::from_static("websocket"))
    );
    assert!(h.get("connection").is_none() && h.get("upgrade").is_none());
    assert!(h.get("sec-websocket-key").is_some());
}

#[test]
fn forwarded_from_untrusted_peer_is_replaced() {
    let mut h = map(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil"),
        ("forwarded", "for=6.6.6.6"),
        ("x-real-ip", "6.6.6.6"),
        ("x-client-ip", "10.0.0.1"),
        ("true-client-ip", "10.0.0.1"),
        ("x-forwarded-prefix", "/admin"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-scheme", "https"),
        ("accept", "*/*"),
    ]);
    set_forwarded(
        &mut h,
        &HeaderValue::from_static("192.0.2.1"),
        false,
        "http",
        Some(HeaderValue::from_static("api.local")),
    );
    assert_eq!(h["x-forwarded-for"], "192.0.2.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.local");
    assert!(h.get("forwarded").is_none() && h.get("x-real-ip").is_none());
    let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        vec![
            "accept",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto"
        ]
    );
}

#[test]
fn forwarded_from_trusted_peer_is_appended() {
    let mut h = map(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "10.0.0.3"),
        ("x-forwarded-proto", "https"),
    ]);
    set_forwarded(
        &mut h,
        &HeaderValue::from_static("10.0.0.2"),
        true,
        "http",
        Some(HeaderValue::from_static("api.local")),
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.3, 10.0.0.2");
    assert_eq!(h["x-forwarded-proto"], "https");
}

#[test]
fn client_ip_walks_trusted_hops() {
    let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
    let h = map(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.3")]);
    assert_eq!(
        client_ip("10.0.0.2".parse().expect("ip"), &h, &trusted),
        "203.0.113.9".parse::<IpAddr>().expect("ip")
    );
    assert_eq!(
        client_ip("198.51.100.1".parse().expect("ip"), &h, &trusted),
        "198.51.100.1".parse::<IpAddr>().expect("ip")
    );
    assert_eq!(
        client_ip("10.0.0.2".parse().expect("ip"), &h, &[]),
        "10.0.0.2".parse::<IpAddr>().expect("ip")
    );
}

#[test]
fn without_a_host_a_client_sent_forwarded_host_goes_and_a_trusted_proxys_claims_stay() {
    let mut h = map(&[("x-forwarded-host", "evil"), ("x-forwarded-host", "evil2")]);
    set_forwarded(
        &mut h,
        &HeaderValue::from_static("192.0.2.1"),
        false,
        "https",
        None,
    );
    assert!(h.get("x-forwarded-host").is_none());
    assert_eq!(h["x-forwarded-proto"], "https");

    let mut h = map(&[
        ("forwarded", "for=203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
        ("x-forwarded-host", "api.example"),
    ]);
    set_forwarded(
        &mut h,
        &HeaderValue::from_static("10.0.0.2"),
        true,
        "http",
        None,
    );
    assert_eq!(h["forwarded"], "for=203.0.113.9");
    assert_eq!(h["x-real-ip"], "203.0.113.9");
    assert_eq!(h["x-forwarded-host"], "api.example");
    assert_eq!(h["x-forwarded-for"], "10.0.0.2");
}
