use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::support::*;

fn config(extra_server: &str) -> String {
    format!(
        r#"[server]
{extra_server}
[[upstreams]]
name = "up"
url = "http://{{UP}}"
response_timeout = "300ms"

[[upstreams]]
name = "based"
url = "http://{{UP}}/base/"
preserve_host = true

[[routes]]
path = "/api/**"
upstream = "up"
auth = "none"
strip_prefix = "/api"

[[routes]]
path = "/hang/**"
upstream = "up"
auth = "none"

[[routes]]
path = "/hold/**"
upstream = "up"
auth = "none"

[[routes]]
path = "/based/**"
upstream = "based"
auth = "none"
"#
    )
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let up = Upstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = get(
        gw.addr,
        "/api/x",
        &[
            "Connection: close, x-drop-me",
            "X-Drop-Me: 1",
            "Keep-Alive: timeout=9",
            "TE: trailers",
            "Proxy-Authorization: Basic eA==",
            "Proxy-Connection: keep-alive",
            "Upgrade: h2c",
            "X-Keep: yes",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.last();
    for h in [
        "x-drop-me",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(seen.headers.get(h).is_none(), "{h} reached the upstream");
    }
    assert_eq!(seen.headers["x-keep"], "yes");
    for h in ["x-up-secret", "keep-alive", "proxy-authenticate"] {
        assert!(r.header(h).is_none(), "{h} reached the client");
    }
    assert_eq!(r.header("x-up-public"), Some("1"));
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_clients_are_replaced() {
    let up = Upstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = get(
        gw.addr,
        "/api/x",
        &[
            "X-Forwarded-For: 6.6.6.6",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil.test",
            "Forwarded: for=6.6.6.6",
            "X-Real-IP: 6.6.6.6",
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = up.last().headers;
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "gw.test");
    assert!(h.get("forwarded").is_none() && h.get("x-real-ip").is_none());
    assert_eq!(
        h["host"],
        up.addr.to_string(),
        "Host is the upstream's unless preserve_host"
    );
}

#[tokio::test]
async fn forwarded_headers_from_trusted_proxies_are_extended() {
    let up = Upstream::start().await;
    let gw = gateway(
        &config("trusted_proxies = [\"127.0.0.0/8\"]"),
        Some(up.addr),
    )
    .await;
    let r = get(
        gw.addr,
        "/api/x",
        &[
            "X-Forwarded-For: 203.0.113.9",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: api.example.com",
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = up.last().headers;
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "api.example.com");
}

#[tokio::test]
async fn identity_headers_from_clients_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = get(
        gw.addr,
        "/api/x",
        &[
            "X-Auth-Subject: mallory",
            "X-AUTH-SCOPES: admin",
            "x-auth-roles: root",
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = up.last().headers;
    assert!(h.keys().all(|k| !k.as_str().starts_with("x-auth")), "{h:?}");
    let r = get(gw.addr, "/api/x", &["x_auth_subject: mallory"]).await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test]
async fn strip_prefix_base_path_and_preserve_host() {
    let up = Upstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    assert_eq!(get(gw.addr, "/api/v1/items?a=1", &[]).await.status, 200);
    assert_eq!(up.last().target, "/v1/items?a=1");
    assert_eq!(get(gw.addr, "/api", &[]).await.status, 200);
    assert_eq!(up.last().target, "/");
    assert_eq!(get(gw.addr, "/based/x", &[]).await.status, 200);
    let seen = up.last();
    assert_eq!(seen.target, "/base/based/x");
    assert_eq!(
        seen.headers["host"], "gw.test",
        "preserve_host keeps the client's Host"
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let closed = closed_port().await;
    let text = format!("[[upstreams]]\nname=\"gone\"\nurl=\"http://{closed}\"\n[[routes]]\npath=\"/**\"\nupstream=\"gone\"\nauth=\"none\"\n");
    let gw = gateway(&text, None).await;
    let r = get(gw.addr, "/x", &[]).await;
    assert_error(&r, 502, "bad_gateway");
    assert!(
        !r.body.contains(&closed.port().to_string()),
        "no upstream detail leaks: {}",
        r.body
    );
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let r = get(gw.addr, "/hang/x", &[]).await;
    assert_error(&r, 504, "gateway_timeout");
    assert_eq!(up.seen().len(), 1, "the request did reach the upstream");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let up = Upstream::start().await;
    let gw = gateway(&config("max_body_bytes = \"1KiB\""), Some(up.addr)).await;
    // Declared too large: refused before anything is forwarded.
    let r = raw(gw.addr, "POST /api/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n").await;
    assert_error(&r, 413, "payload_too_large");
    assert!(up.seen().is_empty());
    // Chunked, turning out too large while streaming.
    let chunk = "a".repeat(600);
    let req = format!("POST /api/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    let r = raw(gw.addr, &req).await;
    assert_error(&r, 413, "payload_too_large");
    // Within the limit: forwarded whole.
    let req = format!("POST /api/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 600\r\nConnection: close\r\n\r\n{chunk}");
    let r = raw(gw.addr, &req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 600);
    assert_eq!(up.last().body_len, 600);
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let up = Upstream::start().await;
    let gw = gateway(&config("max_header_bytes = \"4KiB\""), Some(up.addr)).await;
    let big = format!("X-Big: {}", "a".repeat(5000));
    let r = get(gw.addr, "/api/x", &[&big]).await;
    assert_error(&r, 431, "headers_too_large");
    let many: Vec<String> = (0..40)
        .map(|i| format!("X-H{i}: {}", "b".repeat(100)))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = get(gw.addr, "/api/x", &refs).await;
    assert_error(&r, 431, "headers_too_large");
    // Far beyond even hyper's read buffer: still refused with 431 (hyper's own answer).
    let huge = format!("X-Huge: {}", "c".repeat(64 * 1024));
    let r = get(gw.addr, "/api/x", &[&huge]).await;
    assert_eq!(r.status, 431);
    assert!(up.seen().is_empty());
}

/// 100 MiB stream up to the upstream: the first bytes must reach the upstream while the
/// client is still holding back the other 99 MiB — a gateway that buffered the body
/// would never forward them, and the test would time out.
#[tokio::test]
async fn request_bodies_stream_without_buffering() {
    let mut up = Upstream::start().await;
    let gw = gateway(&config("max_body_bytes = \"200MiB\""), Some(up.addr)).await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    let req = Request::post("/api/upload")
        .header("host", "gw.test")
        .body(body)
        .expect("req");
    let response = tokio::spawn(async move { sender.send_request(req).await });

    const MIB: usize = 1 << 20;
    let chunk = Bytes::from(vec![b'x'; MIB]);
    tx.send_data(chunk.clone()).await.expect("first chunk");
    tokio::time::timeout(Duration::from_secs(10), up.first_bytes.recv())
        .await
        .expect("the first MiB reached the upstream before the rest was sent")
        .expect("event");
    for _ in 1..100 {
        if tx.send_data(chunk.clone()).await.is_err() {
            break;
        }
    }
    drop(tx);
    let resp = response.await.expect("join").expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["body_len"], 100 * MIB as u64);
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let up = Upstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/api/h2?x=1", gw.addr))
        .version(Version::HTTP_2)
        .body(Empty::<Bytes>::new())
        .expect("req");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-up-secret").is_none());
    let seen = up.last();
    assert_eq!(seen.target, "/h2?x=1");
    assert_eq!(seen.headers["x-forwarded-host"], gw.addr.to_string());
}
