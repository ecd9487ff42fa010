use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::*;

const CONFIG: &str = "[server]\nshutdown_drain = \"20s\"\n[[upstreams]]\nname=\"up\"\nurl=\"http://{UP}\"\n[[routes]]\npath=\"/**\"\nupstream=\"up\"\nauth=\"none\"\n";

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let addr = gw.addr;
    let admin = gw.admin_addr;
    assert!(admin.is_none());
    let in_flight = tokio::spawn(async move { get(addr, "/hold/1", &[]).await });
    let target = tokio::time::timeout(Duration::from_secs(10), up.arrived.recv())
        .await
        .expect("request arrived")
        .expect("target");
    assert_eq!(target, "/hold/1");

    let shutdown = tokio::spawn(gw.shutdown());
    // The listener closes: new connections are refused (bounded wait for the accept
    // loop to notice the stop signal).
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "the gateway still accepts connections after shutdown began"
    );
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the in-flight request"
    );

    up.release.notify_one();
    let r = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in time")
        .expect("join");
    assert_eq!(r.status, 200, "the in-flight request completed");
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown completes once drained")
        .expect("join");
}

#[tokio::test]
async fn drain_time_bounds_shutdown() {
    let mut up = Upstream::start().await;
    let text = CONFIG.replace("20s", "200ms");
    let gw = gateway(&text, Some(up.addr)).await;
    let addr = gw.addr;
    let _stuck = tokio::spawn(async move { get(addr, "/hang/1", &[]).await });
    up.arrived.recv().await.expect("arrived");
    tokio::time::timeout(Duration::from_secs(5), gw.shutdown())
        .await
        .expect("shutdown gives up after the drain time");
}

#[tokio::test]
async fn several_workers_share_the_listener_and_shut_down_together() {
    let up = Upstream::start().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}",
        CONFIG
            .replace("[server]\n", "")
            .replace("{UP}", &up.addr.to_string())
    );
    let config =
        portcullis::config::parse_str(&text, std::path::Path::new("w.toml")).expect("valid");
    let gw = portcullis::Gateway::start_workers(config, 3)
        .await
        .expect("start");
    let mut handles = Vec::new();
    for i in 0..30 {
        let a = gw.addr;
        handles.push(tokio::spawn(async move {
            get(a, &format!("/w/{i}"), &[]).await.status
        }));
    }
    for h in handles {
        assert_eq!(h.await.expect("join"), 200);
    }
    assert_eq!(up.seen().len(), 30);
    let addr = gw.addr;
    tokio::time::timeout(Duration::from_secs(10), gw.shutdown())
        .await
        .expect("all workers stop");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "every worker's listener is closed"
    );
}

/// The first step of a shutdown (SIGTERM's `shutdown_delay`): `/readyz` answers 503
/// while the public listener keeps accepting and serving; only `shutdown` refuses.
#[tokio::test]
async fn begin_drain_turns_readyz_to_503_and_keeps_serving() {
    let up = Upstream::start().await;
    let text = CONFIG.replace("[server]\n", "[server]\nadmin_listen = \"127.0.0.1:0\"\n");
    let gw = gateway(&text, Some(up.addr)).await;
    let (addr, admin) = (gw.addr, gw.admin_addr.expect("admin listener"));
    assert_eq!(get(admin, "/readyz", &[]).await.status, 200);
    assert!(!gw.is_draining());
    gw.begin_drain();
    assert!(gw.is_draining());
    let r = get(admin, "/readyz", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "draining");
    // Admin answers carry a request id too: a fresh one, or the caller's if sane.
    assert_eq!(r.header("x-request-id").map(str::len), Some(32));
    let echoed = get(admin, "/healthz", &["X-Request-Id: probe-1"]).await;
    assert_eq!(echoed.status, 200);
    assert_eq!(echoed.header("x-request-id"), Some("probe-1"));
    let replaced = get(admin, "/healthz", &["X-Request-Id: bad id"]).await;
    assert_ne!(replaced.header("x-request-id"), Some("bad id"));
    // New connections are still accepted and served while unready.
    for i in 0..3 {
        assert_eq!(get(addr, &format!("/still/{i}"), &[]).await.status, 200);
    }
    gw.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "refused after shutdown"
    );
}
