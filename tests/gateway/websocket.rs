use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// A WebSocket echo server on loopback.
async fn ws_echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let ws = ws_echo().await;
    let text = "[[upstreams]]\nname=\"ws\"\nurl=\"http://{UP}\"\n[[routes]]\npath=\"/ws/**\"\nupstream=\"ws\"\nauth=\"none\"\n[[routes]]\npath=\"/private/**\"\nupstream=\"ws\"\n";
    let gw = gateway(text, Some(ws)).await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut client, resp) =
        tokio_tungstenite::client_async(format!("ws://{}/ws/chat", gw.addr), stream)
            .await
            .expect("upgrade through the gateway");
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        client
            .send(Message::text(format!("hello {i}")))
            .await
            .expect("send");
        let back = client.next().await.expect("frame").expect("ok");
        assert_eq!(
            back.into_text().expect("text").as_str(),
            format!("hello {i}")
        );
    }
    client
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    assert_eq!(
        client
            .next()
            .await
            .expect("frame")
            .expect("ok")
            .into_data()
            .to_vec(),
        vec![0u8, 1, 2, 255]
    );

    // An upgrade does not skip the policy: a protected route still needs a token.
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let err = tokio_tungstenite::client_async(format!("ws://{}/private/chat", gw.addr), stream)
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("unexpected {other:?}"),
    }
}

/// `server.max_tunnels` refuses one upgrade more (503, never sent upstream), and
/// `server.tunnel_idle_timeout` closes a tunnel nobody speaks on, which gives its
/// place back; a shutdown with a tunnel open still ends (the drain-time close itself
/// is shown with paused time in `proxy/tunnels.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_are_capped_closed_when_idle_and_at_shutdown() {
    let ws = ws_echo().await;
    let text = "[server]\nmax_tunnels = 1\ntunnel_idle_timeout = \"300ms\"\nshutdown_drain = \"200ms\"\n\
                [[upstreams]]\nname=\"ws\"\nurl=\"http://{UP}\"\n[[routes]]\npath=\"/ws/**\"\nupstream=\"ws\"\nauth=\"none\"\n";
    let gw = gateway(text, Some(ws)).await;
    let open = |addr: std::net::SocketAddr| async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        tokio_tungstenite::client_async(format!("ws://{addr}/ws/chat"), stream).await
    };
    let (mut first, _) = open(gw.addr).await.expect("the first tunnel");
    first.send(Message::text("hi")).await.expect("send");
    assert!(first.next().await.expect("frame").is_ok());
    match open(gw.addr).await.expect_err("a second tunnel is refused") {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("unexpected {other:?}"),
    }
    // Nobody speaks: the gateway closes the tunnel (the client sees the stream end).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(Ok(_)) = first.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the idle tunnel was closed");
    // Its place is free again.
    let mut slot_back = None;
    for _ in 0..100 {
        if let Ok((c, _)) = open(gw.addr).await {
            slot_back = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut second = slot_back.expect("the slot came back");
    second
        .send(Message::text("still here"))
        .await
        .expect("send");
    assert!(second.next().await.expect("frame").is_ok());
    tokio::time::timeout(std::time::Duration::from_secs(30), gw.shutdown())
        .await
        .expect("shutdown ends with a tunnel open");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(Ok(_)) = second.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the tunnel is gone after the shutdown");
}
