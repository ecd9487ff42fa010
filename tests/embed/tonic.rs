//! `examples/tonic_app.rs` behind `AuthLayer` with the gRPC renderer, called by
//! tonic's own client over HTTP/2 on loopback: refusals arrive as the gRPC statuses
//! UNAUTHENTICATED (16) and PERMISSION_DENIED (7), in a trailers-only response.

use crate::tonic_app;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http_body_util::{BodyExt as _, Full};
use tonic::Code;

use super::support::{layer, refused_tokens, token};

type Sender = hyper::client::conn::http2::SendRequest<tonic::body::Body>;

async fn start() -> (std::net::SocketAddr, Sender) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tonic_app::serve(listener, layer()));
    let io = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    (addr, sender)
}

/// Calls SayHello with tonic's client; `token` as the bearer.
async fn say_hello(
    addr: std::net::SocketAddr,
    sender: &Sender,
    token: Option<&str>,
) -> Result<String, tonic::Status> {
    let sender = sender.clone();
    let svc = tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        let mut s = sender.clone();
        async move { s.send_request(req).await }
    });
    let origin: http::Uri = format!("http://{addr}").parse().expect("uri");
    let mut grpc = tonic::client::Grpc::with_origin(svc, origin);
    grpc.ready().await.expect("ready");
    let mut req = tonic::Request::new(Bytes::from_static(b"bob"));
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("ascii"),
        );
    }
    let path = PathAndQuery::from_static("/hello.Greeter/SayHello");
    let resp = grpc.unary(req, path, tonic_app::RawCodec).await?;
    Ok(String::from_utf8_lossy(resp.get_ref()).into_owned())
}

#[tokio::test]
async fn a_token_with_the_scope_is_served() {
    let (addr, sender) = start().await;
    let reply = say_hello(addr, &sender, Some(&token("hello"))).await;
    assert_eq!(reply.expect("OK"), "hello bob, from alice");
}

#[tokio::test]
async fn no_token_or_a_refused_one_is_unauthenticated() {
    let (addr, sender) = start().await;
    let status = say_hello(addr, &sender, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    for (what, t) in refused_tokens("hello") {
        let status = say_hello(addr, &sender, Some(&t)).await.expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let (addr, sender) = start().await;
    let status = say_hello(addr, &sender, Some(&token("orders:read")))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

#[tokio::test]
async fn refusals_are_trailers_only_responses() {
    let (_, mut sender) = start().await;
    // The raw exchange: HTTP 200, the status in the headers, no message, no trailers
    // needed. A 5-byte gRPC frame header with an empty message as the request body.
    let frame = Bytes::from_static(&[0, 0, 0, 0, 0]);
    let req = http::Request::post("/hello.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", token("nope")))
        .body(tonic::body::Body::new(Full::new(frame)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    assert_eq!(resp.headers()["grpc-status"], "7");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(body.is_empty(), "a refusal carries no message");
}
