//! CORS over real HTTP (preflights at the edge, grants on every answer, per-route
//! policies), and in a real browser: headless Chromium loads a page from one loopback
//! origin that fetch()es a protected route with an Authorization header.

use std::net::SocketAddr;
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;
use crate::token::{config, login, sqlite};

fn cors_config(store: &str, allowed: &str) -> String {
    let extra = format!(
        r#"
[cors]
allow_origins = ["{allowed}", "https://*.example.com"]
allow_credentials = true
max_age = "5m"

[rate_limits.tight]
key = "ip"
rate = "1/1m"

[[routes]]
path = "/tight/**"
upstream = "up"
auth = "none"
rate_limit = "tight"

[[routes]]
path = "/partner/**"
upstream = "up"
auth = "none"
cors = {{ allow_origins = ["https://partner.test"], allow_methods = ["GET"] }}
"#
    );
    config(store, "login_rate = \"1000/1s\"", &extra)
}

fn preflight(path: &str, origin: &str, method: &str, headers: &str) -> String {
    format!("OPTIONS {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\n\r\n")
}

#[tokio::test]
async fn preflights_at_the_edge_and_grants_on_every_answer() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(
        &cors_config(&sqlite(dir.path()), "http://localhost:3000"),
        Some(up.addr),
    )
    .await;
    let a = gw.addr;
    let app = "http://localhost:3000";

    // Preflight of a protected route: answered here, no token, upstream untouched.
    let r = raw(a, &preflight("/items/1", app, "GET", "authorization")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(app));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("300"));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("authorization")));
    assert!(
        up.seen().is_empty(),
        "a preflight never reaches the upstream"
    );
    // Wildcard subdomains, but not the bare domain, not null, not a look-alike.
    assert_eq!(
        raw(
            a,
            &preflight(
                "/items/1",
                "https://app.example.com",
                "GET",
                "authorization"
            )
        )
        .await
        .status,
        204
    );
    for origin in [
        "https://example.com",
        "null",
        "https://example.com.evil.test",
        "http://localhost:3001",
    ] {
        let r = raw(a, &preflight("/items/1", origin, "GET", "authorization")).await;
        assert_eq!(r.status, 403, "{origin}");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    // A method or header outside the policy gets no grant.
    assert_eq!(
        raw(a, &preflight("/items/1", app, "CONNECT", "authorization"))
            .await
            .status,
        403
    );
    assert_eq!(
        raw(a, &preflight("/items/1", app, "GET", "x-secret"))
            .await
            .status,
        403
    );

    // Grants on answers of every kind, with Vary: Origin.
    let origin_h = format!("Origin: {app}");
    let check = |r: &Raw, status: u16| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(app),
            "{status}"
        );
        assert!(
            r.headers
                .get("vary")
                .is_some_and(|v| v.iter().any(|v| v.contains("Origin"))),
            "{status}"
        );
    };
    check(&get(a, "/items/1", &[&origin_h]).await, 401);
    let token = login(a, "johndoe", "secret", "").await["access_token"]
        .as_str()
        .expect("t")
        .to_string();
    let ok = get(a, "/items/1", &[&origin_h, &bearer(&token)]).await;
    check(&ok, 200);
    assert_eq!(
        ok.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    check(&raw(a, &format!("POST /items/1 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 0\r\n{origin_h}\r\n{}\r\n\r\n", bearer(&token))).await, 403);
    check(&get(a, "/tight/x", &[&origin_h]).await, 200);
    check(&get(a, "/tight/x", &[&origin_h]).await, 429);
    check(&get(a, "/nowhere", &[&origin_h]).await, 404);
    // Another origin: Vary, but no grant.
    let r = get(
        a,
        "/items/1",
        &["Origin: https://evil.test", &bearer(&token)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());

    // A route's own policy replaces [cors].
    let r = raw(
        a,
        &preflight("/partner/x", "https://partner.test", "GET", ""),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        raw(a, &preflight("/partner/x", app, "GET", ""))
            .await
            .status,
        403
    );
    let r = get(a, "/partner/x", &["Origin: https://partner.test"]).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://partner.test")
    );
    assert!(r.header("access-control-allow-credentials").is_none());
}

#[test]
fn wildcard_origin_with_credentials_is_refused() {
    let text = "[cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\n";
    let err = portcullis::config::parse_str(text, std::path::Path::new("c.toml"))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("cors.allow_origins") && err.contains("allow_credentials"),
        "{err}"
    );
    let text = "[cors]\nallow_origins = [\"https://x.test/\", \"https://a.*.test\"]\n[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\n";
    let err = portcullis::config::parse_str(text, std::path::Path::new("c.toml"))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("cors.allow_origins[0]") && err.contains("cors.allow_origins[1]"),
        "{err}"
    );
}

/// Serves one HTML page on a bound listener (its own origin) until the test ends.
fn serve_page(l: tokio::net::TcpListener, html: String) -> SocketAddr {
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}", html.len());
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!("no Chromium found; `bash .ci/run` installs it (apt-get install chromium)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_is_granted_only_from_the_allowed_origin() {
    let browser = chromium();
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    // The allowed page's origin must be known before the gateway starts.
    let html = |gw: SocketAddr, token: &str| {
        format!(
            r#"<!doctype html><html><body><p id="out">pending</p><script>
fetch("http://{gw}/items/1", {{ headers: {{ "Authorization": "Bearer {token}" }} }})
  .then(r => r.text().then(t => {{ document.getElementById("out").textContent = "STATUS " + r.status + " " + t.length; }}))
  .catch(e => {{ document.getElementById("out").textContent = "BLOCKED " + e; }});
</script></body></html>"#
        )
    };
    // Start pages with a placeholder, then the gateway, then serve the real pages.
    let allowed_l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let allowed_addr = allowed_l.local_addr().expect("addr");
    drop(allowed_l);
    let gw = gateway(
        &cors_config(&sqlite(dir.path()), &format!("http://{allowed_addr}")),
        Some(up.addr),
    )
    .await;
    let token = login(gw.addr, "johndoe", "secret", "").await["access_token"]
        .as_str()
        .expect("t")
        .to_string();
    let page = html(gw.addr, &token);
    // Re-bind the allowed port for the page (it was free a moment ago).
    let allowed = serve_page(
        tokio::net::TcpListener::bind(allowed_addr)
            .await
            .expect("rebind the allowed origin's port"),
        page.clone(),
    );
    let other = serve_page(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        page,
    );

    let run = |origin: SocketAddr| {
        let browser = browser.clone();
        let profile = dir.path().join(format!("profile-{}", origin.port()));
        tokio::task::spawn_blocking(move || {
            let out = Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--virtual-time-budget=10000",
                    "--dump-dom",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("http://{origin}/"))
                .output()
                .expect("chromium runs");
            String::from_utf8_lossy(&out.stdout).to_string()
        })
    };
    let granted = run(allowed).await.expect("join");
    assert!(granted.contains("STATUS 200"), "allowed origin:\n{granted}");
    let seen = up.last();
    assert_eq!(
        seen.headers["x-auth-subject"], "johndoe",
        "the browser's request went through with the token"
    );
    let before = up.seen().len();
    let blocked = run(other).await.expect("join");
    assert!(blocked.contains("BLOCKED"), "other origin:\n{blocked}");
    assert_eq!(
        up.seen().len(),
        before,
        "the refused preflight kept the request from the upstream"
    );
}
