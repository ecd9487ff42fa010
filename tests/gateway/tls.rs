//! TLS termination (`[server.tls]`): real clients (curl, Python `requests`, rustls)
//! against a throwaway PKI made by `openssl`; ALPN; a certificate swap under traffic;
//! client certificates required, optional, missing and forged; the HTTP → HTTPS
//! redirect; the handshake deadline; configuration errors. What reached the upstream
//! is read off a raw TCP upstream.

pub(crate) mod pki;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use pki::{KeyKind, Pki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;

fn tls_toml(pki: &Pki, server: &str, extra: &str) -> String {
    format!(
        "[server]\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}\n\
         [[upstreams]]\nname = \"up\"\nurl = \"http://{{UP}}\"\n\
         [[routes]]\nname = \"public\"\npath = \"/public/**\"\nupstream = \"up\"\nauth = \"none\"\n",
        pki.p(&format!("{server}.pem")),
        pki.p(&format!("{server}.key")),
    )
}

/// A rustls client trusting `ca`, presenting `client`'s certificate if given.
fn client(pki: &Pki, ca: &str, client: Option<&str>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.path(&format!("{ca}.pem"))).expect("ca") {
        roots.add(c.expect("pem")).expect("root");
    }
    let b = rustls::ClientConfig::builder_with_provider(portcullis::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(pki.path(&format!("{name}.pem")))
                .expect("chain")
                .collect::<Result<Vec<_>, _>>()
                .expect("pem");
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{name}.key"))).expect("key");
            b.with_client_auth_cert(chain, key).expect("client cert")
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(config)
}

/// One TLS connection, one HTTP/1.1 `GET`: the status and the certificate the server
/// presented, or the error (handshake refused, connection closed).
async fn tls_get(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::get(target).header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok((status, cert))
}

/// Runs a command, returning its stdout; panics with its stderr when it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_python_requests_reach_a_route_over_tls_with_alpn() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.leaf("server", "ca", KeyKind::RsaPkcs8, true);
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&tls_toml(&pki, "server", "hsts = \"365d\""), Some(up.addr)).await;
    let url = format!("https://localhost:{}/public/hello?x=1", gw.addr.port());
    let ca = pki.p("ca.pem");

    let (url2, ca2) = (url.clone(), ca.clone());
    let (h2, h1, head, untrusted) = tokio::task::spawn_blocking(move || {
        let curl = |proto: &str| {
            run(Command::new("curl").args([
                "-sS",
                "--cacert",
                &ca2,
                proto,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
                &url2,
            ]))
        };
        let head = run(Command::new("curl").args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
            &ca2,
            &url2,
        ]));
        // Without the test CA, curl must refuse the certificate (exit 60).
        let untrusted = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", &url2])
            .status()
            .expect("curl");
        (curl("--http2"), curl("--http1.1"), head, untrusted)
    })
    .await
    .expect("curl");
    assert_eq!(h2, "200 2", "ALPN h2");
    assert_eq!(h1, "200 1.1", "ALPN http/1.1");
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "HSTS over TLS: {head}"
    );
    assert_eq!(
        untrusted.code(),
        Some(60),
        "an unknown CA is refused by curl"
    );

    let script = "import requests, sys\n\
                  r = requests.get(sys.argv[1], verify=sys.argv[2])\n\
                  print(r.status_code, r.headers.get('strict-transport-security'))\n";
    let py = crate::clients::python();
    let out =
        tokio::task::spawn_blocking(move || run(Command::new(py).args(["-c", script, &url, &ca])))
            .await
            .expect("python");
    assert_eq!(out.trim(), "200 max-age=31536000");

    // The upstream got plain origin-form requests marked https.
    let reqs = up.requests();
    assert_eq!(reqs.len(), 4, "{}", up.text());
    for r in &reqs {
        assert_eq!(r.target(), "/public/hello?x=1");
        assert_eq!(r.header("x-forwarded-proto"), Some("https"));
        assert_eq!(r.header_values("x-auth-client-cert-sha256").len(), 0);
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_encoding_serves_and_old_protocols_are_refused() {
    let pki = Pki::new();
    pki.ca("ca");
    let up = RawUpstream::start(Answer::Ok).await;
    for (name, kind) in [
        ("pkcs8", KeyKind::RsaPkcs8),
        ("pkcs1", KeyKind::RsaPkcs1),
        ("sec1", KeyKind::EcSec1),
    ] {
        pki.leaf(name, "ca", kind, true);
        let gw = gateway(&tls_toml(&pki, name, ""), Some(up.addr)).await;
        let (status, cert) = tls_get(gw.addr, client(&pki, "ca", None), "/public/a", &[])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status, 200, "{name}");
        assert_eq!(cert, pki.der(name), "{name}: the configured leaf is served");
        let port = gw.addr.port();
        let s_client = move |proto: &'static str| {
            let mut c = Command::new("openssl");
            c.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), proto])
                .args(["-cipher", "DEFAULT@SECLEVEL=0", "-servername", "localhost"])
                .stdin(std::process::Stdio::null());
            c.output().expect("openssl s_client")
        };
        let (v12, v11, v10) = tokio::task::spawn_blocking(move || {
            (s_client("-tls1_2"), s_client("-tls1_1"), s_client("-tls1"))
        })
        .await
        .expect("s_client");
        assert!(v12.status.success(), "{name}: TLS 1.2 is served");
        assert!(!v11.status.success(), "{name}: TLS 1.1 is refused");
        assert!(!v10.status.success(), "{name}: TLS 1.0 is refused");
        gw.shutdown().await;
    }
    // min_version = "1.3": a TLS 1.2-only client is refused.
    let gw = gateway(
        &tls_toml(&pki, "sec1", "min_version = \"1.3\""),
        Some(up.addr),
    )
    .await;
    let port = gw.addr.port();
    let (v12, v13) = tokio::task::spawn_blocking(move || {
        let s = |p: &str| {
            Command::new("openssl")
                .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), p])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("s_client")
        };
        (s("-tls1_2"), s("-tls1_3"))
    })
    .await
    .expect("s_client");
    assert!(
        !v12.status.success(),
        "TLS 1.2 refused under min_version 1.3"
    );
    assert!(v13.status.success(), "TLS 1.3 served");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swap_during_traffic_fails_no_request() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.leaf("a", "ca", KeyKind::EcSec1, true);
    pki.leaf("b", "ca", KeyKind::RsaPkcs8, true);
    let install = |from: &str| {
        for ext in ["key", "pem"] {
            let tmp = pki.path(&format!("live.{ext}.tmp"));
            std::fs::copy(pki.path(&format!("{from}.{ext}")), &tmp).expect("copy");
            std::fs::rename(&tmp, pki.path(&format!("live.{ext}"))).expect("rename");
        }
    };
    install("a");
    let up = RawUpstream::start(Answer::Ok).await;
    // The watch is off here: the swap below is applied by a reload.
    let toml = tls_toml(&pki, "live", "watch_interval = \"0s\"");
    let gw = gateway(&toml, Some(up.addr)).await;
    let addr = gw.addr;
    let cfg = client(&pki, "ca", None);

    // A keep-alive connection opened before the swap.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = TlsConnector::from(cfg.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let (mut kept, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http1");
    tokio::spawn(conn);
    let kept_get = |send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>| {
        send.send_request(
            http::Request::get("/public/kept")
                .header("host", "localhost")
                .body(Empty::new())
                .expect("request"),
        )
    };
    assert_eq!(kept_get(&mut kept).await.expect("kept").status(), 200);

    // Traffic on new connections while the files are swapped and reloaded.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, cfg) = (stop.clone(), ok.clone(), failed.clone(), cfg.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match tls_get(addr, cfg.clone(), "/public/t", &[]).await {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    while ok.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    install("b");
    gw.reload(config_of(&toml, Some(up.addr)));
    let (_, served) = tls_get(addr, cfg.clone(), "/public/after", &[])
        .await
        .expect("after");
    assert_eq!(
        served,
        pki.der("b"),
        "new connections get the new certificate"
    );
    let at_swap = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) < at_swap + 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    // The connection opened before the swap is still served.
    assert_eq!(kept_get(&mut kept).await.expect("kept after").status(), 200);

    // A file change alone (no reload) is picked up when the watch is on.
    let watched = tls_toml(&pki, "live", "watch_interval = \"50ms\"");
    gw.reload(config_of(&watched, Some(up.addr)));
    install("a");
    let mut served = Vec::new();
    for _ in 0..400 {
        served = tls_get(addr, cfg.clone(), "/public/w", &[])
            .await
            .expect("get")
            .1;
        if served == pki.der("a") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, pki.der("a"), "the changed files were picked up");

    // A key that does not match the certificate: the reload is refused, and the pair
    // in force stays.
    std::fs::copy(pki.path("b.key"), pki.path("live.key")).expect("copy");
    let file = pki.path("gateway.toml");
    let text = watched.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&file, text.replace("{UP}", &up.addr.to_string())).expect("write");
    let refused = gw
        .reload_from(&file)
        .await
        .expect_err("a mismatched key is refused");
    assert!(refused.to_string().contains("server.tls.key"), "{refused}");
    let (status, served) = tls_get(addr, cfg, "/public/x", &[]).await.expect("get");
    assert_eq!((status, served), (200, pki.der("a")));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_required_optional_missing_and_forged() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("clients");
    pki.ca("rogue");
    pki.leaf("server", "ca", KeyKind::EcSec1, true);
    pki.leaf("alice", "clients", KeyKind::EcSec1, false);
    pki.leaf("mallory", "rogue", KeyKind::EcSec1, false);
    let thumbprint = {
        let d = ring::digest::digest(&ring::digest::SHA256, &pki.der("alice"));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    };
    let forged = [("x-auth-client-cert-sha256", "forged")];
    let up = RawUpstream::start(Answer::Ok).await;

    for mode in ["required", "optional"] {
        let extra = format!(
            "client_ca = \"{}\"\nclient_auth = \"{mode}\"",
            pki.p("clients.pem")
        );
        let gw = gateway(&tls_toml(&pki, "server", &extra), Some(up.addr)).await;
        let before = up.requests().len();
        let alice = tls_get(
            gw.addr,
            client(&pki, "ca", Some("alice")),
            "/public/a",
            &forged,
        )
        .await;
        assert_eq!(
            alice.map(|r| r.0),
            Ok(200),
            "{mode}: a certificate from client_ca"
        );
        let seen = up.requests();
        assert_eq!(seen.len(), before + 1);
        assert_eq!(
            seen[before].header_values("x-auth-client-cert-sha256"),
            vec![thumbprint.as_str()],
            "{mode}: the verified thumbprint, never the client's copy"
        );
        assert_eq!(
            seen[before].header("x-auth-client-cert-subject"),
            Some("CN=alice")
        );
        assert_eq!(
            seen[before].header("x-auth-client-cert-san"),
            Some("email:someone@example.com")
        );
        let mallory = tls_get(
            gw.addr,
            client(&pki, "ca", Some("mallory")),
            "/public/m",
            &[],
        )
        .await;
        assert!(
            mallory.is_err(),
            "{mode}: a certificate from another CA is refused"
        );
        let nobody = tls_get(gw.addr, client(&pki, "ca", None), "/public/n", &forged).await;
        if mode == "required" {
            assert!(nobody.is_err(), "required: no certificate, no request");
            assert_eq!(
                up.requests().len(),
                before + 1,
                "nothing else reached the upstream"
            );
        } else {
            assert_eq!(nobody.map(|r| r.0), Ok(200), "optional: served without one");
            let seen = up.requests();
            assert_eq!(seen.len(), before + 2);
            assert!(
                seen[before + 1]
                    .header_values("x-auth-client-cert-sha256")
                    .is_empty(),
                "the forged header was removed"
            );
        }
        gw.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.leaf("server", "ca", KeyKind::EcSec1, true);
    let redirect = closed_port().await;
    let up = RawUpstream::start(Answer::Ok).await;
    let extra = format!("redirect_listen = \"{redirect}\"");
    let gw = gateway(&tls_toml(&pki, "server", &extra), Some(up.addr)).await;
    let r = raw(
        redirect,
        "POST /public/x?y=1 HTTP/1.1\r\nHost: localhost:80\r\nAuthorization: Bearer abc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 308, "{}", r.body);
    let to = format!("https://localhost:{}/public/x?y=1", gw.addr.port());
    assert_eq!(r.header("location"), Some(to.as_str()));
    assert!(r.header("x-request-id").is_some());
    let r = raw(redirect, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 400, "no Host, no redirect");
    assert!(
        up.requests().is_empty(),
        "the redirect listener proxies nothing"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_must_finish_within_the_head_deadline() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.leaf("server", "ca", KeyKind::EcSec1, true);
    let toml = tls_toml(&pki, "server", "")
        .replace("[server]\n", "[server]\nheader_read_timeout = \"300ms\"\n");
    let gw = gateway(&toml, Some(closed_port().await)).await;
    // Silent, and a ClientHello's first bytes and nothing more: both closed.
    for sent in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let mut s = TcpStream::connect(gw.addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut s, sent)
            .await
            .expect("write");
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "closed at the deadline, not held open");
        assert!(
            buf.is_empty() || buf[0] == 0x15,
            "nothing but a TLS alert: {buf:?}"
        );
    }
    gw.shutdown().await;
}

#[test]
fn unusable_tls_files_are_refused_with_the_key_and_fix() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.leaf("a", "ca", KeyKind::EcSec1, true);
    pki.leaf("b", "ca", KeyKind::EcSec1, true);
    let refused = |tls: String| {
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\n{tls}\n");
        match portcullis::config::parse_str(&text, std::path::Path::new("t.toml")) {
            Ok(_) => panic!("accepted: {tls}"),
            Err(e) => e.to_string(),
        }
    };
    let e = refused(format!(
        "cert = \"{}\"\nkey = \"{}\"",
        pki.p("a.pem"),
        pki.p("b.key")
    ));
    assert!(e.contains("server.tls.key"), "{e}");
    let e = refused(format!(
        "cert = \"{}\"\nkey = \"{}\"",
        pki.p("nope.pem"),
        pki.p("a.key")
    ));
    assert!(
        e.contains("server.tls.cert") && e.contains("nope.pem"),
        "{e}"
    );
    let e = refused(format!(
        "cert = \"{}\"\nkey = \"{}\"",
        pki.p("a.key"),
        pki.p("a.key")
    ));
    assert!(
        e.contains("server.tls.cert"),
        "a key is not a certificate: {e}"
    );
    let e = refused(format!(
        "cert = \"{}\"\nkey = \"{}\"\nclient_auth = \"optional\"",
        pki.p("a.pem"),
        pki.p("a.key")
    ));
    assert!(e.contains("server.tls.client_auth"), "{e}");
    let e = refused(format!(
        "cert = \"{}\"\nkey = \"{}\"\nmin_version = \"1.0\"",
        pki.p("a.pem"),
        pki.p("a.key")
    ));
    assert!(e.contains("server.tls.min_version"), "{e}");
    // The key material never appears in an error.
    let key = std::fs::read_to_string(pki.path("b.key")).expect("key");
    let body = key.lines().nth(1).expect("a base64 line");
    let e = refused(format!(
        "cert = \"{}\"\nkey = \"{}\"",
        pki.p("a.pem"),
        pki.p("b.key")
    ));
    assert!(!e.contains(body), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_require_a_client_certificate_and_its_san() {
    let pki = Pki::new();
    pki.ca("ca");
    pki.ca("clients");
    pki.leaf("server", "ca", KeyKind::EcSec1, true);
    pki.leaf("alice", "clients", KeyKind::EcSec1, false);
    let up = RawUpstream::start(Answer::Ok).await;
    let toml = format!(
        "[server]\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nclient_auth = \"optional\"\n\
         [[upstreams]]\nname = \"up\"\nurl = \"http://{{UP}}\"\n\
         [[routes]]\nname = \"any-cert\"\npath = \"/machines/**\"\nupstream = \"up\"\nauth = \"none\"\nclient_cert = \"required\"\n\
         [[routes]]\nname = \"alice-only\"\npath = \"/alice/**\"\nupstream = \"up\"\nauth = \"none\"\nclient_cert_sans = [\"email:someone@example.com\"]\n\
         [[routes]]\nname = \"bob-only\"\npath = \"/bob/**\"\nupstream = \"up\"\nauth = \"none\"\nclient_cert_sans = [\"URI:spiffe://example.org/bob\"]\n",
        pki.p("server.pem"),
        pki.p("server.key"),
        pki.p("clients.pem"),
    );
    // A subject whose CN holds what would read as another attribute.
    pki.leaf_named(
        "carol",
        "clients",
        KeyKind::EcSec1,
        false,
        "/O=Example/CN=bob, O=Admins",
    );
    let gw = gateway(&toml, Some(up.addr)).await;
    let carol = client(&pki, "ca", Some("carol"));
    assert_eq!(
        tls_get(gw.addr, carol, "/machines/carol", &[])
            .await
            .map(|r| r.0),
        Ok(200)
    );
    let seen = up.requests();
    assert_eq!(
        seen[0].header("x-auth-client-cert-subject"),
        Some("CN=bob\\, O=Admins,O=Example"),
        "RFC 4514: last RDN first, the comma in the CN escaped"
    );
    let (alice, nobody) = (client(&pki, "ca", Some("alice")), client(&pki, "ca", None));
    let status = |r: Result<(u16, Vec<u8>), String>| r.map(|r| r.0);
    assert_eq!(
        status(tls_get(gw.addr, nobody.clone(), "/machines/1", &[]).await),
        Ok(403)
    );
    assert_eq!(
        status(tls_get(gw.addr, alice.clone(), "/machines/1", &[]).await),
        Ok(200)
    );
    assert_eq!(
        status(tls_get(gw.addr, alice.clone(), "/alice/1", &[]).await),
        Ok(200)
    );
    assert_eq!(
        status(tls_get(gw.addr, alice.clone(), "/bob/1", &[]).await),
        Ok(403)
    );
    assert_eq!(
        status(tls_get(gw.addr, nobody, "/alice/1", &[]).await),
        Ok(403)
    );
    let targets: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.target().to_string())
        .collect();
    assert_eq!(
        targets,
        vec!["/machines/carol", "/machines/1", "/alice/1"],
        "refused requests never reach the upstream"
    );
    gw.shutdown().await;

    // A route that needs a certificate behind a listener that never asks for one.
    let plain = toml
        .replace("client_ca", "# client_ca")
        .replace("client_auth", "# client_auth");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}",
        plain
            .trim_start_matches("[server]\n")
            .replace("{UP}", "127.0.0.1:9")
    );
    let e =
        portcullis::config::parse_str(&text, std::path::Path::new("t.toml")).expect_err("refused");
    assert!(e.to_string().contains("routes[0].client_cert"), "{e}");
}
