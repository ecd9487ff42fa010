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
