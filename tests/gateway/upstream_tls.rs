//! `https://` upstreams: a private CA (`ca_file`) accepted, an unknown CA refused with
//! `502` and nothing sent, SNI from the URL or `sni`, mutual TLS to the upstream,
//! HTTP/2 through ALPN and with prior knowledge (h2c), and the per-upstream
//! connection cap with its bounded wait. The HTTP/1.1 upstreams here record the
//! decrypted bytes they received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;
use crate::tls::pki::{KeyKind, Pki};

/// What one TLS connection to the upstream carried.
#[derive(Debug, Clone, Default)]
struct Conn {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    client_cert: bool,
    /// HTTP/1.1: the request head as received. HTTP/2: "HTTP/2 <uri> host=<host>".
    head: String,
}

struct TlsUpstream {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl TlsUpstream {
    /// A TLS upstream with `pki`'s certificate `cert`; `clients`: a CA whose client
    /// certificates it requires; `alpn`: what it accepts (`h2` → served by hyper).
    async fn start(pki: &Pki, cert: &str, clients: Option<&str>, alpn: &[&[u8]]) -> TlsUpstream {
        let chain = CertificateDer::pem_file_iter(pki.path(&format!("{cert}.pem")))
            .expect("chain")
            .collect::<Result<Vec<_>, _>>()
            .expect("pem");
        let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{cert}.key"))).expect("key");
        let b = rustls::ServerConfig::builder_with_provider(portcullis::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let b = match clients {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(pki.path(&format!("{ca}.pem"))).expect("ca")
                {
                    roots.add(c.expect("pem")).expect("root");
                }
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    portcullis::tls::provider(),
                )
                .build()
                .expect("verifier");
                b.with_client_cert_verifier(v)
            }
            None => b.with_no_client_auth(),
        };
        let mut config = b.with_single_cert(chain, key).expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Arc::new(Mutex::new(Vec::new()));
        let seen = conns.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (_, c) = tls.get_ref();
                    let mut conn = Conn {
                        sni: c.server_name().map(str::to_string),
                        alpn: c.alpn_protocol().map(<[u8]>::to_vec),
                        client_cert: c.peer_certificates().is_some_and(|p| !p.is_empty()),
                        head: String::new(),
                    };
                    if conn.alpn.as_deref() == Some(b"h2") {
                        let i = {
                            let mut s = seen.lock().expect("lock");
                            s.push(conn);
                            s.len() - 1
                        };
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let host = req
                                    .headers()
                                    .get("host")
                                    .and_then(|h| h.to_str().ok())
                                    .unwrap_or("-")
                                    .to_string();
                                seen.lock().expect("lock")[i].head =
                                    format!("{:?} {} host={host}", req.version(), req.uri());
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(
                                        b"{\"h2\":true}",
                                    )),
                                ))
                            }
                        });
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), svc)
                            .await;
                        return;
                    }
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    conn.head = String::from_utf8_lossy(&buf).to_string();
                    seen.lock().expect("lock").push(conn);
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"h1\":true}")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsUpstream { addr, conns }
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns.lock().expect("lock").clone()
    }
}

fn toml(url: &str, upstream_extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"secure\"\nurl = \"{url}\"\n{upstream_extra}\n\
         [[routes]]\nname = \"r\"\npath = \"/**\"\nupstream = \"secure\"\nauth = \"none\"\n"
    )
}

fn pki() -> Pki {
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("clients");
    pki.leaf("upstream", "ca", KeyKind::EcSec1, true);
    pki.leaf("gateway", "clients", KeyKind::EcSec1, false);
    pki
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_and_an_unknown_one_is_a_502() {
    let pki = pki();
    let up = TlsUpstream::start(&pki, "upstream", None, &[b"http/1.1"]).await;
    let url = format!("https://localhost:{}/base", up.addr.port());
    let trusted = format!("ca_file = \"{}\"", pki.p("ca.pem"));
    let gw = gateway(&toml(&url, &trusted), None).await;
    let r = get(gw.addr, "/items/1?x=2", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "{\"h1\":true}");
    let conns = up.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(
        conns[0].sni.as_deref(),
        Some("localhost"),
        "SNI from the URL"
    );
    let head = &conns[0].head;
    assert!(
        head.starts_with("GET /base/items/1?x=2 HTTP/1.1\r\n"),
        "origin-form: {head}"
    );
    let host = format!("host: localhost:{}\r\n", up.addr.port());
    assert!(head.to_ascii_lowercase().contains(&host), "{head}");
    gw.shutdown().await;

    // The same upstream without ca_file: its CA is in no root store.
    let gw = gateway(&toml(&url, ""), None).await;
    let r = get(gw.addr, "/items/1", &[]).await;
    assert_error(&r, 502, "bad_gateway");
    assert_eq!(
        up.conns().len(),
        1,
        "no request was sent to an unverified upstream"
    );
    gw.shutdown().await;

    // An explicit sni, with the URL naming an IP address.
    let url = format!("https://127.0.0.1:{}", up.addr.port());
    let named = format!("{trusted}\nsni = \"localhost\"");
    let gw = gateway(&toml(&url, &named), None).await;
    assert_eq!(get(gw.addr, "/a", &[]).await.status, 200);
    assert_eq!(up.conns()[1].sni.as_deref(), Some("localhost"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_to_the_upstream() {
    let pki = pki();
    let up = TlsUpstream::start(&pki, "upstream", Some("clients"), &[b"http/1.1"]).await;
    let url = format!("https://localhost:{}", up.addr.port());
    let ca = format!("ca_file = \"{}\"", pki.p("ca.pem"));
    let with_cert = format!(
        "{ca}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        pki.p("gateway.pem"),
        pki.p("gateway.key")
    );
    let gw = gateway(&toml(&url, &with_cert), None).await;
    assert_eq!(get(gw.addr, "/a", &[]).await.status, 200);
    assert!(up.conns()[0].client_cert);
    gw.shutdown().await;
    let gw = gateway(&toml(&url, &ca), None).await;
    assert_error(&get(gw.addr, "/a", &[]).await, 502, "bad_gateway");
    assert_eq!(
        up.conns().len(),
        1,
        "nothing reached the upstream without a certificate"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_through_alpn_and_with_prior_knowledge() {
    let pki = pki();
    let up = TlsUpstream::start(&pki, "upstream", None, &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{}", up.addr.port());
    let ca = format!("ca_file = \"{}\"", pki.p("ca.pem"));
    // Without http2 = true, only http/1.1 is offered.
    let gw = gateway(&toml(&url, &ca), None).await;
    assert_eq!(get(gw.addr, "/one", &[]).await.body, "{\"h1\":true}");
    gw.shutdown().await;
    let gw = gateway(&toml(&url, &format!("{ca}\nhttp2 = true")), None).await;
    for _ in 0..3 {
        let r = get(gw.addr, "/two?q=1", &[]).await;
        assert_eq!(r.body, "{\"h2\":true}");
    }
    let conns = up.conns();
    assert_eq!(
        conns.len(),
        2,
        "one HTTP/2 connection carried the three requests"
    );
    assert_eq!(conns[1].alpn.as_deref(), Some(&b"h2"[..]));
    let authority = format!("https://localhost:{}/two?q=1", up.addr.port());
    assert!(
        conns[1].head.starts_with(&format!("HTTP/2.0 {authority}")),
        "{}",
        conns[1].head
    );
    gw.shutdown().await;

    // h2c: prior knowledge over plain TCP.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h2c = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let _ = tx.send(format!("{:?} {}", req.version(), req.uri()));
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new(
                    )))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    let gw = gateway(&toml(&format!("http://{h2c}"), "http2 = true"), None).await;
    assert_eq!(get(gw.addr, "/three", &[]).await.status, 200);
    let seen = rx.recv().await.expect("a request");
    assert_eq!(seen, format!("HTTP/2.0 http://{h2c}/three"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_request_waits_then_gets_503() {
    let mut up = Upstream::start().await;
    let extra = "max_connections = 1\npool_wait_timeout = \"200ms\"";
    let gw = gateway(&toml("http://{UP}", extra), Some(up.addr)).await;
    let addr = gw.addr;
    let held = tokio::spawn(async move { get(addr, "/hold/1", &[]).await });
    assert_eq!(up.arrived.recv().await.as_deref(), Some("/hold/1"));
    let r = get(gw.addr, "/two", &[]).await;
    assert_error(&r, 503, "upstream_busy");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(up.seen().len(), 1, "the second request was not sent");
    up.release.notify_one();
    assert_eq!(held.await.expect("held").status, 200);
    // The connection is back in the pool: the next request takes it.
    assert_eq!(get(gw.addr, "/three", &[]).await.status, 200);
    gw.shutdown().await;
}

/// A client's request trailers are never forwarded: an HTTP/2 upstream that merges
/// trailers into the headers would otherwise read a client's `x-auth-subject`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_never_reach_an_http2_upstream() {
    use http_body_util::{BodyExt, StreamBody};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h2c = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let got = req.into_body().collect().await.map(|c| {
                        let trailers = c.trailers().cloned();
                        (c.to_bytes(), trailers)
                    });
                    let _ = tx.send(got.ok());
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                        bytes::Bytes,
                    >::new(
                    )))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    let gw = gateway(&toml(&format!("http://{h2c}"), "http2 = true"), None).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2");
    tokio::spawn(conn);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-auth-subject", http::HeaderValue::from_static("admin"));
    trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
    let frames = futures_util::stream::iter(vec![
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from_static(
            b"hello",
        ))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ]);
    let resp = send
        .send_request(
            http::Request::post(format!("http://{}/upload", gw.addr))
                .body(StreamBody::new(frames))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let (body, trailers) = rx.recv().await.expect("seen").expect("a body");
    assert_eq!(&body[..], b"hello", "the body went through");
    assert!(
        trailers.is_none(),
        "no trailer reached the upstream: {trailers:?}"
    );
    gw.shutdown().await;
}
