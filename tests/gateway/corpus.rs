//! The protocol regression corpus: hostile or unusual request framing, sent as raw
//! bytes (or as HTTP/2 frames), with what the client gets AND what the upstream saw:
//! nothing, or exactly one well-formed origin-form request with the right body. A
//! plain TCP listener records the upstream side, so nothing is parsed away.
//!
//! Answers marked "hyper" are hyper's own bare `400` (no JSON body): the request is
//! refused by the HTTP/1 parser before the pipeline sees it, and hyper closes the
//! connection. HTTP/2 cases are in `h2.rs`. The table in docs/security.md lists each
//! case.

use std::time::Duration;

use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;
use crate::wire::{parse_raw, token, Client};

mod h2;

/// `wire::config` with a 1 KiB body limit, a head deadline long enough that only the
/// gateway closing a connection ends it (not an idle timeout), and a route that
/// answers one host only.
fn config() -> String {
    let mut cfg = crate::wire::config(
        "max_body_bytes = \"1KiB\"\nheader_read_timeout = \"10min\"\nrequest_timeout = \"10min\"",
    );
    cfg.push_str(
        r#"
[[routes]]
path = "/hosted/**"
host = "a.test"
upstream = "up"
auth = "none"
"#,
    );
    cfg
}

/// Fails the test (instead of hanging it) when `f` does not finish in a minute.
async fn within<T>(f: impl std::future::Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing happened within a minute"))
}

/// Sends `bytes` on a new connection and reads until the gateway closes it: the
/// answers, and proof that the connection was closed (a keep-alive connection would
/// hang here until the hang guard fires).
async fn until_closed(gw: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(gw).await;
    c.send(bytes).await;
    within(c.rest(), "the gateway closing the connection").await
}

/// The status codes of every response in `bytes` (status lines only).
fn statuses(bytes: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.get(..3)?.parse().ok())
        .collect()
}

/// A request hyper's parser refuses: one bare `400`, the connection closed, and not a
/// byte sent upstream.
async fn refused_by_the_parser(up: &RawUpstream, gw: std::net::SocketAddr, bytes: &[u8]) {
    let out = until_closed(gw, bytes).await;
    let shown = String::from_utf8_lossy(bytes);
    assert_eq!(statuses(&out), vec![400], "{shown:?} got {out:?}");
    assert_eq!(up.connections(), 0, "{shown:?} reached the upstream");
}

/// A request the pipeline refuses: one JSON `400` with `Connection: close`, the
/// connection really closed, and not a byte sent upstream.
async fn refused_and_closed(up: &RawUpstream, gw: std::net::SocketAddr, bytes: &[u8]) {
    let out = until_closed(gw, bytes).await;
    let shown = String::from_utf8_lossy(bytes);
    assert_eq!(statuses(&out), vec![400], "{shown:?} got {out:?}");
    let r = parse_raw(&out);
    assert_error(&r, 400, "invalid_request");
    assert_eq!(r.header("connection"), Some("close"), "{shown:?}");
    assert_eq!(up.connections(), 0, "{shown:?} reached the upstream");
}

/// The only request the upstream received, checked well-formed.
fn the_one_request(up: &RawUpstream) -> crate::raw_upstream::RawRequest {
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "upstream got: {:?}", up.text());
    reqs[0].assert_well_formed();
    reqs[0].clone()
}

// --- Content-Length and Transfer-Encoding (RFC 9112 §6.1, §6.3) ---------------------

/// Both framings, in both orders, with a pipelined request hidden where a
/// Content-Length reader would see body. hyper lets Transfer-Encoding win, drops the
/// Content-Length and closes the connection after answering (RFC 9112 §6.1 allows
/// exactly this, or a refusal): the upstream gets one chunked request, and the hidden
/// request is never read as a request.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_framed_by_te_alone_and_closed() {
    for head in [
        "Content-Length: 3\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 3",
    ] {
        let up = RawUpstream::start(Answer::Ok).await;
        let gw = gateway(&config(), Some(up.addr)).await;
        let req = format!(
            "POST /public/cl-te HTTP/1.1\r\nHost: gw.test\r\n{head}\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n\
             GET /public/smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"
        );
        let out = until_closed(gw.addr, req.as_bytes()).await;
        assert_eq!(statuses(&out), vec![200], "{head:?}: {out:?}");
        let r = parse_raw(&out);
        assert_eq!(r.header("connection"), Some("close"), "{head:?}");
        let seen = the_one_request(&up);
        assert_eq!(seen.line, "POST /public/cl-te HTTP/1.1");
        assert_eq!(seen.body, b"hello", "{head:?}");
        assert!(seen.header("content-length").is_none(), "{head:?}");
        assert!(!up.text().contains("smuggled"), "{}", up.text());
    }
}

#[tokio::test]
async fn duplicate_equal_content_lengths_are_forwarded_as_one() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let r = raw(
        gw.addr,
        "POST /public/dup HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\
         Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = the_one_request(&up);
    assert_eq!(seen.header_values("content-length"), vec!["5"]);
    assert_eq!(seen.body, b"hello");
}

#[tokio::test]
async fn duplicate_unequal_content_lengths_are_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for cl in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
    ] {
        let req = format!("POST /public/dup HTTP/1.1\r\nHost: gw.test\r\n{cl}\r\n\r\nhello!");
        refused_by_the_parser(&up, gw.addr, req.as_bytes()).await;
    }
}

/// Codings hyper's parser refuses (chunked not last) …
#[tokio::test]
async fn transfer_encodings_other_than_chunked_last_are_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for te in ["chunked, identity", "xchunked", "identity", "chunked;q=1"] {
        let req = format!(
            "POST /public/te HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        refused_by_the_parser(&up, gw.addr, req.as_bytes()).await;
    }
}

/// … and those it would frame as chunked although the gateway cannot honour them: a
/// coding it does not implement before `chunked` (the upstream would get the coded
/// bytes with nothing saying so), `chunked` twice (RFC 9112 §7: a sender MUST NOT),
/// or the list split over two lines. Refused by hygiene, and the connection closed.
#[tokio::test]
async fn transfer_encodings_the_gateway_cannot_honour_are_refused_and_closed() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for te in [
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
    ] {
        let req = format!(
            "POST /public/te HTTP/1.1\r\nHost: gw.test\r\n{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        refused_and_closed(&up, gw.addr, req.as_bytes()).await;
    }
    // `chunked` in any case is the one accepted coding.
    let r = raw(
        gw.addr,
        "POST /public/te HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(the_one_request(&up).body, b"hello");
}

/// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is a framing fault.
#[tokio::test]
async fn transfer_encoding_in_http_1_0_is_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let out = until_closed(
        gw.addr,
        b"POST /public/te HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.") && text[9..].starts_with("400"),
        "{text:?}"
    );
    assert_eq!(up.connections(), 0, "{}", up.text());
}

// --- Header lines (RFC 9112 §5) -----------------------------------------------------

#[tokio::test]
async fn folded_header_lines_are_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for head in [
        "Host: gw.test\r\nX-Folded: a\r\n b",
        "Host: gw.test\r\nX-Folded: a\r\n\tb",
        // A folded Host: joined, it would read `gw.test evil.test`.
        "Host: gw.test\r\n evil.test",
        // Folded into a framing header.
        "Host: gw.test\r\nContent-Length:\r\n 5",
    ] {
        let req = format!("POST /public/fold HTTP/1.1\r\n{head}\r\n\r\nhello");
        refused_by_the_parser(&up, gw.addr, req.as_bytes()).await;
    }
}

#[tokio::test]
async fn space_before_the_colon_is_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for lines in [
        "Host : gw.test",
        "Host\t: gw.test",
        "Host: gw.test\r\nContent-Length : 5",
        "Host: gw.test\r\nTransfer-Encoding : chunked",
    ] {
        let req = format!("POST /public/sp HTTP/1.1\r\n{lines}\r\n\r\nhello");
        refused_by_the_parser(&up, gw.addr, req.as_bytes()).await;
    }
}

/// RFC 9112 §2.2 lets a recipient accept a bare LF as a line end; hyper does, and the
/// upstream gets the request re-serialized with CRLF. A bare CR is refused.
#[tokio::test]
async fn bare_lf_heads_are_forwarded_with_crlf_and_bare_cr_is_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let out = until_closed(
        gw.addr,
        b"POST /public/lf HTTP/1.1\nHost: gw.test\nConnection: close\nX-Lf: 1\r\nContent-Length: 5\n\nhello",
    )
    .await;
    assert_eq!(statuses(&out), vec![200], "{out:?}");
    let seen = the_one_request(&up);
    assert_eq!(seen.line, "POST /public/lf HTTP/1.1");
    assert_eq!(seen.header("x-lf"), Some("1"));
    assert_eq!(seen.body, b"hello");

    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for head in [
        "GET /public/cr HTTP/1.1\r\nHost: gw.test\r\nX-Cr: a\rb\r\n\r\n",
        "GET /public/cr HTTP/1.1\rHost: gw.test\r\n\r\n",
    ] {
        refused_by_the_parser(&up, gw.addr, head.as_bytes()).await;
    }
}

// --- Request targets (RFC 9112 §3.2) ------------------------------------------------

#[tokio::test]
async fn absolute_form_is_forwarded_in_origin_form_when_host_agrees() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let r = raw(
        gw.addr,
        "GET http://GW.test/public/abs?q=1 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = the_one_request(&up);
    assert_eq!(seen.line, "GET /public/abs?q=1 HTTP/1.1");
    assert_eq!(seen.header_values("host"), vec![up.addr.to_string()]);
    assert!(!up.text().contains("http://"), "{}", up.text());
}

#[tokio::test]
async fn absolute_form_disagreeing_with_host_is_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for target in [
        "http://admin.example/public/x",
        "http://gw.test:8080/public/x",
        "http://user@gw.test/public/x",
    ] {
        let r = raw(
            gw.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_error(&r, 400, "invalid_request");
    }
    // With a host route: the target's host must not route past the Host header.
    let r = raw(
        gw.addr,
        "GET http://a.test/hosted/x HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(up.connections(), 0, "{}", up.text());
}

/// `OPTIONS *` asks about the server, not a resource: no route can take it, and it
/// is never forwarded (it would reach the upstream as some path it never asked for).
#[tokio::test]
async fn asterisk_form_is_never_forwarded() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for req in [
        "OPTIONS * HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw(gw.addr, req).await;
        assert!(
            (400..500).contains(&r.status),
            "{req:?}: {} {}",
            r.status,
            r.body
        );
        r.json();
    }
    assert_eq!(up.connections(), 0, "{}", up.text());
}

// --- Expect: 100-continue (RFC 9110 §10.1.1) ----------------------------------------

/// A denial is the final answer, sent without `100 Continue`: the client never sends
/// the body and the upstream sees nothing.
#[tokio::test]
async fn expect_continue_denials_answer_without_100() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for (req, status) in [
        // No token on a protected route.
        (
            "POST /items/1 HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            401,
        ),
        // A declared body over the 1 KiB limit, on a public route.
        (
            "POST /public/big HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n",
            413,
        ),
    ] {
        let mut c = Client::connect(gw.addr).await;
        c.send(req.as_bytes()).await;
        let r = within(c.response(), "the denial").await.expect("an answer");
        assert_eq!(r.status, status, "{req:?}: {}", r.body);
        assert!(r.json()["error"].is_string());
        let rest = within(c.rest(), "the connection closing").await;
        assert!(
            !String::from_utf8_lossy(&rest).contains("100 Continue"),
            "{rest:?}"
        );
    }
    assert_eq!(up.connections(), 0, "{}", up.text());
}

#[tokio::test]
async fn expect_continue_allowed_gets_100_then_the_upstream_gets_the_body() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let t = token("items:read");
    let mut c = Client::connect(gw.addr).await;
    c.send(
        format!(
            "POST /items/1 HTTP/1.1\r\nHost: gw.test\r\n{}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            bearer(&t)
        )
        .as_bytes(),
    )
    .await;
    let first = within(c.response(), "100 Continue")
        .await
        .expect("an answer");
    assert_eq!(first.status, 100, "{first:?}");
    c.send(b"hello").await;
    let r = within(c.response(), "the answer").await.expect("an answer");
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = the_one_request(&up);
    assert_eq!(seen.body, b"hello");
    assert!(seen.header("expect").is_none(), "{:?}", seen.headers);
}
