//! Resource bounds, each shown by a client that hits it: the connection cap (accepting
//! pauses), the in-flight cap (`503` + `Retry-After`), a slow reader (the write
//! timeout frees the upstream), an idle HTTP/2 connection (GOAWAY after the idle
//! timeout). Conditions are awaited, not timed: every wait has a generous guard.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::support::*;

const GUARD: Duration = Duration::from_secs(30);

fn routes(extra_server: &str) -> String {
    format!(
        "[server]\n{extra_server}\n[[upstreams]]\nname = \"up\"\nurl = \"http://{{UP}}\"\n\
         [[routes]]\nname = \"r\"\npath = \"/**\"\nupstream = \"up\"\nauth = \"none\"\n"
    )
}

fn shed(bound: &str) -> u64 {
    portcullis::metrics::metrics()
        .shed
        .get_or_create(&portcullis::metrics::ResultLabel {
            result: match bound {
                "connections" => "connections",
                _ => "in_flight",
            },
        })
        .get()
}

/// Sends one keep-alive request on `s` and reads its answer's head and JSON body.
async fn ask(s: &mut TcpStream, target: &str) -> String {
    let req = format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
            return text.to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_pauses_at_the_connection_cap() {
    let up = Upstream::start().await;
    let gw = gateway(&routes("max_connections_per_worker = 2"), Some(up.addr)).await;
    let before = shed("connections");
    let mut a = TcpStream::connect(gw.addr).await.expect("a");
    let mut b = TcpStream::connect(gw.addr).await.expect("b");
    assert!(ask(&mut a, "/one").await.starts_with("HTTP/1.1 200"));
    assert!(ask(&mut b, "/two").await.starts_with("HTTP/1.1 200"));
    // The third is left in the kernel's backlog: its request is not read.
    let mut c = TcpStream::connect(gw.addr).await.expect("c");
    let (tx, rx) = oneshot::channel();
    let third = tokio::spawn(async move {
        let answer = ask(&mut c, "/three").await;
        let _ = tx.send(());
        answer
    });
    let mut waited = 0;
    while shed("connections") == before {
        assert!(waited < 3000, "the cap was never reached");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(up.seen().len(), 2, "the third request was not taken");
    drop(a);
    tokio::time::timeout(GUARD, rx)
        .await
        .expect("served once a slot is free")
        .expect("answer");
    assert!(third.await.expect("third").starts_with("HTTP/1.1 200"));
    assert_eq!(up.seen().len(), 3);
    drop(b);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_cut_off_and_the_upstream_freed() {
    // An upstream that writes an endless body until its connection is closed.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut head = vec![0u8; 4096];
        let _ = s.read(&mut head).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let chunk = [b'x'; 64 * 1024];
        let framed = [b"10000\r\n".as_slice(), &chunk, b"\r\n"].concat();
        while s.write_all(&framed).await.is_ok() {}
        let _ = closed_tx.send(());
    });
    let gw = gateway(&routes("write_timeout = \"300ms\""), Some(addr)).await;
    let mut client = TcpStream::connect(gw.addr).await.expect("connect");
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .expect("write");
    // The client never reads: the gateway's writes stall, the write timeout closes
    // the connection, and the upstream's stream is dropped with it.
    tokio::time::timeout(GUARD, closed)
        .await
        .expect("the upstream connection was closed")
        .expect("signal");
    drop(client);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_gets_goaway() {
    let up = Upstream::start().await;
    let gw = gateway(&routes("idle_timeout = \"300ms\""), Some(up.addr)).await;
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2");
    let conn = tokio::spawn(conn);
    let resp = send
        .send_request(
            http::Request::get(format!("http://{}/one", gw.addr))
                .body(Empty::<Bytes>::new())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    drop(resp);
    // No further request: the gateway ends the connection on its own.
    let ended = tokio::time::timeout(GUARD, conn).await;
    assert!(
        ended.is_ok(),
        "the idle connection was closed by the gateway"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_past_the_in_flight_cap_is_shed() {
    let mut up = Upstream::start().await;
    let gw = gateway(&routes("max_in_flight = 1"), Some(up.addr)).await;
    let before = shed("in_flight");
    let addr = gw.addr;
    let held = tokio::spawn(async move { get(addr, "/hold/1", &[]).await });
    assert_eq!(up.arrived.recv().await.as_deref(), Some("/hold/1"));
    let r = get(gw.addr, "/two", &[]).await;
    assert_error(&r, 503, "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(shed("in_flight"), before + 1);
    assert_eq!(
        up.seen().len(),
        1,
        "the shed request never reached the upstream"
    );
    up.release.notify_one();
    assert_eq!(held.await.expect("held").status, 200);
    assert_eq!(get(gw.addr, "/three", &[]).await.status, 200);
    gw.shutdown().await;
}

/// Several workers share a port through SO_REUSEPORT, which would also let a second
/// gateway (an old one still running) take half of the first one's connections
/// silently: the second refuses to start and names the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_a_taken_port_refuses_to_start() {
    let port = closed_port().await.port();
    let toml = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[[upstreams]]\nname = \"e\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"e\"\nauth = \"none\"\n");
    let text =
        |t: &str| portcullis::config::parse_str(t, std::path::Path::new("t.toml")).expect("config");
    let first = portcullis::Gateway::start_workers(text(&toml), 2)
        .await
        .expect("first");
    let second = portcullis::Gateway::start_workers(text(&toml), 2).await;
    let e = second.expect_err("the port is taken");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert!(
        e.to_string()
            .contains(&format!("server.listen 127.0.0.1:{port}")),
        "{e}"
    );
    first.shutdown().await;
}
