//! The request head through the whole pipeline: the real gateway, in-process on
//! loopback, in front of a raw TCP upstream that records the bytes it receives.
//!
//! Each input is written as it is to a new connection to the gateway, followed by a
//! sentinel (`\r\n\r\n` + `GET /__fuzz_end` with `Connection: close`, which no route
//! matches) so that the gateway ends the connection by itself; the answer is read to
//! the end. The upstream answers every request `200` with `x-fuzz-upstream: 1` and
//! `Connection: close` as soon as it has the head, then records the rest of the
//! connection. Every route adds `x-fuzz-route: <its name>` on the way up, so the
//! upstream knows which policy the gateway applied.
//!
//! What reaches the upstream must be (each a named invariant, see README.md):
//! exactly one well-formed request per connection, in origin-form (`METHOD /path
//! HTTP/1.1`), with a canonical path, one `Host` (the upstream's, or the client's with
//! `preserve_host`), valid framing and no byte after its body; sent by a route whose
//! methods admit it, with the identity its policy requires (a known subject holding the
//! scopes or roles), no identity header in another spelling, no `Authorization` or API
//! key, no preflight, no `TRACE`/`CONNECT`, no upgrade but `websocket`, no method
//! override header, a target within 8 KiB. And on the client side: as many answers come
//! from the upstream as requests reached it (so a denied request never did), and no
//! answer is a `500`.

#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{canonicalize, parse_config, split_target};
use portcullis::Gateway;
use portcullis_fuzz::{check, sha256_hex, test_fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::time::{timeout, Instant};

/// What an upstream connection received.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// The request head (through its empty line), or every byte of a connection that
    /// never completed one.
    head: Vec<u8>,
    head_complete: bool,
    /// The bytes after the head, until the gateway closed (or 1 s passed).
    tail: Vec<u8>,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    /// Upstream connections still open.
    active: AtomicUsize,
}

const UPSTREAM_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\nx-fuzz-upstream: 1\r\n\r\n";
const SENTINEL: &[u8] =
    b"\r\n\r\nGET /__fuzz_end HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n\r\n";
const API_KEY: &str = "fuzz-api-key-0123456789abcdef0123456789";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn upstream_connection(mut stream: TcpStream, rec: Arc<Recorder>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_len = loop {
        match timeout(Duration::from_secs(2), stream.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
            _ => break None,
        }
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break Some(i + 4);
        }
        if buf.len() > 1 << 20 {
            break None;
        }
    };
    let index = {
        let mut seen = rec.seen.lock().expect("lock");
        let mut s = Seen {
            head: buf.clone(),
            ..Seen::default()
        };
        if let Some(n) = head_len {
            s.head.truncate(n);
            s.head_complete = true;
            s.tail = buf[n..].to_vec();
        }
        seen.push(s);
        seen.len() - 1
    };
    if head_len.is_some() {
        let _ = stream.write_all(UPSTREAM_ANSWER).await;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut tail = Vec::new();
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut tmp)).await {
            if n == 0 || tail.len() > 1 << 20 {
                break;
            }
            tail.extend_from_slice(&tmp[..n]);
        }
        if let Some(s) = rec.seen.lock().expect("lock").get_mut(index) {
            s.tail.extend_from_slice(&tail);
        }
    }
    rec.active.fetch_sub(1, Ordering::SeqCst);
}

struct Harness {
    rt: Runtime,
    gateway: SocketAddr,
    upstream: SocketAddr,
    rec: Arc<Recorder>,
    _gw: Gateway,
}

fn config_text(up: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
trusted_proxies = ["127.0.0.1"]
max_header_bytes = "8KiB"
max_body_bytes = "1KiB"
request_timeout = "2s"
forward_auth_path = "/_portcullis/auth"

[tokens]
issuer = "https://gw.fuzz"
audiences = ["api"]
cache_max_age = "0s"
[[tokens.keys]]
kid = "hs"
alg = "HS256"
secret_file = "{secret}"

[[api_keys]]
sha256 = "{api_key}"
subject = "robot"
scopes = ["items:read"]

[roles]
admin = ["items:read", "items:write"]

[cors]
allow_origins = ["https://app.example.com", "https://*.example.net"]
allow_credentials = true

[[upstreams]]
name = "up"
url = "http://{up}"

[[upstreams]]
name = "up-host"
url = "http://{up}"
preserve_host = true

[[routes]]
name = "public"
path = "/public/**"
upstream = "up"
auth = "none"
request_headers = {{ set = {{ "x-fuzz-route" = "public" }} }}

[[routes]]
name = "internal"
host = "internal.example"
path = "/public/**"
upstream = "up-host"
request_headers = {{ set = {{ "x-fuzz-route" = "internal" }} }}

[[routes]]
name = "private"
path = "/private/**"
upstream = "up"
request_headers = {{ set = {{ "x-fuzz-route" = "private" }} }}

[[routes]]
name = "item-read"
path = "/items/{{id}}"
methods = ["GET"]
upstream = "up"
scopes = ["items:read"]
request_headers = {{ set = {{ "x-fuzz-route" = "item-read" }} }}

[[routes]]
name = "items-write"
path = "/items/**"
methods = ["POST", "PUT", "DELETE"]
upstream = "up"
scopes = ["items:write"]
request_headers = {{ set = {{ "x-fuzz-route" = "items-write" }} }}

[[routes]]
name = "admin"
path = "/admin/**"
upstream = "up"
roles = ["admin"]
request_headers = {{ set = {{ "x-fuzz-route" = "admin" }} }}

[[routes]]
name = "optional"
path = "/opt/**"
upstream = "up"
auth = "optional"
request_headers = {{ set = {{ "x-fuzz-route" = "optional" }} }}

[[routes]]
name = "strip"
path = "/api/**"
strip_prefix = "/api"
upstream = "up"
auth = "none"
request_headers = {{ set = {{ "x-fuzz-route" = "strip" }} }}
"#,
        secret = test_fixture("hs256.secret").display(),
        api_key = sha256_hex(API_KEY.as_bytes()),
    )
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let rec = Arc::new(Recorder::default());
        let (gw, gateway, upstream) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let upstream = listener.local_addr().expect("addr");
            let r = rec.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    r.active.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(upstream_connection(stream, r.clone()));
                }
            });
            let config = parse_config(&config_text(upstream), Path::new("pipeline.toml"))
                .unwrap_or_else(|e| panic!("{e}"));
            let gw = Gateway::start(config).await.expect("gateway starts");
            let addr = gw.addr;
            (gw, addr, upstream)
        });
        Harness {
            rt,
            gateway,
            upstream,
            rec,
            _gw: gw,
        }
    })
}

/// Waits (at most `max`) until no upstream connection is open.
async fn upstream_idle(rec: &Recorder, max: Duration) -> bool {
    let deadline = Instant::now() + max;
    while rec.active.load(Ordering::SeqCst) > 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Sends the input and the sentinel; returns the answer and whether the gateway closed
/// the connection (rather than the 1 s deadline passing).
async fn exchange(addr: SocketAddr, data: &[u8]) -> (Vec<u8>, bool) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return (Vec::new(), false);
    };
    let (mut r, mut w) = stream.into_split();
    let mut msg = data.to_vec();
    msg.extend_from_slice(SENTINEL);
    // The gateway may answer and close before it has read everything.
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&msg).await;
        w
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut answer = Vec::new();
    let mut tmp = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout_at(deadline, r.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&tmp[..n]),
            Err(_) => break false,
        }
    };
    writer.abort();
    (answer, closed)
}

/// One HTTP/1.1 answer the client got.
#[derive(Debug)]
struct Answer {
    status: u16,
    request_id: Option<Vec<u8>>,
    /// It came from the upstream (`x-fuzz-upstream`).
    relayed: bool,
}

/// The HTTP/1.1 answers, in order (as far as they parse).
fn answers(mut buf: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = resp.parse(buf) else {
            break;
        };
        let status = resp.code.unwrap_or(0);
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.to_vec())
        };
        let len: usize = header("content-length")
            .and_then(|v| String::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        out.push(Answer {
            status,
            request_id: header("x-request-id"),
            relayed: header("x-fuzz-upstream").is_some(),
        });
        let with_body = n.saturating_add(len);
        // An answer to HEAD carries a Content-Length but no body.
        buf = if status >= 200
            && with_body <= buf.len()
            && (with_body == buf.len() || buf[with_body..].starts_with(b"HTTP/"))
        {
            &buf[with_body..]
        } else {
            &buf[n..]
        };
    }
    out
}

/// The `x-request-id` the gateway gave a forwarded request, and whether that request
/// had a body (whose failure may turn the answer into a 400 or 413).
fn forwarded_id(s: &Seen) -> Option<(Vec<u8>, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&s.head).ok()?;
    let mut ids = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-request-id"));
    let id = ids.next()?.value.to_vec();
    if ids.next().is_some() {
        return None;
    }
    let body = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
    });
    Some((id, body))
}

/// Whether `tail` can be the start of a chunked body with nothing after its end.
fn chunked_prefix_ok(mut tail: &[u8]) -> bool {
    loop {
        let Some(eol) = find(tail, b"\r\n") else {
            return true;
        };
        let line = &tail[..eol];
        let size_part = line.split(|&b| b == b';').next().unwrap_or(b"");
        let Some(size) = std::str::from_utf8(size_part)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            return false;
        };
        tail = &tail[eol + 2..];
        if size == 0 {
            // Trailers, then the empty line, then nothing.
            if tail.starts_with(b"\r\n") {
                return tail.len() == 2;
            }
            return find(tail, b"\r\n\r\n").is_none_or(|i| i + 4 == tail.len());
        }
        if tail.len() < size + 2 {
            return true;
        }
        if &tail[size..size + 2] != b"\r\n" {
            return false;
        }
        tail = &tail[size + 2..];
    }
}

/// What each known caller may do (the seeds' tokens and the API key).
fn may(subject: &str, route: &str) -> bool {
    match route {
        "item-read" => matches!(subject, "alice" | "bob" | "robot"),
        "items-write" | "admin" => subject == "alice",
        _ => true,
    }
}

const IDENTITY: [&str; 5] = [
    "x-auth-subject",
    "x-auth-scopes",
    "x-auth-roles",
    "x-auth-client-id",
    "x-auth-issuer",
];

fn check_upstream_request(s: &Seen, upstream: SocketAddr) {
    let text = String::from_utf8_lossy(&s.head);
    let ctx = || {
        format!(
            "the upstream received {text:?} then {:?}",
            String::from_utf8_lossy(&s.tail)
        )
    };
    check(
        "upstream-well-formed",
        s.head_complete || s.head.is_empty(),
        ctx,
    );
    if !s.head_complete {
        return;
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = matches!(req.parse(&s.head), Ok(httparse::Status::Complete(_)));
    check("upstream-well-formed", parsed, ctx);
    if !parsed {
        return;
    }
    let line = text.split("\r\n").next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    check(
        "upstream-well-formed",
        parts.len() == 3 && parts[2] == "HTTP/1.1" && !parts[0].is_empty(),
        ctx,
    );
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    check("origin-form", target.starts_with('/'), ctx);
    check("target-limit", target.len() <= 8 * 1024, ctx);
    // The path of an absolute-form target too, so that the other checks still run
    // while `origin-form` is listed in PORTCULLIS_FUZZ_KNOWN.
    let origin_form = match target.split_once("://") {
        Some((_, rest)) if !target.starts_with('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    let (path, _) = split_target(origin_form);
    if origin_form.starts_with('/') {
        check(
            "forwarded-canonical",
            canonicalize(path).as_deref() == Ok(path),
            ctx,
        );
    }

    let all = |name: &str| -> Vec<String> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .collect()
    };
    let one = |name: &str| -> Option<String> {
        let v = all(name);
        (v.len() == 1).then(|| v[0].clone())
    };

    // Framing: one request, nothing after its body.
    let cl = all("content-length");
    let te = all("transfer-encoding");
    check(
        "framing",
        cl.len() <= 1
            && !(!cl.is_empty() && !te.is_empty())
            && te.iter().all(|t| t == "chunked")
            && te.len() <= 1,
        ctx,
    );
    let body_ok = if let Some(len) = cl.first() {
        len.parse::<usize>().is_ok_and(|n| s.tail.len() <= n)
    } else if !te.is_empty() {
        chunked_prefix_ok(&s.tail)
    } else {
        s.tail.is_empty()
    };
    check("one-request", body_ok, ctx);

    let hosts = all("host");
    check("one-host", hosts.len() == 1, ctx);

    let route = one("x-fuzz-route");
    check("routed", route.is_some(), ctx);
    let Some(route) = route else { return };
    let host = hosts.first().cloned().unwrap_or_default();
    match route.as_str() {
        "internal" => check(
            "upstream-host",
            host.rsplit_once(':')
                .map_or(host.as_str(), |(h, p)| {
                    if p.bytes().all(|b| b.is_ascii_digit()) {
                        h
                    } else {
                        host.as_str()
                    }
                })
                .eq_ignore_ascii_case("internal.example"),
            ctx,
        ),
        _ => check("upstream-host", host == upstream.to_string(), ctx),
    }
    let methods_ok = match route.as_str() {
        "item-read" => matches!(method, "GET" | "HEAD"),
        "items-write" => matches!(method, "POST" | "PUT" | "DELETE"),
        "public" | "internal" | "private" | "admin" | "optional" | "strip" => true,
        _ => false,
    };
    check("route-methods", methods_ok, ctx);

    // Identity: only the gateway's own headers, each once, in its spelling.
    let normalized = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
    let foreign_identity = req.headers.iter().any(|h| {
        let n = normalized(h.name);
        n.starts_with("x-auth-") && !(IDENTITY.contains(&n.as_str()) && h.name == n)
    });
    check("identity-spelling", !foreign_identity, ctx);
    let subject = all("x-auth-subject");
    let public = matches!(route.as_str(), "public" | "strip");
    if public {
        let any_identity = req
            .headers
            .iter()
            .any(|h| normalized(h.name).starts_with("x-auth-"));
        check("identity-stripped", !any_identity, ctx);
    } else {
        let needs = route != "optional";
        check(
            "authenticated",
            match subject.as_slice() {
                [] => !needs,
                [s] => ["alice", "bob", "carol", "robot"].contains(&s.as_str()),
                _ => false,
            },
            ctx,
        );
        if let [sub] = subject.as_slice() {
            check("authorized", may(sub, &route), ctx);
        }
        let scopes = one("x-auth-scopes").unwrap_or_default();
        let roles = one("x-auth-roles").unwrap_or_default();
        let has = |list: &str, x: &str| list.split(' ').any(|s| s == x);
        let granted = match route.as_str() {
            "item-read" => has(&scopes, "items:read"),
            "items-write" => has(&scopes, "items:write"),
            "admin" => has(&roles, "admin"),
            _ => true,
        };
        check("authorized", granted, ctx);
        check(
            "authorization-removed",
            all("authorization").is_empty(),
            ctx,
        );
    }
    check("api-key-removed", all("x-api-key").is_empty(), ctx);

    check(
        "preflight-answered",
        !(method == "OPTIONS"
            && !all("origin").is_empty()
            && !all("access-control-request-method").is_empty()),
        ctx,
    );
    check(
        "trace-connect-refused",
        !matches!(method, "TRACE" | "CONNECT"),
        ctx,
    );
    check(
        "upgrade-allowlist",
        all("upgrade")
            .iter()
            .all(|u| u.eq_ignore_ascii_case("websocket")),
        ctx,
    );
    check(
        "override-headers-removed",
        [
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ]
        .iter()
        .all(|h| all(h).is_empty()),
        ctx,
    );
    let hop_ok = [
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "trailer",
    ]
    .iter()
    .all(|h| all(h).is_empty())
        && all("te").iter().all(|v| v.eq_ignore_ascii_case("trailers"))
        && all("connection").iter().all(|v| {
            v.split(',').all(|t| {
                ["close", "keep-alive", "upgrade"].contains(&t.trim().to_ascii_lowercase().as_str())
            })
        });
    check("hop-by-hop", hop_ok, ctx);
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.rt.block_on(async {
        // Whatever an earlier, abandoned exchange still had open ends first.
        upstream_idle(&h.rec, Duration::from_secs(2)).await;
        h.rec.seen.lock().expect("lock").clear();

        let (answer, closed) = exchange(h.gateway, data).await;
        let settled = upstream_idle(&h.rec, Duration::from_millis(500)).await;
        let seen = h.rec.seen.lock().expect("lock").clone();
        for s in &seen {
            check_upstream_request(s, h.upstream);
        }

        let ctx = || {
            format!(
                "sent {:?}, answered {:?}, upstream saw {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&answer),
                seen.iter()
                    .map(|s| String::from_utf8_lossy(&s.head).into_owned())
                    .collect::<Vec<_>>()
            )
        };
        let got = answers(&answer);
        check("no-500", got.iter().all(|a| a.status != 500), ctx);
        // Each forwarded request, by the request id the gateway gave it (and echoes to
        // the client), got the upstream's answer or an infrastructure failure; never
        // a denial. Ids a client reused on several requests are skipped.
        for s in seen.iter().filter(|s| s.head_complete) {
            let Some((id, body)) = forwarded_id(s) else {
                continue;
            };
            let mut matching = got.iter().filter(|a| a.request_id.as_ref() == Some(&id));
            let (Some(a), None) = (matching.next(), matching.next()) else {
                continue;
            };
            let ok = a.relayed
                || matches!(a.status, 502 | 503 | 504)
                || (body && matches!(a.status, 400 | 408 | 413));
            check("denied-never-forwarded", ok, ctx);
        }
        // And every answer that says it came from the upstream did.
        let h2 = data.starts_with(b"PRI * HTTP/2.0");
        if closed && settled && !h2 {
            let relayed = got.iter().filter(|a| a.relayed).count();
            let forwarded = seen.iter().filter(|s| s.head_complete).count();
            check("relayed-were-forwarded", relayed <= forwarded, ctx);
        }
    });
});
