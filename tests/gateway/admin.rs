//! The admin listener (`/healthz`, `/readyz`) has the public listener's head deadline:
//! a connection that never finishes its request head is closed, and one that finishes
//! it is answered, with an `x-request-id` like every public answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::*;

const CONFIG: &str = "[server]\nadmin_listen = \"127.0.0.1:0\"\nheader_read_timeout = \"300ms\"\n\
    [[upstreams]]\nname=\"up\"\necho=true\n[[routes]]\npath=\"/**\"\nupstream=\"up\"\nauth=\"none\"\n";

/// Reads until the peer closes; `None` if it is still open after `limit` (a hang
/// guard far above the deadline, not a measurement).
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| got)
}

#[tokio::test]
async fn a_trickled_admin_head_is_cut_off_at_the_head_deadline() {
    let gw = gateway(CONFIG, None).await;
    let admin = gw.admin_addr.expect("admin listener");
    // A head that never ends: hyper answers 408 (or just closes) at the deadline.
    let mut slow = TcpStream::connect(admin).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .expect("write");
    let got = until_closed(&mut slow, Duration::from_secs(20))
        .await
        .expect("the admin listener closes a head that never ends");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // An idle connection that sent nothing is closed too.
    let mut idle = TcpStream::connect(admin).await.expect("connect");
    assert!(until_closed(&mut idle, Duration::from_secs(20))
        .await
        .is_some());
    // A whole head is answered, with a request id.
    let ok = get(admin, "/healthz", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-request-id").map(str::len), Some(32));
    gw.shutdown().await;
}
