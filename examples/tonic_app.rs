//! A tonic gRPC service behind Portcullis' [`AuthLayer`], refusals as gRPC statuses
//! ([`GrpcRenderer`]: `16` UNAUTHENTICATED, `7` PERMISSION_DENIED).
//!
//! The service is hand-written on `tonic::server::Grpc` with a pass-through codec, so
//! the example needs neither protoc nor prost; a `tonic-build` service is layered the
//! same way (`Server::builder().layer(auth)`, or `auth.layer(GreeterServer::new(..))`).
//! It serves HTTP/2 with hyper directly (tonic's `transport` feature is not needed).
//!
//! ```text
//! cargo run --example tonic_app -- examples/auth.toml 127.0.0.1:50051
//! ```
//!
//! `tests/embed/tonic.rs` calls it with tonic's client over loopback.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, BufMut as _, Bytes};
use portcullis::embed::{AuthLayer, GrpcRenderer, Principal};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};
use tower::{Layer as _, Service, ServiceExt as _};

/// Messages as raw bytes: the codec tonic's generated code would take from prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

/// `hello.Greeter/SayHello`: greets the verified caller by subject.
#[derive(Debug, Clone, Default)]
pub struct Greeter;

async fn say_hello(req: Request<Bytes>) -> Result<Response<Bytes>, Status> {
    let caller = req
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::unauthenticated("no caller"))?;
    let name = String::from_utf8_lossy(req.get_ref());
    Ok(Response::new(Bytes::from(format!(
        "hello {name}, from {}",
        caller.subject
    ))))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> Service<http::Request<B>> for Greeter
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            let resp = match req.uri().path() {
                "/hello.Greeter/SayHello" => {
                    let svc = tower::service_fn(say_hello);
                    tonic::server::Grpc::new(RawCodec).unary(svc, req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

/// Serves `auth` around the greeter on `listener`, HTTP/2 (gRPC), until the task ends.
pub async fn serve(listener: tokio::net::TcpListener, auth: AuthLayer) -> std::io::Result<()> {
    let svc = auth.with_renderer(GrpcRenderer).layer(Greeter);
    loop {
        let (io, _) = listener.accept().await?;
        let svc = svc.clone();
        tokio::spawn(async move {
            let hyper_svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
            let conn =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(io), hyper_svc);
            if let Err(e) = conn.await {
                eprintln!("connection: {e}");
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let policy = args.next().unwrap_or_else(|| "examples/auth.toml".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:50051".into());
    let auth = AuthLayer::from_file(policy.as_ref())?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("gRPC on {}", listener.local_addr()?);
    serve(listener, auth).await?;
    Ok(())
}
