//! An upstream that is a plain TCP listener: it records the exact bytes it received,
//! per connection, and answers with canned bytes. A hyper server would parse
//! absolute-form targets, folded lines or stray framing away; this one shows what a
//! Node, Python or Go upstream would really have been sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the upstream answers each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `200` with a small JSON body and an `Access-Control-Allow-Origin: *` of its own.
    Ok,
    /// `101 Switching Protocols` to anything (naming the protocol asked, else `h2c`),
    /// then echoes every byte back: the upstream an upgrade smuggler hopes for.
    SwitchAnything,
    /// `101` naming this protocol whatever was asked, then echoes.
    SwitchTo(&'static str),
    /// Requests whose target starts with this prefix get the head of a `200` with a
    /// 1 MiB `content-length` and its first KiB, then nothing more: the connection
    /// stays open, mid-body, until the peer closes it. Others are answered as `Ok`.
    Stall(&'static str),
    /// `401` as soon as the first request head is in, without waiting for its body
    /// (as many servers refuse an upload); then only records.
    Early,
    /// `200` with two `Set-Cookie`: one planting the gateway's sign-in cookie, one of
    /// the app's own.
    SetsCookies,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request line, without its CRLF.
    pub line: String,
    /// Header lines, each split at the first `:` (name as sent, value trimmed).
    pub headers: Vec<(String, String)>,
    /// The exact head bytes, request line to the blank line included.
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Values of a header, by case-insensitive name.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// The request target of the request line.
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// Asserts the head is one well-formed origin-form HTTP/1.1 head: `METHOD
    /// /path HTTP/1.1`, CRLF line ends, `name: value` lines with token names, no
    /// folded lines, and framing by at most one of Content-Length and
    /// Transfer-Encoding.
    pub fn assert_well_formed(&self) {
        let text = std::str::from_utf8(&self.head).expect("head is ASCII");
        assert!(
            text.ends_with("\r\n\r\n"),
            "head ends with CRLF CRLF: {text:?}"
        );
        let mut lines = text[..text.len() - 4].split("\r\n");
        let line = lines.next().unwrap_or("");
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "request line {line:?}");
        assert!(parts[0].bytes().all(|b| b.is_ascii_uppercase()), "{line:?}");
        assert!(parts[1].starts_with('/'), "origin-form target: {line:?}");
        assert_eq!(parts[2], "HTTP/1.1", "{line:?}");
        for l in lines {
            assert!(
                !l.contains('\n') && !l.contains('\r'),
                "bare CR/LF in {l:?}"
            );
            assert!(!l.starts_with([' ', '\t']), "folded line {l:?}");
            let (name, _) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("no colon: {l:?}"));
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
                "header name {name:?}"
            );
        }
        let cl = self.header_values("content-length").len();
        let te = self.header_values("transfer-encoding").len();
        assert!(cl <= 1 && te <= 1 && cl + te <= 1, "framing: {text:?}");
        if te == 1 {
            assert_eq!(self.header("transfer-encoding"), Some("chunked"));
        }
        if let Some(cl) = self.header("content-length") {
            assert_eq!(cl.parse::<usize>().ok(), Some(self.body.len()), "{text:?}");
        }
    }
}

/// The bytes received, one buffer per connection, in the order accepted.
type Recorded = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// A recording raw upstream on loopback.
pub struct RawUpstream {
    pub addr: SocketAddr,
    conns: Recorded,
    /// Connections that have ended (closed by the peer, or failed).
    ended: watch::Receiver<usize>,
}

impl RawUpstream {
    pub async fn start(answer: Answer) -> RawUpstream {
        RawUpstream::start_on("127.0.0.1:0", answer).await
    }

    pub async fn start_on(addr: &str, answer: Answer) -> RawUpstream {
        let listener = TcpListener::bind(addr).await.expect("bind raw upstream");
        let addr = listener.local_addr().expect("addr");
        let conns: Recorded = Arc::default();
        let c = conns.clone();
        let (ended_tx, ended) = watch::channel(0usize);
        let ended_tx = Arc::new(ended_tx);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let bytes = Arc::new(Mutex::new(Vec::new()));
                c.lock().expect("lock").push(bytes.clone());
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    serve(stream, bytes, answer).await;
                    ended_tx.send_modify(|n| *n += 1);
                });
            }
        });
        RawUpstream { addr, conns, ended }
    }

    /// Waits until at least `n` connections have ended (no timeout: wrap it in one).
    pub async fn ended(&self, n: usize) {
        let mut rx = self.ended.clone();
        let _ = rx.wait_for(|e| *e >= n).await;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.lock().expect("lock").len()
    }

    /// Every byte received, connection after connection.
    pub fn received(&self) -> Vec<u8> {
        let conns = self.conns.lock().expect("lock");
        conns
            .iter()
            .flat_map(|c| c.lock().expect("lock").clone())
            .collect()
    }

    /// The bytes received as text (lossy), for `contains` checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received()).into_owned()
    }

    /// The complete requests received, in order, per connection concatenated.
    pub fn requests(&self) -> Vec<RawRequest> {
        (0..self.connections())
            .flat_map(|i| self.requests_on(i))
            .collect()
    }

    /// The complete requests received on the `i`th connection accepted (from 0).
    pub fn requests_on(&self, i: usize) -> Vec<RawRequest> {
        let bytes = match self.conns.lock().expect("lock").get(i) {
            Some(c) => c.lock().expect("lock").clone(),
            None => return Vec::new(),
        };
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while let Some((req, used)) = parse(rest) {
            out.push(req);
            rest = &rest[used..];
            if out.last().is_some_and(|r| r.header("upgrade").is_some()) {
                break; // what follows an upgrade is tunnel bytes, not requests
            }
        }
        out
    }
}

async fn serve(mut stream: TcpStream, bytes: Arc<Mutex<Vec<u8>>>, answer: Answer) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut answered = 0usize;
    let mut offset = 0usize;
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        bytes.lock().expect("lock").extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
        if answer == Answer::Early {
            if answered == 0 && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                answered = 1;
                let reply = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
            continue;
        }
        while let Some((req, used)) = parse(&buf[offset..]) {
            offset += used;
            answered += 1;
            let stalled = matches!(answer, Answer::Stall(p) if req.target().starts_with(p));
            let reply = match answer {
                _ if stalled => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1048576\r\n\r\n{}",
                    "s".repeat(1024)
                ),
                Answer::Ok | Answer::Stall(_) | Answer::Early => {
                    let body = format!("{{\"n\":{answered}}}");
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\naccess-control-allow-origin: *\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                }
                Answer::SetsCookies => "HTTP/1.1 200 OK\r\nset-cookie: portcullis-session=planted-by-upstream-0000000000; Path=/\r\nset-cookie: app=1; Path=/\r\ncontent-length: 2\r\n\r\nok".to_string(),
                Answer::SwitchAnything | Answer::SwitchTo(_) => {
                    let proto = match answer {
                        Answer::SwitchTo(p) => p.to_string(),
                        _ => req.header("upgrade").unwrap_or("h2c").to_string(),
                    };
                    format!("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {proto}\r\n\r\n")
                }
            };
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
            if matches!(answer, Answer::SwitchAnything | Answer::SwitchTo(_)) {
                // Tunnel: echo whatever comes next (recorded above as it arrives).
                let leftover = buf[offset..].to_vec();
                if !leftover.is_empty() && stream.write_all(&leftover).await.is_err() {
                    return;
                }
                loop {
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    bytes.lock().expect("lock").extend_from_slice(&chunk[..n]);
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// One complete request at the start of `buf` and the bytes it used.
fn parse(buf: &[u8]) -> Option<(RawRequest, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..end];
    let text = String::from_utf8_lossy(head);
    let mut lines = text.trim_end_matches("\r\n").split("\r\n");
    let line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut used = end;
    let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let rest = &buf[used..];
            let size_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&rest[..size_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            let start = size_end + 2;
            if size == 0 {
                // No trailers are expected: the final CRLF follows.
                if rest.len() < start + 2 {
                    return None;
                }
                used += start + 2;
                break body;
            }
            if rest.len() < start + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[start..start + size]);
            used += start + size + 2;
        }
    } else {
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if buf.len() < end + len {
            return None;
        }
        used += len;
        buf[end..end + len].to_vec()
    };
    Some((
        RawRequest {
            line,
            headers,
            head: head.to_vec(),
            body,
        },
        used,
    ))
}
