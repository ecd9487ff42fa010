//! Forward-auth through a real nginx (`auth_request`), and the trust rule.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn config(trusted: &str) -> String {
    format!(
        r#"[server]
trusted_proxies = [{trusted}]
forward_auth_path = "/_portcullis/auth"

{tokens}
[[upstreams]]
name = "app"
echo = true

[[routes]]
path = "/items/{{id}}"
methods = ["GET"]
upstream = "app"
scopes = ["items:read"]

[[routes]]
path = "/public/**"
upstream = "app"
auth = "none"
"#,
        tokens = hs256_tokens()
    )
}

fn token(scope: &str) -> String {
    hs256_token(scope)
}

/// nginx, killed when dropped.
struct Nginx(Child, tempfile::TempDir);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> String {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    panic!("nginx is required for the forward-auth test (`apt-get install nginx-light`; .ci/run installs it)");
}

async fn start_nginx(port: u16, gateway: std::net::SocketAddr, app: std::net::SocketAddr) -> Nginx {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().display();
    let conf = format!(
        r#"daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_auth;
      auth_request_set $auth_subject $upstream_http_x_auth_subject;
      auth_request_set $auth_scopes $upstream_http_x_auth_scopes;
      proxy_set_header X-Auth-Subject $auth_subject;
      proxy_set_header X-Auth-Scopes $auth_scopes;
      proxy_pass http://{app};
    }}
    location = /_auth {{
      internal;
      proxy_pass http://{gateway}/_portcullis/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
  }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("write conf");
    let child = Command::new(nginx_binary())
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let nginx = Nginx(child, dir);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return nginx;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "nginx did not listen: {}",
        std::fs::read_to_string(nginx.1.path().join("error.log")).unwrap_or_default()
    );
}

#[tokio::test]
async fn nginx_auth_request_uses_the_gateway_policy() {
    let app = Upstream::start().await;
    let gw = gateway(&config("\"127.0.0.1/32\""), None).await;
    let port = closed_port().await.port();
    let _nginx = start_nginx(port, gw.addr, app.addr).await;
    let front: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    // Refused: no token, a forged identity header, a bad token, a missing scope, and a
    // spelling trick. None of them reaches the application.
    assert_eq!(get(front, "/items/1", &[]).await.status, 401);
    assert_eq!(
        get(front, "/items/1", &["X-Auth-Subject: mallory"])
            .await
            .status,
        401
    );
    assert_eq!(
        get(front, "/items/1", &["Authorization: Bearer not.a.token"])
            .await
            .status,
        401
    );
    assert_eq!(
        get(
            front,
            "/items/1",
            &[&format!("Authorization: Bearer {}", token("other"))]
        )
        .await
        .status,
        403
    );
    assert_eq!(
        get(front, "/public/..%2fitems/1", &[]).await.status,
        500,
        "nginx maps the gateway's 400 to 500"
    );
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    // Allowed: the application sees the identity nginx took from the gateway's answer.
    let r = get(
        front,
        "/items/1",
        &[
            &format!("Authorization: Bearer {}", token("items:read")),
            "X-Auth-Subject: mallory",
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = app.last();
    assert_eq!(seen.headers["x-auth-subject"], "alice");
    assert_eq!(seen.headers["x-auth-scopes"], "items:read");
    // The original path is canonicalized like a proxied request: `..` resolves to the
    // protected route, whose policy applies.
    assert_eq!(get(front, "/public/../items/1", &[]).await.status, 401);
    assert_eq!(get(front, "/public/x", &[]).await.status, 200);
}

#[tokio::test]
async fn forward_auth_answers_trusted_proxies_only() {
    let gw = gateway(&config(""), None).await;
    let r = get(
        gw.addr,
        "/_portcullis/auth",
        &["X-Original-Method: GET", "X-Original-URI: /public/x"],
    )
    .await;
    assert_error(&r, 403, "forbidden");

    let gw = gateway(&config("\"127.0.0.1\""), None).await;
    let r = get(
        gw.addr,
        "/_portcullis/auth",
        &["X-Original-Method: GET", "X-Original-URI: /public/x"],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(
        gw.addr,
        "/_portcullis/auth",
        &[
            "X-Forwarded-Method: GET",
            "X-Forwarded-Uri: /items/1",
            &format!("Authorization: Bearer {}", token("items:read")),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-auth-subject"), Some("alice"));
    let r = get(gw.addr, "/_portcullis/auth", &["X-Original-URI: /public/x"]).await;
    assert_error(&r, 400, "invalid_request");
    let r = get(
        gw.addr,
        "/_portcullis/auth",
        &["X-Original-Method: GET", "X-Original-URI: /%2e%2e/items/1"],
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let r = get(
        gw.addr,
        "/_portcullis/auth",
        &["X-Original-Method: GET", "X-Original-URI: /nothing"],
    )
    .await;
    assert_error(&r, 404, "not_found");
}

/// Forward-auth answers a malformed `Authorization` header like a proxied request:
/// `400 invalid_request` naming the problem, with the challenge; no header is a bare
/// `401`. (nginx `auth_request` passes only `401`/`403` on and turns the `400` into a
/// `500`; Traefik ForwardAuth passes it on.)
#[tokio::test]
async fn forward_auth_answers_malformed_authorization_like_a_proxied_request() {
    let gw = gateway(&config("\"127.0.0.1\""), None).await;
    let described = ["X-Original-Method: GET", "X-Original-URI: /items/1"];
    let cases = [
        ("Authorization: Basic YWxpY2U6c2VjcmV0", "not Bearer"),
        ("Authorization: Bearer", "empty"),
        ("Authorization: Bearer a b", "more than one part"),
    ];
    for (header, says) in cases {
        let mut h = described.to_vec();
        h.push(header);
        let r = get(gw.addr, "/_portcullis/auth", &h).await;
        assert_error(&r, 400, "invalid_request");
        let d = r.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(d.contains(says), "{header}: {d}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_request\", error_description=\"{d}\""
                )
                .as_str()
            ),
            "{header}"
        );
        assert!(r.header("x-auth-subject").is_none(), "{header}");
    }
    let r = get(gw.addr, "/_portcullis/auth", &described).await;
    assert_error(&r, 401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
}

/// Forward-auth decides for a routed request, so the route's rate limit counts it: a
/// client cannot escape a limit by going through the proxy in front.
#[tokio::test]
async fn forward_auth_applies_the_routes_rate_limits() {
    let cfg = format!(
        "{}\n[rate_limits.default]\nkey = \"ip\"\nrate = \"2/1m\"\n[rate_limits.per-user]\nkey = \"subject\"\nrate = \"1/1m\"\n",
        config("\"127.0.0.1\"")
    )
    .replace(
        "scopes = [\"items:read\"]",
        "scopes = [\"items:read\"]\nrate_limit = \"per-user\"",
    );
    let gw = gateway(&cfg, None).await;
    let ask = |uri: &'static str, client: &'static str| {
        let addr = gw.addr;
        async move {
            let mut h = vec![
                "X-Original-Method: GET".to_string(),
                format!("X-Original-URI: {uri}"),
                format!("X-Forwarded-For: {client}"),
            ];
            if uri.starts_with("/items") {
                h.push(format!("Authorization: Bearer {}", token("items:read")));
            }
            let h: Vec<&str> = h.iter().map(String::as_str).collect();
            get(addr, "/_portcullis/auth", &h).await
        }
    };
    // IP-keyed default policy, per original client (X-Forwarded-For from the proxy).
    assert_eq!(ask("/public/x", "203.0.113.1").await.status, 200);
    assert_eq!(ask("/public/x", "203.0.113.1").await.status, 200);
    let r = ask("/public/x", "203.0.113.1").await;
    assert_error(&r, 429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    assert_eq!(ask("/public/x", "203.0.113.2").await.status, 200);
    // Subject-keyed policy of the route.
    assert_eq!(ask("/items/1", "203.0.113.3").await.status, 200);
    assert_error(&ask("/items/1", "203.0.113.4").await, 429, "rate_limited");
}
