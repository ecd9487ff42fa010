//! The HTTP/2 part of the corpus (RFC 9113), with a hyper client speaking prior
//! knowledge: body limits with and without a declared length, a client resetting its
//! stream mid-response, and `:authority` against `Host`.

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::{config, within};
use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;

type H2 = hyper::client::conn::http2::SendRequest<
    http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
>;

async fn h2(gw: std::net::SocketAddr) -> H2 {
    let stream = TcpStream::connect(gw).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

fn boxed<B>(b: B) -> http_body_util::combinators::BoxBody<Bytes, std::io::Error>
where
    B: http_body::Body<Data = Bytes, Error = std::io::Error> + Send + Sync + 'static,
{
    b.boxed()
}

fn empty() -> http_body_util::combinators::BoxBody<Bytes, std::io::Error> {
    boxed(Empty::<Bytes>::new().map_err(|never| match never {}))
}

/// Status and body of an HTTP/2 answer.
async fn h2_answer(
    sender: &mut H2,
    req: Request<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>,
) -> (u16, serde_json::Value) {
    let resp = within(sender.send_request(req), "the HTTP/2 answer")
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let body = within(resp.into_body().collect(), "the HTTP/2 body")
        .await
        .expect("body")
        .to_bytes();
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[tokio::test]
async fn http2_declared_body_over_the_limit_is_413_and_never_forwarded() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let mut s = h2(gw.addr).await;
    let body = Full::new(Bytes::from(vec![b'x'; 4096])).map_err(|never| match never {});
    let req = Request::post("http://gw.test/public/big")
        .version(Version::HTTP_2)
        .header("content-length", "4096")
        .body(boxed(body))
        .expect("req");
    let (status, v) = h2_answer(&mut s, req).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"], "payload_too_large");
    assert_eq!(up.connections(), 0, "{}", up.text());
}

/// No content-length: the body streams until it passes the limit, then the upstream
/// request is cut off. The client gets `413`; the upstream never got a complete
/// request (its chunked body has no last chunk), so it cannot act on it.
#[tokio::test]
async fn http2_streamed_body_over_the_limit_is_413_and_never_complete_upstream() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let mut s = h2(gw.addr).await;
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(8);
    let req = Request::post("http://gw.test/public/stream")
        .version(Version::HTTP_2)
        .body(boxed(body))
        .expect("req");
    let answer = tokio::spawn(async move { h2_answer(&mut s, req).await });
    for _ in 0..4 {
        tx.send_data(Bytes::from(vec![b'y'; 512]))
            .await
            .expect("the gateway reads the body");
    }
    // The stream is left open (`tx` alive): the limit alone ends the exchange.
    let (status, v) = answer.await.expect("join");
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"], "payload_too_large");
    assert!(
        up.requests().is_empty(),
        "complete upstream request: {}",
        up.text()
    );
    assert!(
        up.received().len() < 2048,
        "more than the limit went upstream"
    );
    drop(tx);
}

/// The client resets its stream while the upstream is mid-body: the upstream
/// connection is closed, not handed back to the pool (its remaining body would be
/// read as the next request's answer), and the next request gets a new connection.
#[tokio::test]
async fn http2_reset_mid_response_never_returns_the_upstream_connection_to_the_pool() {
    let up = RawUpstream::start(Answer::Stall("/public/slow")).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let mut s = h2(gw.addr).await;
    let req = Request::get("http://gw.test/public/slow")
        .version(Version::HTTP_2)
        .body(empty())
        .expect("req");
    let resp = within(s.send_request(req), "the slow answer's head")
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = within(body.frame(), "the first body bytes")
        .await
        .expect("a frame")
        .expect("data");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(body); // RST_STREAM(CANCEL)
    within(
        up.ended(1),
        "the gateway closing the abandoned upstream connection",
    )
    .await;

    let req = Request::get("http://gw.test/public/after")
        .version(Version::HTTP_2)
        .body(empty())
        .expect("req");
    let (status, v) = h2_answer(&mut s, req).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["n"], 1, "answered by a fresh upstream connection");
    assert_eq!(up.connections(), 2);
    let first = up.requests_on(0);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].line, "GET /public/slow HTTP/1.1");
    let second = up.requests_on(1);
    assert_eq!(second.len(), 1);
    second[0].assert_well_formed();
    assert_eq!(second[0].line, "GET /public/after HTTP/1.1");
}

/// RFC 9113 §8.3.1: `:authority` and `Host` must agree; the request would otherwise
/// be routed by one and read by the upstream (or its logs) as the other.
#[tokio::test]
async fn http2_authority_disagreeing_with_host_is_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let mut s = h2(gw.addr).await;
    for (uri, host) in [
        ("http://a.test/hosted/x", "b.test"),
        ("http://b.test/hosted/x", "a.test"),
    ] {
        let req = Request::get(uri)
            .version(Version::HTTP_2)
            .header("host", host)
            .body(empty())
            .expect("req");
        let (status, v) = h2_answer(&mut s, req).await;
        assert_eq!(status, 400, "{uri} + Host {host}: {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    assert_eq!(up.connections(), 0, "{}", up.text());
    // Agreeing (or `:authority` alone) routes by that host.
    for host in [Some("a.test"), Some("A.TEST"), None] {
        let mut b = Request::get("http://a.test/hosted/x").version(Version::HTTP_2);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let (status, v) = h2_answer(&mut s, b.body(empty()).expect("req")).await;
        assert_eq!(status, 200, "Host {host:?}: {v}");
    }
    let reqs = up.requests();
    assert_eq!(reqs.len(), 3, "{}", up.text());
    for r in &reqs {
        r.assert_well_formed();
        assert_eq!(r.line, "GET /hosted/x HTTP/1.1");
    }
}
