//! The least a proxy built on hyper and tokio does per request, for `bench/`: hyper's
//! HTTP/1.1 server connection, the request handed as it is to a kept-alive hyper
//! HTTP/1.1 client connection (a per-thread stack of idle ones, no cap, no timers), the
//! response streamed back. No routing, no header work, no layers, no ids, no logs:
//! what is left is hyper, tokio and `http` on both sides of one proxied request — the
//! floor under any gateway that uses them (`bench/instructions.sh` target `floor`).
//!
//! ```sh
//! cargo run --release --example hyper_floor -- 127.0.0.1:8081 127.0.0.1:8080
//! ```
//!
//! Not a product path: errors answer `502` and nothing else is checked.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

mod floor_common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Out = BoxBody<Bytes, hyper::Error>;

thread_local! {
    static IDLE: RefCell<Vec<SendRequest<Incoming>>> = const { RefCell::new(Vec::new()) };
}

async fn sender(upstream: SocketAddr) -> Option<SendRequest<Incoming>> {
    while let Some(s) = IDLE.with(|i| i.borrow_mut().pop()) {
        if !s.is_closed() {
            return Some(s);
        }
    }
    let tcp = TcpStream::connect(upstream).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(s)
}

async fn proxy(req: Request<Incoming>, upstream: SocketAddr) -> Result<Response<Out>, Infallible> {
    let bad_gateway = || {
        let mut r = Response::new(Empty::new().map_err(|e| match e {}).boxed());
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r
    };
    let Some(mut s) = sender(upstream).await else {
        return Ok(bad_gateway());
    };
    if s.ready().await.is_err() {
        return Ok(bad_gateway());
    }
    match s.send_request(req).await {
        Ok(resp) => {
            // Back to the stack once the head is in: hyper queues the next request
            // behind this response's body on the same connection.
            IDLE.with(|i| i.borrow_mut().push(s));
            Ok(resp.map(|b| b.boxed()))
        }
        Err(_) => Ok(bad_gateway()),
    }
}

fn main() -> std::io::Result<()> {
    floor_common::run("hyper_floor", |tcp, upstream| async move {
        let svc = hyper::service::service_fn(move |req| proxy(req, upstream));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), svc)
            .await;
    })
}
