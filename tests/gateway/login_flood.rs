//! `/token` under a login flood, over real HTTP on loopback: distinct usernames from
//! one address are stopped by the per-IP login policy before any hash is computed,
//! while a user on another address keeps logging in; only failed attempts count, per
//! username and per IP; malformed usernames cost nothing. Client addresses come from
//! `X-Forwarded-For` through a trusted proxy (127.0.0.0/8). Counters (how many flood
//! attempts were answered after hashing: `400 invalid_grant`) rather than timing.

use std::net::SocketAddr;

use crate::support::*;
use crate::token::{assert_oauth_error, config, post, sqlite};

const ATTACKER: &str = "X-Forwarded-For: 198.51.100.7";
const ALICE_IP: &str = "X-Forwarded-For: 203.0.113.5";

/// Budgets far longer than a test: nothing refills while it runs.
const POLICIES: &str = r#"
[rate_limits.login]
key = "ip+username"
rate = "5/1h"

[rate_limits.login_ip]
key = "ip"
rate = "10/1h"
"#;

fn flood_config(dir: &std::path::Path) -> String {
    let text = config(&sqlite(dir), "", POLICIES).replace(
        "argon2_parallelism = 1\n",
        "argon2_parallelism = 1\nmax_concurrent_hashes = 2\nmax_queued_hashes = 2\n",
    );
    format!("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n{text}")
}

async fn attempt(addr: SocketAddr, user: &str, password: &str, from: &str) -> Raw {
    post(
        addr,
        "/token",
        &format!("grant_type=password&username={user}&password={password}"),
        &[from],
    )
    .await
}

/// A flood answer: a hashed failure, a rate limit, or "busy" — each OAuth-shaped.
fn assert_flood_answer(r: &Raw) {
    match r.status {
        400 => assert_oauth_error(r, 400, "invalid_grant"),
        429 => {
            assert_oauth_error(r, 429, "rate_limited");
            assert!(r.header("retry-after").is_some());
        }
        503 => {
            assert_oauth_error(r, 503, "temporarily_unavailable");
            assert_eq!(r.header("retry-after"), Some("1"));
        }
        other => panic!("flood answered {other}: {}", r.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_usernames_from_one_ip_leaves_other_users_logging_in() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(&flood_config(dir.path()), Some(closed_port().await)).await;
    let a = gw.addr;

    // The flood's first wave, 40 at once: each a username never seen before (the old
    // limiter gave each its own budget and hashed every one).
    let wave: Vec<_> = (0..40)
        .map(|i| {
            tokio::spawn(async move { attempt(a, &format!("flood-{i}"), "guess", ATTACKER).await })
        })
        .collect();
    let mut hashed = 0;
    for t in wave {
        let r = t.await.expect("join");
        assert_flood_answer(&r);
        hashed += usize::from(r.status == 400);
    }
    // Then on until the per-IP policy refuses (503s are not counted: not tried).
    let mut limited = None;
    for i in 40..200 {
        let r = attempt(a, &format!("flood-{i}"), "guess", ATTACKER).await;
        assert_flood_answer(&r);
        hashed += usize::from(r.status == 400);
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("the flood must be rate limited per IP");
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"login_ip\";q=10;w=3600")
    );
    assert!(
        hashed <= 10,
        "{hashed} flood attempts were hashed; the per-IP budget is 10"
    );

    // The flood goes on, 4 connections at a time, while alice logs in from her own
    // address more often than her per-username budget (5): successes are not counted.
    let flood: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..30 {
                    let r = attempt(a, &format!("wave2-{w}-{i}"), "guess", ATTACKER).await;
                    assert_flood_answer(&r);
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    for i in 0..8 {
        let r = attempt(a, "alice", "wonderland", ALICE_IP).await;
        assert_eq!(
            r.status, 200,
            "alice's login {i} during the flood: {}",
            r.body
        );
    }
    for t in flood {
        let statuses = t.await.expect("join");
        assert!(
            statuses.iter().all(|s| *s == 429),
            "an address over its budget is refused before any hashing: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn failed_attempts_count_per_username_and_per_ip_successes_do_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(&flood_config(dir.path()), Some(closed_port().await)).await;
    let a = gw.addr;
    let from = |ip: &str| format!("X-Forwarded-For: {ip}");

    // Eight successes in a row (budget 5): never throttled.
    for i in 0..8 {
        let r = attempt(a, "alice", "wonderland", &from("192.0.2.1")).await;
        assert_eq!(r.status, 200, "success {i}: {}", r.body);
    }
    // A guesser of alice's password from one address: 5 failures, then refused even
    // with the right password, on the per-username policy.
    for _ in 0..5 {
        let r = attempt(a, "alice", "guess", &from("192.0.2.2")).await;
        assert_oauth_error(&r, 400, "invalid_grant");
    }
    let r = attempt(a, "alice", "wonderland", &from("192.0.2.2")).await;
    assert_oauth_error(&r, 429, "rate_limited");
    assert_eq!(r.header("ratelimit-policy"), Some("\"login\";q=5;w=3600"));
    // alice herself, elsewhere, is not locked out.
    assert_eq!(
        attempt(a, "alice", "wonderland", &from("192.0.2.1"))
            .await
            .status,
        200
    );

    // A guesser rotating usernames from one address: 10 failures, then that address
    // is refused for every username.
    for i in 0..10 {
        let r = attempt(a, &format!("user{i}"), "guess", &from("192.0.2.3")).await;
        assert_oauth_error(&r, 400, "invalid_grant");
    }
    let r = attempt(a, "johndoe", "secret", &from("192.0.2.3")).await;
    assert_oauth_error(&r, 429, "rate_limited");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"login_ip\";q=10;w=3600")
    );
}

#[tokio::test]
async fn malformed_usernames_are_refused_before_anything_is_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(&flood_config(dir.path()), Some(closed_port().await)).await;
    let a = gw.addr;
    let long = "a".repeat(5000);
    for user in [
        long.as_str(),
        "ab",
        "a%20b",
        "x%00y",
        "a'b",
        "%C3%A9t%C3%A9",
    ] {
        for _ in 0..3 {
            let r = attempt(a, user, "guess", ATTACKER).await;
            assert_oauth_error(&r, 400, "invalid_grant");
        }
    }
    // 18 refusals later, the address still has its whole budget of 10 failures.
    for i in 0..10 {
        let r = attempt(a, &format!("user{i}"), "guess", ATTACKER).await;
        assert_oauth_error(&r, 400, "invalid_grant");
    }
    assert_eq!(attempt(a, "user10", "guess", ATTACKER).await.status, 429);
}
