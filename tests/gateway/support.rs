//! Test support: the real gateway in-process on 127.0.0.1:0, a recording upstream on
//! loopback, and small HTTP clients (raw bytes for hostile request targets, hyper for
//! streaming and HTTP/2).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// Every in-process gateway's logs (all `portcullis` targets, debug level, JSON) go to
/// `target/test-logs/gateway-PID.log`; `.ci/run` scans them for tokens and the test
/// passwords afterwards, so a secret logged by any test fails CI.
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-logs");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("gateway-{}.log", std::process::id()));
        if let Ok(file) = std::fs::File::create(path) {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis=debug"))
                .with_writer(Mutex::new(file))
                .try_init();
        }
    });
}

/// Starts the gateway from TOML text; `{UP}` is replaced by the upstream's address.
pub async fn gateway(toml: &str, upstream: Option<SocketAddr>) -> Gateway {
    Gateway::start(config_of(toml, upstream))
        .await
        .expect("gateway starts")
}

/// The configuration [`gateway`] starts from (for `Gateway::reload`).
pub fn config_of(toml: &str, upstream: Option<SocketAddr>) -> portcullis::Config {
    capture_logs();
    let text = match upstream {
        Some(a) => toml.replace("{UP}", &a.to_string()),
        None => toml.to_string(),
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}",
        text.trim_start_matches("[server]\n")
    );
    portcullis::config::parse_str(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
    pub body_len: u64,
}

/// An HTTP/1.1 upstream on loopback that records every request and answers by path:
/// `/hang/...` never answers, `/hold/...` answers once `release` is notified, anything
/// else answers 200 with `{"seen": n}` plus a few hop-by-hop headers that must not
/// reach the client. Every request also reports its first body bytes on `first_bytes`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub release: Arc<Notify>,
    pub arrived: mpsc::UnboundedReceiver<String>,
    pub first_bytes: mpsc::UnboundedReceiver<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let (first_tx, first_bytes) = mpsc::unbounded_channel();
        let (s, r) = (seen.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, r, a, f) = (s.clone(), r.clone(), arrived_tx.clone(), first_tx.clone());
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (s, r, a, f) = (s.clone(), r.clone(), a.clone(), f.clone());
                    async move { Ok::<_, Infallible>(answer(req, s, r, a, f).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            release,
            arrived,
            first_bytes,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream received a request")
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<Notify>,
    arrived: mpsc::UnboundedSender<String>,
    first: mpsc::UnboundedSender<()>,
) -> Response<Full<Bytes>> {
    let (parts, mut body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let _ = arrived.send(target.clone());
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(d) = frame.data_ref() {
            if body_len == 0 && !d.is_empty() {
                let _ = first.send(());
            }
            body_len += d.len() as u64;
        }
    }
    let n = {
        let mut s = seen.lock().expect("lock");
        s.push(Seen {
            method: parts.method.to_string(),
            target: target.clone(),
            headers: parts.headers,
            body_len,
        });
        s.len()
    };
    if target.starts_with("/hang") {
        std::future::pending::<()>().await;
    }
    if target.starts_with("/hold") {
        release.notified().await;
    }
    Response::builder()
        .header("content-type", "application/json")
        .header("connection", "x-up-secret")
        .header("x-up-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authenticate", "Basic")
        .header("x-up-public", "1")
        .body(Full::new(Bytes::from(format!(
            "{{\"seen\":{n},\"body_len\":{body_len}}}"
        ))))
        .expect("response")
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: HashMap<String, Vec<String>>,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends raw bytes (a whole HTTP/1.1 request, with `Connection: close`) and reads the
/// response to EOF. Only content-length bodies are understood, which is what every
/// test here produces.
pub async fn raw(addr: SocketAddr, request: &str) -> Raw {
    raw_bytes(addr, request.as_bytes()).await
}

pub async fn raw_bytes(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("response in time");
    parse_response(&buf)
}

/// A response (head and whatever body followed) parsed from raw bytes.
pub fn parse_response(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    Raw {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET target` with extra header lines (each `Name: value`).
pub async fn get(addr: SocketAddr, target: &str, headers: &[&str]) -> Raw {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, &req).await
}

/// Asserts an error answer: status, JSON `error` code and a request id echoed in the
/// header and the body.
pub fn assert_error(r: &Raw, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"], code, "body: {}", r.body);
    assert!(v["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let rid = r
        .header("x-request-id")
        .expect("x-request-id on every answer");
    assert_eq!(v["request_id"], rid);
}

/// A port with nothing listening on it.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

/// Test-only keys (tests/fixtures).
pub const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Seconds since the epoch.
pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    i64::try_from(secs).expect("i64")
}

/// A token signed with the fixture key of that algorithm (`hs256.secret`, or the PEM
/// private key `keyfile`), with that `kid`.
pub fn sign(
    alg: jsonwebtoken::Algorithm,
    kid: &str,
    keyfile: &str,
    claims: &serde_json::Value,
) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    let material = std::fs::read(format!("{FIX}/{keyfile}")).expect("fixture key");
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(&material),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&material).expect("pem"),
        other => panic!("no fixture for {other:?}"),
    };
    encode(&h, claims, &key).expect("sign")
}

/// `Authorization: Bearer <t>`.
pub fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}")
}

/// A token whose JOSE header is exactly `header` (JSON text, for headers `Header`
/// cannot express: `enc`, unusual `typ` values), signed with the fixture key of `alg`
/// (`hs256.secret`, or the PEM private key `keyfile`).
pub fn sign_raw_header(
    alg: jsonwebtoken::Algorithm,
    keyfile: &str,
    header: &str,
    claims: &serde_json::Value,
) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let material = std::fs::read(format!("{FIX}/{keyfile}")).expect("fixture key");
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(&material),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&material).expect("pem"),
        other => panic!("no fixture for {other:?}"),
    };
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).expect("sign");
    format!("{input}.{sig}")
}

/// A `[tokens]` section verifying the HS256 fixture key (`kid = "hs"`) for issuer
/// `https://gw.test`, audience `api`.
pub fn hs256_tokens() -> String {
    format!(
        "[tokens]\nissuer = \"https://gw.test\"\naudiences = [\"api\"]\n[[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{FIX}/hs256.secret\"\n"
    )
}

/// A token for [`hs256_tokens`]: subject alice with these scopes, valid 5 minutes.
pub fn hs256_token(scope: &str) -> String {
    let claims = serde_json::json!({"iss": "https://gw.test", "aud": "api", "sub": "alice",
        "exp": now() + 300, "iat": now(), "scope": scope});
    sign(
        jsonwebtoken::Algorithm::HS256,
        "hs",
        "hs256.secret",
        &claims,
    )
}

/// JOSE header additions a token may carry (`typ` absent, `JWT`, `at+jwt` in any case).
pub const ACCEPTED_HEADERS: &[&str] = &[
    "",
    r#","typ":"JWT""#,
    r#","typ":"at+jwt""#,
    r#","typ":"application/at+jwt""#,
    r#","typ":"AT+JWT""#,
];

/// Additions that refuse a token: other `*+jwt` types (RFC 8725 §3.11), and `enc`,
/// which makes the header a JWE's.
pub const REFUSED_HEADERS: &[&str] = &[
    r#","typ":"dpop+jwt""#,
    r#","typ":"secevent+jwt""#,
    r#","typ":"foo""#,
    r#","enc":"A256GCM""#,
    r#","typ":"JWT","enc":"A128CBC-HS256""#,
];

/// The `typ`/`enc` allow-list at `path`: a token with each of [`ACCEPTED_HEADERS`]
/// passes, one with each of [`REFUSED_HEADERS`] is `401 invalid_token` and never
/// reaches the upstream. `token` signs claims under the given header text, which
/// `header` builds from an addition.
pub async fn assert_header_allow_list(
    addr: SocketAddr,
    up: &Upstream,
    path: &str,
    header: impl Fn(&str) -> String,
    token: impl Fn(&str) -> String,
) {
    for extra in ACCEPTED_HEADERS {
        let r = get(addr, path, &[&bearer(&token(&header(extra)))]).await;
        assert_eq!(r.status, 200, "header {}: {}", header(extra), r.body);
    }
    let seen = up.seen().len();
    for extra in REFUSED_HEADERS {
        let r = get(addr, path, &[&bearer(&token(&header(extra)))]).await;
        assert_error(&r, 401, "invalid_token");
        assert_eq!(
            up.seen().len(),
            seen,
            "header {} reached the upstream",
            header(extra)
        );
    }
}
