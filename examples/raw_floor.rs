//! A measuring stick for `bench/`, not a product path: the least an HTTP/1.1 relay on
//! tokio does per request *without hyper*. The request head is parsed with `httparse`
//! (hyper's own parser) and written as it came to a kept-alive upstream connection;
//! the response head is parsed the same way, and head and body (`Content-Length`
//! only) are written back. No header map, no `http` types, no channels, no spawned
//! client connection, no body type: one task per client connection doing plain reads
//! and writes on two sockets.
//!
//! It answers how much of the distance between `examples/hyper_floor.rs` and nginx is
//! hyper's (bench/README.md); it checks nothing and supports nothing beyond that
//! (no chunked bodies, no pipelining, no upgrades: those answer `502` or close).
//!
//! ```sh
//! cargo run --release --example raw_floor -- 127.0.0.1:8082 127.0.0.1:8080
//! ```

use std::cell::RefCell;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod floor_common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n";

thread_local! {
    static IDLE: RefCell<Vec<TcpStream>> = const { RefCell::new(Vec::new()) };
}

/// Reads into `buf` until `parse` says a whole head is there; `Some(head length,
/// content length)`, or `None` when the peer closed or sent what this does not handle.
async fn read_head(
    io: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Option<Option<(usize, usize)>>,
) -> Option<(usize, usize)> {
    loop {
        if !buf.is_empty() {
            match parse(buf)? {
                Some(done) => return Some(done),
                None if buf.len() >= 64 * 1024 => return None,
                None => {}
            }
        }
        buf.reserve(4096);
        if io.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    let mut n = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            n = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
    }
    Some(n)
}

/// What a parse of a head says: `Some(Some((head length, content length)))` when it
/// is complete, `Some(None)` when more bytes are needed, `None` when it is not handled.
fn head(
    parsed: httparse::Result<usize>,
    headers: &[httparse::Header<'_>],
) -> Option<Option<(usize, usize)>> {
    match parsed.ok()? {
        httparse::Status::Complete(len) => Some(Some((len, content_length(headers)?))),
        httparse::Status::Partial => Some(None),
    }
}

fn request_head(b: &[u8]) -> Option<Option<(usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(b);
    head(parsed, req.headers)
}

fn response_head(b: &[u8]) -> Option<Option<(usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = resp.parse(b);
    head(parsed, resp.headers)
}

/// Reads until `buf` holds `want` bytes.
async fn fill(io: &mut TcpStream, buf: &mut Vec<u8>, want: usize) -> Option<()> {
    while buf.len() < want {
        buf.reserve(want - buf.len());
        if io.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
    Some(())
}

async fn upstream(addr: SocketAddr) -> Option<TcpStream> {
    if let Some(s) = IDLE.with(|i| i.borrow_mut().pop()) {
        return Some(s);
    }
    let s = TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

/// One exchange; `None` closes the client connection.
async fn relay(up: &mut TcpStream, req: &[u8], resp: &mut Vec<u8>) -> Option<()> {
    up.write_all(req).await.ok()?;
    let (head, body) = read_head(up, resp, response_head).await?;
    fill(up, resp, head + body).await?;
    // Anything past the response is not handled (no pipelining upstream).
    (resp.len() == head + body).then_some(())
}

async fn serve(mut client: TcpStream, addr: SocketAddr) {
    let (mut req, mut resp) = (Vec::with_capacity(8192), Vec::with_capacity(8192));
    loop {
        req.clear();
        let Some((head, body)) = read_head(&mut client, &mut req, request_head).await else {
            return;
        };
        if fill(&mut client, &mut req, head + body).await.is_none() || req.len() != head + body {
            return;
        }
        resp.clear();
        let answer = match upstream(addr).await {
            Some(mut up) => match relay(&mut up, &req, &mut resp).await {
                Some(()) => {
                    IDLE.with(|i| i.borrow_mut().push(up));
                    &resp[..]
                }
                None => BAD_GATEWAY,
            },
            None => BAD_GATEWAY,
        };
        if client.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    floor_common::run("raw_floor", serve)
}
