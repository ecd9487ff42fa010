//! Upstream connection pooling: keep-alive reuse, upstreams that close connections,
//! the idle timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::*;

/// How the raw upstream treats a connection after each response.
#[derive(Clone, Copy)]
enum After {
    KeepAlive,
    /// Close without saying so (no `Connection: close`), as an upstream whose
    /// keep-alive timeout just fired would.
    SilentClose,
}

/// A minimal HTTP/1.1 upstream that counts connections and reports when one is
/// closed by the peer (the gateway).
async fn raw_upstream(
    after: After,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<()>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed_rx) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let closed = closed_tx.clone();
            tokio::spawn(serve_raw(s, after, closed));
        }
    });
    (addr, accepted, closed_rx)
}

async fn serve_raw(mut s: TcpStream, after: After, closed: mpsc::UnboundedSender<()>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = closed.send(());
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            if let After::SilentClose = after {
                return;
            }
        }
    }
}

fn config(extra: &str) -> String {
    format!("[[upstreams]]\nname=\"up\"\nurl=\"http://{{UP}}\"\n{extra}\n[[routes]]\npath=\"/**\"\nupstream=\"up\"\nauth=\"none\"\n")
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let (addr, accepted, _closed) = raw_upstream(After::KeepAlive).await;
    let gw = gateway(&config(""), Some(addr)).await;
    for i in 0..20 {
        let r = get(gw.addr, &format!("/r/{i}"), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "ok");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "sequential requests share one upstream connection"
    );
}

#[tokio::test]
async fn upstreams_that_drop_connections_are_handled() {
    let (addr, accepted, _closed) = raw_upstream(After::SilentClose).await;
    let gw = gateway(&config(""), Some(addr)).await;
    for i in 0..20 {
        let r = get(gw.addr, &format!("/r/{i}"), &[]).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        20,
        "a closed connection is never reused"
    );
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (addr, accepted, mut closed) = raw_upstream(After::KeepAlive).await;
    let gw = gateway(&config("pool_idle_timeout = \"200ms\""), Some(addr)).await;
    assert_eq!(get(gw.addr, "/x", &[]).await.status, 200);
    tokio::time::timeout(Duration::from_secs(5), closed.recv())
        .await
        .expect("the gateway closed the idle upstream connection")
        .expect("event");
    assert_eq!(get(gw.addr, "/y", &[]).await.status, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_requests_open_parallel_connections() {
    let (addr, accepted, _closed) = raw_upstream(After::KeepAlive).await;
    let gw = gateway(&config(""), Some(addr)).await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let a = gw.addr;
        handles.push(tokio::spawn(async move {
            get(a, &format!("/c/{i}"), &[]).await.status
        }));
    }
    for h in handles {
        assert_eq!(h.await.expect("join"), 200);
    }
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&n),
        "{n} connections for 8 concurrent requests"
    );
}
