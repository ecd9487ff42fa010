//! What reaches the upstream, byte for byte (a plain TCP listener records it): the
//! origin-form request line and `Host`, upgrades only as the route allows, identity
//! headers in every spelling, hop-by-hop removal after authentication, head limits,
//! refused methods and override headers. Each test also checks what must NOT arrive.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;

pub fn config(extra_server: &str) -> String {
    format!(
        r#"[server]
{extra_server}
{tokens}
[[upstreams]]
name = "up"
url = "http://{{UP}}"
[[upstreams]]
name = "host-kept"
url = "http://{{UP}}/base"
preserve_host = true

[[routes]]
path = "/public/**"
upstream = "up"
auth = "none"
[[routes]]
path = "/kept/**"
upstream = "host-kept"
auth = "none"
[[routes]]
path = "/ws/**"
upstream = "up"
auth = "none"
[[routes]]
path = "/nows/**"
upstream = "up"
auth = "none"
upgrades = []
[[routes]]
path = "/admin/**"
upstream = "up"
scopes = ["admin"]
[[routes]]
path = "/items/**"
upstream = "up"
scopes = ["items:read"]
"#,
        tokens = hs256_tokens()
    )
}

pub fn token(scope: &str) -> String {
    hs256_token(scope)
}

/// A client connection that sends requests and reads answers one at a time.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one response (head + content-length body); `None` at EOF.
    pub async fn response(&mut self) -> Option<Raw> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let whole: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    return Some(parse_raw(&whole));
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Everything until the peer closes.
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let _ = self.stream.read_to_end(&mut out).await;
        out
    }
}

pub fn parse_raw(bytes: &[u8]) -> Raw {
    parse_response(bytes)
}

#[tokio::test]
async fn upstreams_get_origin_form_and_the_routes_host() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = get(gw.addr, "/public/hello?x=1&y=%2F", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(gw.addr, "/kept/a/b", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Absolute-form from the client is accepted (RFC 9112 §3.2.2) and still
    // forwarded in origin-form.
    let r = raw(
        gw.addr,
        "GET http://gw.test/public/abs HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 3, "{}", up.text());
    for r in &reqs {
        r.assert_well_formed();
    }
    let by_line = |line: &str| {
        reqs.iter()
            .find(|r| r.line == line)
            .unwrap_or_else(|| panic!("{line:?} not received: {}", up.text()))
    };
    let hello = by_line("GET /public/hello?x=1&y=%2F HTTP/1.1");
    assert_eq!(hello.header_values("host"), vec![up.addr.to_string()]);
    let kept = by_line("GET /base/kept/a/b HTTP/1.1");
    assert_eq!(kept.header_values("host"), vec!["gw.test"]);
    let abs = by_line("GET /public/abs HTTP/1.1");
    assert_eq!(abs.header_values("host"), vec![up.addr.to_string()]);
    assert!(!up.text().contains("http://"), "{}", up.text());
}

#[tokio::test]
async fn an_upstream_url_without_a_port_uses_port_80() {
    // 127.0.0.2 is loopback too: port 80 there is free for this test alone.
    let up = RawUpstream::start_on("127.0.0.2:80", Answer::Ok).await;
    let cfg = config("").replace(
        "http://{UP}\"\n[[upstreams]]",
        "http://127.0.0.2\"\n[[upstreams]]",
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let r = get(gw.addr, "/public/p", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reqs = up.requests();
    assert_eq!(reqs[0].line, "GET /public/p HTTP/1.1");
    assert_eq!(reqs[0].header_values("host"), vec!["127.0.0.2"]);
}

/// The h2c smuggle: a public route, an upstream that says 101 to anything, and a
/// second request in the "tunnel" aimed at a protected route.
#[tokio::test]
async fn an_h2c_upgrade_is_never_tunnelled() {
    let up = RawUpstream::start(Answer::SwitchAnything).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let mut c = Client::connect(gw.addr).await;
    c.send(b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n").await;
    let first = c.response().await.expect("an answer");
    assert_error(&first, 502, "bad_gateway");
    c.send(b"GET /admin/secret HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        .await;
    let second = c.response().await.expect("the second request is a request");
    assert_error(&second, 401, "unauthorized");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "{}", up.text());
    reqs[0].assert_well_formed();
    assert_eq!(reqs[0].line, "GET /public/x HTTP/1.1");
    for h in ["upgrade", "http2-settings", "connection"] {
        assert!(reqs[0].header(h).is_none(), "{h} reached the upstream");
    }
    assert!(!up.text().contains("/admin"), "{}", up.text());
}

#[tokio::test]
async fn only_the_routes_upgrades_pass() {
    let up = RawUpstream::start(Answer::SwitchAnything).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    // websocket where the route lists none: forwarded without the upgrade, the 101 is
    // refused.
    let mut c = Client::connect(gw.addr).await;
    c.send(format!("GET /nows/x HTTP/1.1\r\nHost: gw.test\r\n{ws}").as_bytes())
        .await;
    assert_error(&c.response().await.expect("answer"), 502, "bad_gateway");
    // A protocol the route does not list, and a list of protocols.
    for upgrade in ["foo/1", "websocket, h2c"] {
        let mut c = Client::connect(gw.addr).await;
        let req = format!("GET /ws/x HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\n\r\n");
        c.send(req.as_bytes()).await;
        assert_error(&c.response().await.expect("answer"), 502, "bad_gateway");
    }
    // websocket on a route that allows it (the default): tunnelled.
    let mut c = Client::connect(gw.addr).await;
    c.send(format!("GET /ws/x HTTP/1.1\r\nHost: gw.test\r\n{ws}").as_bytes())
        .await;
    let r = c.response().await.expect("answer");
    assert_eq!(r.status, 101, "{}", r.body);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    c.send(b"ping-through-the-tunnel").await;
    let mut echoed = vec![0u8; 23];
    c.stream.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"ping-through-the-tunnel");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 4, "{}", up.text());
    for r in &reqs[..3] {
        assert!(r.header("upgrade").is_none(), "{:?}", r.line);
    }
    assert_eq!(reqs[3].header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn a_switch_to_another_protocol_is_refused() {
    let up = RawUpstream::start(Answer::SwitchTo("h2c")).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let mut c = Client::connect(gw.addr).await;
    c.send(b"GET /ws/x HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await;
    assert_error(&c.response().await.expect("answer"), 502, "bad_gateway");
    c.send(b"GET /admin/secret HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_error(&c.response().await.expect("answer"), 401, "unauthorized");
    assert!(!up.text().contains("/admin"), "{}", up.text());
}

#[tokio::test]
async fn identity_headers_never_pass_in_any_spelling() {
    let up = RawUpstream::start(Answer::Ok).await;
    // Names with '_' or '.' refused by default…
    let gw = gateway(&config(""), Some(up.addr)).await;
    for h in [
        "X.Auth.Subject: admin",
        "X_Auth_Subject: admin",
        "x.auth-scopes: admin",
    ] {
        let r = get(gw.addr, "/public/x", &[h]).await;
        assert_error(&r, 400, "invalid_request");
    }
    assert_eq!(up.requests().len(), 0);
    // …and removed when the operator accepts such names.
    let gw = gateway(&config("reject_underscore_headers = false"), Some(up.addr)).await;
    let t = token("items:read");
    let r = get(
        gw.addr,
        "/items/1",
        &[
            &bearer(&t),
            "X.Auth.Subject: admin",
            "X_AUTH_SUBJECT: admin",
            "x-auth.scopes: admin",
            "X-Auth-Roles: admin",
            "x.other: kept",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let req = &up.requests()[0];
    req.assert_well_formed();
    assert_eq!(req.header_values("x-auth-subject"), vec!["alice"]);
    let reserved: Vec<_> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            k.to_ascii_lowercase()
                .replace(['_', '.'], "-")
                .starts_with("x-auth-")
        })
        .collect();
    // Only the gateway's own, lower-case, dashed, with the verified values.
    assert!(
        reserved
            .iter()
            .all(|(k, v)| k.starts_with("x-auth-") && !v.contains("admin")),
        "{reserved:?}"
    );
    assert_eq!(req.header_values("x-auth-scopes"), vec!["items:read"]);
    assert_eq!(req.header("x.other"), Some("kept"));
}

#[tokio::test]
async fn connection_cannot_hide_the_token_or_remove_identity() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let t = token("items:read");
    let r = get(
        gw.addr,
        "/items/1",
        &[
            &bearer(&t),
            "Connection: close, Authorization, X-Auth-Subject, X-Drop",
            "X-Drop: 1",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let req = &up.requests()[0];
    req.assert_well_formed();
    assert_eq!(req.header("x-auth-subject"), Some("alice"));
    assert!(req.header("authorization").is_none());
    assert!(
        req.header("x-drop").is_none(),
        "Connection-named headers are hop-by-hop"
    );
}

#[tokio::test]
async fn head_limits_answer_before_anything_is_forwarded() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config("max_headers = 20"), Some(up.addr)).await;
    // Request target over the default 8 KiB.
    let long = format!("/public/{}", "a".repeat(8200));
    assert_error(&get(gw.addr, &long, &[]).await, 414, "uri_too_long");
    let long_query = format!("/public/x?q={}", "a".repeat(8200));
    assert_error(&get(gw.addr, &long_query, &[]).await, 414, "uri_too_long");
    // Just under the limit passes.
    let fits = format!("/public/{}", "a".repeat(8000));
    assert_eq!(get(gw.addr, &fits, &[]).await.status, 200);
    // Header count.
    let many: Vec<String> = (0..25).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_error(
        &get(gw.addr, "/public/x", &many).await,
        431,
        "headers_too_large",
    );
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "only the request that fits arrives");
    assert_eq!(reqs[0].target().len(), fits.len());
}

#[tokio::test]
async fn trace_and_connect_are_refused_server_wide() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = raw(
        gw.addr,
        "TRACE /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_error(&r, 501, "method_not_supported");
    let r = raw(
        gw.addr,
        "CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\n\r\n",
    )
    .await;
    assert_error(&r, 501, "method_not_supported");
    assert_eq!(up.connections(), 0);
    // An operator may allow TRACE again; a route without `methods` then forwards it.
    let gw = gateway(&config("refuse_methods = [\"CONNECT\"]"), Some(up.addr)).await;
    let r = raw(
        gw.addr,
        "TRACE /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.requests()[0].line, "TRACE /public/x HTTP/1.1");
}

#[tokio::test]
async fn override_headers_never_reach_the_upstream() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = get(
        gw.addr,
        "/public/x",
        &[
            "X-Original-URL: /admin/secret",
            "X-Rewrite-URL: /admin/secret",
            "X-HTTP-Method-Override: DELETE",
            "X-HTTP-Method: DELETE",
            "X-Method-Override: DELETE",
            "X-Kept: 1",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let req = &up.requests()[0];
    for h in [
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        assert!(req.header(h).is_none(), "{h} reached the upstream");
    }
    assert_eq!(req.header("x-kept"), Some("1"));
}

#[tokio::test]
async fn double_encoded_separators_are_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    for p in [
        "/public/%252e%252e/admin/secret",
        "/public/..%252fadmin",
        "/public/x%255c..%255cadmin",
        "/public/x%2500",
        "/public/%25%32%65%25%32%65/admin/secret",
    ] {
        assert_error(&get(gw.addr, p, &[]).await, 400, "invalid_request");
    }
    assert_eq!(up.connections(), 0);
    let gw = gateway(&config("reject_double_encoding = false"), Some(up.addr)).await;
    assert_eq!(get(gw.addr, "/public/%252e", &[]).await.status, 200);
    assert_eq!(up.requests()[0].line, "GET /public/%252e HTTP/1.1");
}

#[tokio::test]
async fn cors_replaces_the_upstreams_own_headers() {
    let up = RawUpstream::start(Answer::Ok).await;
    let cfg = format!(
        "{}\n[cors]\nallow_origins = [\"https://app.example\"]\n",
        config("")
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let r = get(gw.addr, "/public/x", &["Origin: https://evil.example"]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers
    );
    let r = get(gw.addr, "/public/x", &["Origin: https://app.example"]).await;
    assert_eq!(
        r.headers.get("access-control-allow-origin"),
        Some(&vec!["https://app.example".to_string()])
    );
}

/// Fails the test (instead of hanging it) when `f` does not finish in a minute.
async fn within<T>(f: impl std::future::Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing happened within a minute"))
}

/// Head deadline, short so the test waits little (what is asserted is the answer,
/// not how long it took).
#[tokio::test]
async fn a_slow_head_gets_408_and_a_silent_connection_is_closed() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config("header_read_timeout = \"300ms\""), Some(up.addr)).await;
    // Half a head, then nothing.
    let mut c = Client::connect(gw.addr).await;
    c.send(b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ")
        .await;
    let rest = within(c.rest(), "the 408").await;
    let r = parse_raw(&rest);
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&rest));
    assert_eq!(r.json()["error"], "request_timeout");
    // Nothing at all: closed without an answer.
    let mut c = Client::connect(gw.addr).await;
    assert!(within(c.rest(), "closing a silent connection")
        .await
        .is_empty());
    // Stuck in protocol detection (a prefix of the HTTP/2 preface), or an HTTP/2
    // preface and nothing after it: closed too.
    for stall in [&b"P"[..], &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]] {
        let mut c = Client::connect(gw.addr).await;
        c.send(stall).await;
        within(
            c.rest(),
            "closing a connection stuck before its first request",
        )
        .await;
    }
    // An idle keep-alive connection: closed without an unasked 408.
    let mut c = Client::connect(gw.addr).await;
    c.send(b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await;
    assert_eq!(c.response().await.expect("answer").status, 200);
    assert!(within(c.rest(), "closing an idle connection")
        .await
        .is_empty());
    assert_eq!(up.requests().len(), 1);
}

/// An upstream that answers before it has the whole request body is still reading
/// it: its connection must not be pooled, or the next request would queue behind the
/// upload (or be read as part of it by an upstream that skips unread bodies).
#[tokio::test]
async fn a_connection_still_uploading_is_never_reused() {
    let up = RawUpstream::start(Answer::Early).await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let mut uploader = Client::connect(gw.addr).await;
    uploader
        .send(b"POST /public/upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100000\r\n\r\n0123456789")
        .await;
    let r = within(uploader.response(), "the early answer").await;
    assert_eq!(r.expect("answer").status, 401);
    let r = within(get(gw.addr, "/public/next", &[]), "the next request").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        up.connections(),
        2,
        "the second request took a new connection"
    );
    assert_eq!(up.requests_on(1).len(), 1, "{}", up.text());
    assert_eq!(up.requests_on(1)[0].line, "GET /public/next HTTP/1.1");
}
