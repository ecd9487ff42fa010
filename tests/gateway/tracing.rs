//! W3C Trace Context: a trusted peer's `traceparent` is continued (the upstream gets
//! the same trace with the gateway's span as parent, and the `tracestate`), an
//! untrusted one's is replaced; every sampled request is exported as a server span
//! over OTLP/HTTP to a receiver the test runs, which records the JSON it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver: records the path and JSON body of every POST, answers 200.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<(String, Value)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    seen.lock().expect("lock").push((path, body));
                    buf.drain(..end + 4 + len);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                        .await;
                }
            });
        }
    });
    (addr, got)
}

fn config(extra_server: &str, telemetry: &str) -> String {
    format!(
        "[server]\n{extra_server}\n[telemetry]\n{telemetry}\n\
         [[upstreams]]\nname = \"up\"\nurl = \"http://{{UP}}\"\n\
         [[routes]]\nname = \"traced\"\npath = \"/**\"\nupstream = \"up\"\nauth = \"none\"\n"
    )
}

fn traceparent_of(up: &RawUpstream, i: usize) -> String {
    let reqs = up.requests();
    let r = &reqs[i];
    assert_eq!(r.header_values("traceparent").len(), 1, "{}", up.text());
    r.header("traceparent").expect("traceparent").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_traceparent_is_continued_and_exported_over_otlp() {
    let (otlp, got) = receiver().await;
    let up = RawUpstream::start(Answer::Ok).await;
    let toml = config(
        "trusted_proxies = [\"127.0.0.1\"]",
        &format!("otlp_endpoint = \"http://{otlp}/v1/traces\"\nservice_name = \"edge-gw\""),
    );
    let gw = gateway(&toml, Some(up.addr)).await;
    let tp = format!("traceparent: 00-{TRACE}-{PARENT}-01");
    let r = get(gw.addr, "/a?b=c", &[&tp, "tracestate: congo=t61rcWkgMzE"]).await;
    assert_eq!(r.status, 200);
    let sent = traceparent_of(&up, 0);
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE, "01"),
        "same trace, sampled"
    );
    assert_ne!(
        parts[2], PARENT,
        "the gateway's own span is the upstream's parent"
    );
    let reqs = up.requests();
    assert_eq!(reqs[0].header("tracestate"), Some("congo=t61rcWkgMzE"));

    // The span arrives at the receiver (exported from the background runtime).
    let mut span = Value::Null;
    for _ in 0..600 {
        let spans: Vec<Value> = got
            .lock()
            .expect("lock")
            .iter()
            .filter(|(path, _)| path == "/v1/traces")
            .flat_map(|(_, b)| {
                b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        if let Some(s) = spans.into_iter().find(|s| s["traceId"] == TRACE) {
            span = s;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(span["traceId"], TRACE, "the span was exported");
    assert_eq!(span["parentSpanId"], PARENT);
    assert_eq!(
        span["spanId"], parts[2],
        "the span the upstream was told of"
    );
    assert_eq!(span["name"], "GET traced");
    assert_eq!(span["kind"], 2, "SPAN_KIND_SERVER");
    let attr = |k: &str| {
        span["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(attr("http.route")["stringValue"], "traced");
    assert_eq!(attr("http.request.method")["stringValue"], "GET");
    assert_eq!(attr("http.response.status_code")["intValue"], "200");
    let resource = got.lock().expect("lock")[0].1["resourceSpans"][0]["resource"].clone();
    assert_eq!(resource["attributes"][0]["value"]["stringValue"], "edge-gw");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_traceparent_is_replaced_and_off_means_untouched() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&config("", ""), Some(up.addr)).await;
    let tp = format!("traceparent: 00-{TRACE}-{PARENT}-01");
    assert_eq!(
        get(gw.addr, "/a", &[&tp, "tracestate: a=b"]).await.status,
        200
    );
    let sent = traceparent_of(&up, 0);
    assert!(
        !sent.contains(TRACE),
        "a client's trace id is not believed: {sent}"
    );
    assert_eq!(sent.len(), 55);
    assert!(up.requests()[0].header("tracestate").is_none());
    // A trace is started for a request that brought none.
    assert_eq!(get(gw.addr, "/b", &[]).await.status, 200);
    let started = traceparent_of(&up, 1);
    assert_ne!(started[3..35], sent[3..35], "a new trace per request");
    gw.shutdown().await;

    let gw = gateway(&config("", "traceparent = \"off\""), Some(up.addr)).await;
    assert_eq!(get(gw.addr, "/c", &[&tp]).await.status, 200);
    assert_eq!(
        traceparent_of(&up, 2),
        format!("00-{TRACE}-{PARENT}-01"),
        "off: the gateway neither reads nor writes trace headers"
    );
    gw.shutdown().await;
}
