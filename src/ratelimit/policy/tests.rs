use super::*;
use crate::ratelimit::{KeyInput, KeyPart};
use http::HeaderMap;
use std::net::IpAddr;

fn memory(spec: PolicySpec) -> Policy {
    Policy::new(spec, None)
}

#[test]
fn key_specs_parse_and_bad_ones_are_refused() {
    assert_eq!(
        KeySpec::parse("ip+route"),
        Ok(KeySpec(vec![KeyPart::Ip, KeyPart::Route]))
    );
    assert!(KeySpec::parse("subject").expect("spec").needs_identity());
    assert!(!KeySpec::parse("ip+header:x-tenant")
        .expect("spec")
        .needs_identity());
    for bad in ["", "ip+ip", "user", "header:bad header", "ip+"] {
        assert!(KeySpec::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn keys_separate_callers_and_fall_back_to_the_ip() {
    let p = memory(PolicySpec::new(
        "p",
        KeySpec::parse("subject+route").expect("spec"),
        "1/1m".parse().expect("rate"),
        None,
        100,
    ));
    let h = HeaderMap::new();
    let k = |subject: Option<&'static str>, ip: [u8; 4]| KeyInput {
        ip: IpAddr::from(ip),
        issuer: subject.map(|_| "https://gw.test"),
        subject,
        client_id: None,
        route: "items",
        headers: &h,
        username: None,
    };
    assert_eq!(p.check(&k(Some("alice"), [1, 1, 1, 1])).await, Ok(()));
    assert!(
        p.check(&k(Some("alice"), [2, 2, 2, 2])).await.is_err(),
        "same subject, other IP"
    );
    assert_eq!(p.check(&k(Some("bob"), [1, 1, 1, 1])).await, Ok(()));
    assert_eq!(
        p.check(&k(None, [3, 3, 3, 3])).await,
        Ok(()),
        "anonymous: by IP"
    );
    assert!(p.check(&k(None, [3, 3, 3, 3])).await.is_err());
    // A subject cannot collide with an IP's key.
    assert_eq!(p.check(&k(Some("ip:3.3.3.3"), [9, 9, 9, 9])).await, Ok(()));
    assert_eq!(p.policy_header(), "\"p\";q=1;w=60");
}

/// Subjects and clients are per issuer; a subject is never a client's key.
#[tokio::test]
async fn subjects_are_per_issuer_and_never_a_clients_key() {
    let h = HeaderMap::new();
    let key = |spec: &str| KeySpec::parse(spec).expect("spec");
    let p = memory(PolicySpec::new(
        "p",
        key("subject"),
        "1/1m".parse().expect("rate"),
        None,
        100,
    ));
    let k = |issuer: &'static str, sub: &'static str, client: Option<&'static str>| KeyInput {
        ip: IpAddr::from([1, 1, 1, 1]),
        issuer: Some(issuer),
        subject: Some(sub),
        client_id: client,
        route: "r",
        headers: &h,
        username: None,
    };
    assert_eq!(p.check(&k("https://gw.test", "alice", None)).await, Ok(()));
    assert_eq!(
        p.check(&k("https://idp.example", "alice", None)).await,
        Ok(()),
        "another issuer's alice has her own budget"
    );
    assert!(p.check(&k("https://gw.test", "alice", None)).await.is_err());
    let c = memory(PolicySpec::new(
        "c",
        key("client_id"),
        "1/1m".parse().expect("rate"),
        None,
        100,
    ));
    assert_eq!(
        c.check(&k("https://gw.test", "u", Some("web"))).await,
        Ok(())
    );
    assert_eq!(
        c.check(&k("https://idp.example", "web", None)).await,
        Ok(()),
        "a subject named like a client is not that client"
    );
    assert!(c
        .check(&k("https://gw.test", "v", Some("web")))
        .await
        .is_err());
}

fn input(ip: IpAddr, headers: &HeaderMap) -> KeyInput<'_> {
    KeyInput {
        ip,
        issuer: None,
        subject: None,
        client_id: None,
        route: "r",
        headers,
        username: None,
    }
}

#[tokio::test]
async fn ipv6_clients_are_keyed_by_their_64_and_ipv4_mapped_by_the_ipv4_address() {
    let h = HeaderMap::new();
    let p = memory(PolicySpec::new(
        "p",
        KeySpec::parse("ip").expect("spec"),
        "1/1m".parse().expect("rate"),
        None,
        100,
    ));
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert_eq!(
        p.key_of(&input(ip("2001:db8:1:2:aaaa::1"), &h)),
        "2001:db8:1:2::/64"
    );
    assert_eq!(p.check(&input(ip("2001:db8:1:2::1"), &h)).await, Ok(()));
    // Rotating the interface identifier gives no fresh budget.
    assert!(p
        .check(&input(ip("2001:db8:1:2:ffff:1:2:3"), &h))
        .await
        .is_err());
    // The next /64 is someone else.
    assert_eq!(p.check(&input(ip("2001:db8:1:3::1"), &h)).await, Ok(()));
    // IPv4 (also as an IPv4-mapped IPv6 address) is keyed by its address.
    assert_eq!(p.key_of(&input(ip("::ffff:192.0.2.7"), &h)), "192.0.2.7");
    assert_eq!(p.check(&input(ip("192.0.2.7"), &h)).await, Ok(()));
    assert!(p.check(&input(ip("::ffff:192.0.2.7"), &h)).await.is_err());
    assert_eq!(p.check(&input(ip("192.0.2.8"), &h)).await, Ok(()));
    // Configurable: 128 keys each address.
    let mut p = p.spec().clone();
    p.ipv6_prefix = 128;
    assert_eq!(p.key_of(&input(ip("2001:db8::1"), &h)), "2001:db8::1");
    p.ipv6_prefix = 48;
    assert_eq!(
        p.key_of(&input(ip("2001:db8:1:2::1"), &h)),
        "2001:db8:1::/48"
    );
}

/// The old limiter sent every decision to one overflow key once full: a client
/// rotating `X-Tenant` values then limited every tenant.
#[tokio::test]
async fn a_header_flood_does_not_limit_a_known_tenant() {
    let p = memory(PolicySpec::new(
        "tenants",
        KeySpec::parse("header:x-tenant").expect("spec"),
        "3/1m".parse().expect("rate"),
        None,
        50,
    ));
    let mut acme = HeaderMap::new();
    acme.insert("x-tenant", http::HeaderValue::from_static("acme"));
    let ip = IpAddr::from([192, 0, 2, 1]);
    assert_eq!(p.check(&input(ip, &acme)).await, Ok(()));
    for i in 0..1000 {
        let mut h = HeaderMap::new();
        let v = format!("rotating-{i}-{}", "x".repeat(200));
        h.insert("x-tenant", http::HeaderValue::from_str(&v).expect("value"));
        let _ = p.check(&input(ip, &h)).await;
    }
    assert_eq!(p.limiter().keys(), 50);
    assert_eq!(p.check(&input(ip, &acme)).await, Ok(()));
    assert_eq!(p.check(&input(ip, &acme)).await, Ok(()));
    assert!(p.check(&input(ip, &acme)).await.is_err(), "acme's own 3");
}
