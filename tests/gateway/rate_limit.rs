//! `[rate_limits]` policies over real HTTP: 429 with Retry-After and the RateLimit
//! headers, keys by IP / subject / header, the default policy and opting out, and
//! IP-keyed policies counting before any token is checked. (Exact GCRA semantics and
//! the key-count bound are unit-tested in `ratelimit.rs` with governor's fake clock.)

use crate::support::*;
use crate::token::{config, login, sqlite};

const POLICIES: &str = r#"
[rate_limits.default]
key = "ip"
rate = "1000/1s"

[rate_limits.tight-ip]
key = "ip"
rate = "3/1m"

[rate_limits.per-user]
key = "subject"
rate = "2/1m"

[rate_limits.per-tenant]
key = "header:x-tenant"
rate = "2/1m"

[[routes]]
path = "/ip/**"
upstream = "up"
auth = "none"
rate_limit = "tight-ip"

[[routes]]
path = "/user/**"
upstream = "up"
auth = "optional"
rate_limit = "per-user"

[[routes]]
path = "/guarded/**"
upstream = "up"
scopes = ["items:read"]
rate_limit = "tight-ip"

[[routes]]
path = "/tenant/**"
upstream = "up"
auth = "none"
rate_limit = "per-tenant"

[[routes]]
path = "/free/**"
upstream = "up"
auth = "none"
rate_limit = "none"
"#;

fn assert_limited(r: &Raw, policy: &str, window: u64) {
    assert_error(r, 429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!((1..=window).contains(&retry), "Retry-After {retry}");
    let p = r.header("ratelimit-policy").expect("RateLimit-Policy");
    assert!(
        p.starts_with(&format!("\"{policy}\";q=")) && p.ends_with(&format!(";w={window}")),
        "{p}"
    );
    assert_eq!(
        r.header("ratelimit"),
        Some(format!("\"{policy}\";r=0;t={retry}").as_str())
    );
}

#[tokio::test]
async fn policies_answer_429_with_retry_after_and_ratelimit_headers() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let text = config(&sqlite(dir.path()), "login_rate = \"1000/1s\"", POLICIES);
    let gw = gateway(&text, Some(up.addr)).await;
    let a = gw.addr;

    // By IP: 3, then refused without reaching the upstream.
    for _ in 0..3 {
        assert_eq!(get(a, "/ip/x", &[]).await.status, 200);
    }
    let before = up.seen().len();
    assert_limited(&get(a, "/ip/x", &[]).await, "tight-ip", 60);
    assert_eq!(
        up.seen().len(),
        before,
        "a refused request never reaches the upstream"
    );

    // Opted out: never limited.
    for _ in 0..20 {
        assert_eq!(get(a, "/free/x", &[]).await.status, 200);
    }

    // By subject: each user has a budget; anonymous callers are keyed by IP.
    let alice = login(a, "alice", "wonderland", "").await;
    let bob = login(a, "johndoe", "secret", "").await;
    let (ta, tb) = (
        alice["access_token"].as_str().expect("t"),
        bob["access_token"].as_str().expect("t"),
    );
    for _ in 0..2 {
        assert_eq!(get(a, "/user/x", &[&bearer(ta)]).await.status, 200);
    }
    assert_limited(&get(a, "/user/x", &[&bearer(ta)]).await, "per-user", 60);
    assert_eq!(
        get(a, "/user/x", &[&bearer(tb)]).await.status,
        200,
        "bob has his own budget"
    );
    assert_eq!(get(a, "/user/x", &[]).await.status, 200);
    assert_eq!(get(a, "/user/x", &[]).await.status, 200);
    assert_limited(&get(a, "/user/x", &[]).await, "per-user", 60);

    // By header.
    for _ in 0..2 {
        assert_eq!(get(a, "/tenant/x", &["X-Tenant: acme"]).await.status, 200);
    }
    assert_limited(
        &get(a, "/tenant/x", &["X-Tenant: acme"]).await,
        "per-tenant",
        60,
    );
    assert_eq!(get(a, "/tenant/x", &["X-Tenant: globex"]).await.status, 200);
}

#[tokio::test]
async fn ip_policies_count_bad_tokens_before_verifying_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(&config(&sqlite(dir.path()), "", POLICIES), Some(up.addr)).await;
    for _ in 0..3 {
        let r = get(
            gw.addr,
            "/guarded/x",
            &["Authorization: Bearer not.a.token"],
        )
        .await;
        assert_error(&r, 401, "invalid_token");
    }
    // The fourth is refused before its token is looked at.
    assert_limited(
        &get(
            gw.addr,
            "/guarded/x",
            &["Authorization: Bearer not.a.token"],
        )
        .await,
        "tight-ip",
        60,
    );
}

#[tokio::test]
async fn the_default_policy_applies_to_routes_without_their_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let text = config(&sqlite(dir.path()), "", "[rate_limits.default]\nkey = \"ip+route\"\nrate = \"2/1m\"\n[[routes]]\npath = \"/open/**\"\nupstream = \"up\"\nauth = \"none\"\n");
    let gw = gateway(&text, Some(up.addr)).await;
    assert_eq!(get(gw.addr, "/open/a", &[]).await.status, 200);
    assert_eq!(get(gw.addr, "/open/b", &[]).await.status, 200);
    assert_limited(&get(gw.addr, "/open/c", &[]).await, "default", 60);
}

#[test]
fn bad_policies_are_config_errors() {
    let text = "[rate_limits]\nipv6_prefix = 300\n[rate_limits.a]\nkey = \"user\"\nrate = \"fast\"\n[rate_limits.b]\nkey = \"ip\"\nrate = \"1/1s\"\nburst = 0\nipv6_prefix = 0\n[rate_limits.c]\nkey = \"ip\"\nrate = \"1/1s\"\nextra = 1\n[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\nrate_limit = \"missing\"\n";
    let err = portcullis::config::parse_str(text, std::path::Path::new("r.toml"))
        .expect_err("refused")
        .to_string();
    for want in [
        "rate_limits.a.key",
        "rate_limits.a.rate",
        "rate_limits.b.burst",
        "rate_limits.ipv6_prefix",
        "rate_limits.b.ipv6_prefix",
        "rate_limits.c",
        "routes[0].rate_limit",
        "no [rate_limits.missing] policy",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

/// Item 6 over HTTP: a policy filled to `max_keys` by a client rotating header values
/// keeps limiting each known tenant on its own budget (the old limiter sent every
/// decision to one shared overflow key: everyone got 429); IPv6 clients are keyed per
/// /64, so rotating the interface identifier gives no fresh budget.
#[tokio::test]
async fn a_key_flood_neither_limits_known_clients_nor_escapes_by_ipv6_rotation() {
    let up = Upstream::start().await;
    let text = r#"[server]
trusted_proxies = ["127.0.0.0/8"]

[rate_limits.tenants]
key = "header:x-tenant"
rate = "3/1h"
max_keys = 20

[rate_limits.by-ip]
key = "ip"
rate = "2/1h"

[[upstreams]]
name = "up"
url = "http://{UP}"

[[routes]]
path = "/tenant/**"
upstream = "up"
auth = "none"
rate_limit = "tenants"

[[routes]]
path = "/ip/**"
upstream = "up"
auth = "none"
rate_limit = "by-ip"
"#;
    let gw = gateway(text, Some(up.addr)).await;
    let a = gw.addr;
    assert_eq!(get(a, "/tenant/x", &["X-Tenant: acme"]).await.status, 200);
    let mut flood_ok = 0;
    for i in 0..60 {
        let h = format!("X-Tenant: rotating-{i}");
        flood_ok += usize::from(get(a, "/tenant/x", &[&h]).await.status == 200);
    }
    // 19 rotating values got a key of their own, the other 41 shared one budget of 3.
    assert_eq!(flood_ok, 19 + 3);
    for _ in 0..2 {
        assert_eq!(
            get(a, "/tenant/x", &["X-Tenant: acme"]).await.status,
            200,
            "acme keeps its own budget"
        );
    }
    assert_limited(
        &get(a, "/tenant/x", &["X-Tenant: acme"]).await,
        "tenants",
        3600,
    );

    // One /64, many addresses: one budget.
    for ip in ["2001:db8:7:1::1", "2001:db8:7:1::2"] {
        let h = format!("X-Forwarded-For: {ip}");
        assert_eq!(get(a, "/ip/x", &[&h]).await.status, 200);
    }
    let r = get(a, "/ip/x", &["X-Forwarded-For: 2001:db8:7:1:dead:beef:0:1"]).await;
    assert_limited(&r, "by-ip", 3600);
    assert_eq!(
        get(a, "/ip/x", &["X-Forwarded-For: 2001:db8:7:2::1"])
            .await
            .status,
        200,
        "the next /64 is another client"
    );
}
