//! The Redis rate-limit backend with a real `redis-server` started by the test: two
//! gateway instances share one budget, and a stopped Redis applies each policy's
//! `on_error` (allow, or deny — the default of the `login` policy) without hanging.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::token::{config, post, sqlite};

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    async fn start() -> RedisServer {
        let port = closed_port().await.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server could not start ({e}); `bash .ci/run` installs it (apt-get install redis-server)"));
        // From here on, Drop kills and reaps it.
        let server = RedisServer { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port}");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn limits(port: u16) -> String {
    format!(
        r#"
[rate_limits]
backend = "redis://127.0.0.1:{port}"
redis_timeout = "100ms"

[rate_limits.shared]
key = "ip"
rate = "4/1m"

[rate_limits.strict]
key = "ip"
rate = "1000/1s"
on_error = "deny"

[rate_limits.login]
key = "ip+username"
rate = "3/1m"

[[routes]]
path = "/shared/**"
upstream = "up"
auth = "none"
rate_limit = "shared"

[[routes]]
path = "/strict/**"
upstream = "up"
auth = "none"
rate_limit = "strict"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit_and_a_dead_redis_applies_on_error() {
    let mut redis = RedisServer::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let text = config(&sqlite(dir.path()), "", &limits(redis.port));
    let a = gateway(&text, Some(up.addr)).await;
    let b = gateway(&text, Some(up.addr)).await;

    // 4 per minute in total, whichever instance answers.
    for gw in [&a, &b, &a, &b] {
        assert_eq!(get(gw.addr, "/shared/x", &[]).await.status, 200);
    }
    for gw in [&a, &b] {
        let r = get(gw.addr, "/shared/x", &[]).await;
        assert_error(&r, 429, "rate_limited");
        assert!(
            r.header("retry-after")
                .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| (1..=15).contains(&s))),
            "{:?}",
            r.header("retry-after")
        );
    }
    // The login policy, shared too: 3 attempts per IP + username across instances.
    for gw in [&a, &b, &a] {
        let r = post(
            gw.addr,
            "/token",
            "grant_type=password&username=alice&password=nope",
            &[],
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let r = post(
        b.addr,
        "/token",
        "grant_type=password&username=alice&password=wonderland",
        &[],
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("ratelimit-policy"), Some("\"login\";q=3;w=60"));
    assert_eq!(r.json()["error"], "rate_limited");

    // Redis gone: allow-policies let requests through, deny-policies and the login
    // policy refuse them — quickly, within the decision timeout.
    redis.stop();
    let t = Instant::now();
    assert_eq!(
        get(a.addr, "/shared/x", &[]).await.status,
        200,
        "on_error = allow (default)"
    );
    let r = get(a.addr, "/strict/x", &[]).await;
    assert_error(&r, 429, "rate_limited");
    let r = post(
        a.addr,
        "/token",
        "grant_type=password&username=johndoe&password=secret",
        &[],
    )
    .await;
    assert_eq!(r.status, 429, "login fails closed: {}", r.body);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a dead Redis must not hang requests: {:?}",
        t.elapsed()
    );
}

/// The login policies on Redis count failed attempts only, across instances: the
/// refund script gives a successful attempt back; a guesser rotating usernames is
/// stopped by `login_ip`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_login_policies_count_failures_only_across_instances() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let text = config(
        &sqlite(dir.path()),
        "",
        &format!(
            "[rate_limits]\nbackend = \"redis://127.0.0.1:{}\"\nredis_timeout = \"500ms\"\n\n[rate_limits.login]\nkey = \"ip+username\"\nrate = \"3/1h\"\n\n[rate_limits.login_ip]\nkey = \"ip\"\nrate = \"6/1h\"\n",
            redis.port
        ),
    );
    let a = gateway(&text, Some(closed_port().await)).await;
    let b = gateway(&text, Some(closed_port().await)).await;
    let try_login = |gw: std::net::SocketAddr, user: &'static str, pw: &'static str| async move {
        post(
            gw,
            "/token",
            &format!("grant_type=password&username={user}&password={pw}"),
            &[],
        )
        .await
    };
    // Six successes (budget 3), alternating instances: none counted.
    for gw in [a.addr, b.addr, a.addr, b.addr, a.addr, b.addr] {
        let r = try_login(gw, "alice", "wonderland").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Three failures are, wherever they land; the fourth attempt is refused.
    for gw in [a.addr, b.addr, a.addr] {
        assert_eq!(try_login(gw, "alice", "nope").await.status, 400);
    }
    let r = try_login(b.addr, "alice", "wonderland").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("ratelimit-policy"), Some("\"login\";q=3;w=3600"));
    // Per IP: 3 failures so far; 3 more on other usernames, then the address is out.
    for (gw, user) in [(a.addr, "user1"), (b.addr, "user2"), (a.addr, "user3")] {
        assert_eq!(try_login(gw, user, "nope").await.status, 400);
    }
    let r = try_login(b.addr, "johndoe", "secret").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"login_ip\";q=6;w=3600")
    );
}
