//! Per-route header transforms, per-route deadlines and body limits, and the optional
//! security response headers.

use crate::support::*;

const CONFIG: &str = r#"[server]
request_timeout = "5s"
max_body_bytes = "1KiB"
security_headers = true

[[upstreams]]
name = "up"
url = "http://{UP}"

[[routes]]
path = "/t/**"
upstream = "up"
auth = "none"
request_headers = { set = { "x-api-version" = "2" }, append = { "x-tag" = "gw" }, remove = ["x-debug"] }
response_headers = { set = { "cache-control" = "private" }, remove = ["x-upstream-secret"] }

[[routes]]
path = "/hang/fast"
upstream = "up"
auth = "none"
request_timeout = "300ms"

[[routes]]
path = "/big/**"
upstream = "up"
auth = "none"
max_body_bytes = "64KiB"
"#;

#[tokio::test]
async fn request_and_response_headers_are_transformed_per_route() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = get(
        gw.addr,
        "/t/x",
        &["X-Debug: 1", "X-Tag: client", "X-Api-Version: 1"],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.last();
    assert!(seen.headers.get("x-debug").is_none());
    assert_eq!(seen.headers["x-api-version"], "2");
    let tags: Vec<_> = seen
        .headers
        .get_all("x-tag")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(tags, ["client", "gw"]);
    assert_eq!(r.header("cache-control"), Some("private"));
    // Security headers on the proxied response and on errors.
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let r = get(gw.addr, "/nowhere", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Untransformed routes pass headers unchanged.
    let r = get(gw.addr, "/big/x", &["X-Debug: 1"]).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().headers["x-debug"], "1");
}

#[tokio::test]
async fn routes_override_the_deadline_and_the_body_limit() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let t = std::time::Instant::now();
    let r = get(gw.addr, "/hang/fast", &[]).await;
    assert_error(&r, 504, "gateway_timeout");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let body = "x".repeat(10_000);
    let post = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    };
    assert_error(&raw(gw.addr, &post("/t/x")).await, 413, "payload_too_large");
    let r = raw(gw.addr, &post("/big/x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.last().body_len, 10_000);
}

#[test]
fn transforms_cannot_touch_reserved_headers() {
    for (name, op) in [
        ("x-auth-subject", "set"),
        ("X-Auth-Roles", "append"),
        ("x_auth_scopes", "set"),
        ("connection", "set"),
        ("content-length", "set"),
        ("x-forwarded-for", "set"),
        ("host", "set"),
    ] {
        let text = format!("[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\nrequest_headers = {{ {op} = {{ \"{name}\" = \"v\" }} }}\n");
        let err = portcullis::config::parse_str(&text, std::path::Path::new("t.toml"))
            .expect_err(name)
            .to_string();
        assert!(
            err.contains("routes[0].request_headers") && err.contains("reserved"),
            "{name}: {err}"
        );
    }
    let text = "[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\nresponse_headers = { remove = [\"X-Auth-Subject\"] }\n";
    let err = portcullis::config::parse_str(text, std::path::Path::new("t.toml"))
        .expect_err("reserved")
        .to_string();
    assert!(
        err.contains("routes[0].response_headers.remove[0]"),
        "{err}"
    );
}
