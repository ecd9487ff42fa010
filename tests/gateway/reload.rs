//! Reload, proven: what a reload keeps (counters, pools, keys — see issuers.rs) and
//! that it costs the requests in flight nothing, in-process and on the binary (SIGHUP).
//! Counters, not timing: every request is counted as answered 200 or failed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw_upstream::{Answer, RawUpstream};
use crate::support::*;
use crate::token::{assert_oauth_error, config as token_config, post, sqlite};

/// Clients that keep sending `GET path` until stopped: some on one keep-alive
/// connection each, some on a new connection per request.
struct Load {
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, path: &'static str, keep_alive: usize, fresh: usize) -> Load {
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..keep_alive + fresh {
            let (ok, failures, stop) = (ok.clone(), failures.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                if i < keep_alive {
                    keep_alive_client(addr, path, &ok, &failures, &stop).await;
                } else {
                    fresh_client(addr, path, &ok, &failures, &stop).await;
                }
            }));
        }
        Load {
            ok,
            failures,
            stop,
            tasks,
        }
    }

    fn answered(&self) -> usize {
        self.ok.load(Ordering::SeqCst) + self.failures.lock().expect("lock").len()
    }

    /// Waits until `n` more requests have been answered (or have failed).
    async fn progress(&self, n: usize) {
        let target = self.answered() + n;
        while self.answered() < target {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients; (requests answered 200, failures).
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("client task");
        }
        let failures = self.failures.lock().expect("lock").clone();
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

async fn keep_alive_client(
    addr: SocketAddr,
    path: &str,
    ok: &AtomicUsize,
    failures: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let fail = |what: String| failures.lock().expect("lock").push(what);
    while !stop.load(Ordering::SeqCst) {
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                fail(format!("keep-alive connect: {e}"));
                continue;
            }
        };
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
        else {
            fail("keep-alive handshake".into());
            continue;
        };
        tokio::spawn(conn);
        // One connection for as long as the gateway keeps it: a reload must not close it.
        while !stop.load(Ordering::SeqCst) {
            let req = http::Request::get(path)
                .header("host", "gw.test")
                .body(Empty::<Bytes>::new())
                .expect("request");
            match send.send_request(req).await {
                Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => fail(format!("keep-alive body: {e}")),
                },
                Ok(resp) => fail(format!("keep-alive status {}", resp.status())),
                Err(e) => {
                    fail(format!("keep-alive request: {e}"));
                    break;
                }
            }
        }
    }
}

async fn fresh_client(
    addr: SocketAddr,
    path: &str,
    ok: &AtomicUsize,
    failures: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
    while !stop.load(Ordering::SeqCst) {
        let answer = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(request.as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        match answer.await {
            Ok(buf) if buf.starts_with(b"HTTP/1.1 200 ") => {
                ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(buf) => failures.lock().expect("lock").push(format!(
                "new connection: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(60)])
            )),
            Err(e) => failures
                .lock()
                .expect("lock")
                .push(format!("new connection: {e}")),
        }
    }
}

/// A configuration whose `generation` shows in a route of its own.
fn generation(generation: usize) -> String {
    format!(
        "[server]\nworker_threads = 2\n[[upstreams]]\nname = \"up\"\nurl = \"http://{{UP}}\"\n[[upstreams]]\nname = \"echo\"\necho = true\n\
         [[routes]]\npath = \"/load/**\"\nupstream = \"up\"\nauth = \"none\"\n\
         [[routes]]\npath = \"/gen-{generation}\"\nupstream = \"echo\"\nauth = \"none\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_reloads_under_load_fail_no_request() {
    let up = Upstream::start().await;
    let gw = portcullis::Gateway::start_workers(config_of(&generation(0), Some(up.addr)), 2)
        .await
        .expect("starts");
    let load = Load::start(gw.addr, "/load/x", 4, 4);
    load.progress(100).await;
    for i in 1..=5 {
        gw.reload(config_of(&generation(i), Some(up.addr)));
        assert_eq!(get(gw.addr, &format!("/gen-{i}"), &[]).await.status, 200);
        assert_eq!(
            get(gw.addr, &format!("/gen-{}", i - 1), &[]).await.status,
            404
        );
        load.progress(100).await;
    }
    let (ok, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(ok >= 600, "{ok} answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sighup_reloads_of_the_binary_fail_no_request() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gw.toml");
    let port = closed_port().await.port();
    let up = Upstream::start().await;
    let write = |i: usize| {
        let text = generation(i).replace("{UP}", &up.addr.to_string()).replace(
            "[server]\n",
            &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
        );
        std::fs::write(&path, text).expect("write");
    };
    write(0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Log lines, read on a thread of their own.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut wait_for = async |text: &str| loop {
        let line = lines.recv().await.expect("the gateway is running");
        if line.contains(text) {
            return line;
        }
    };
    wait_for("portcullis listening").await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let load = Load::start(addr, "/load/x", 4, 4);
    load.progress(100).await;
    for i in 1..=5 {
        write(i);
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(hup.success());
        wait_for("configuration reloaded").await;
        assert_eq!(get(addr, &format!("/gen-{i}"), &[]).await.status, 200);
        load.progress(100).await;
    }
    let (ok, failures) = load.finish().await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(ok >= 600, "{ok} answered");
}

/// A route limited to 2 requests an hour by IP, and the login budget.
fn limited(route_rate: &str, login_rate: &str, dir: &std::path::Path, extra_route: &str) -> String {
    token_config(
        &sqlite(dir),
        "",
        &format!(
            "[rate_limits.tight]\nkey = \"ip\"\nrate = \"{route_rate}\"\n\
             [rate_limits.login]\nkey = \"ip+username\"\nrate = \"{login_rate}\"\n\
             [[routes]]\npath = \"/tight/**\"\nupstream = \"up\"\nauth = \"none\"\nrate_limit = \"tight\"\n{extra_route}"
        ),
    )
}

async fn bad_login(addr: SocketAddr) -> Raw {
    post(
        addr,
        "/token",
        "grant_type=password&username=alice&password=wrong",
        &[],
    )
    .await
}

#[tokio::test]
async fn rate_limit_counters_survive_a_reload_that_keeps_their_policy() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let text = limited("2/1h", "2/1h", dir.path(), "");
    let gw = gateway(&text, Some(up.addr)).await;
    for _ in 0..2 {
        assert_eq!(get(gw.addr, "/tight/a", &[]).await.status, 200);
        assert_oauth_error(&bad_login(gw.addr).await, 400, "invalid_grant");
    }
    assert_eq!(get(gw.addr, "/tight/a", &[]).await.status, 429);
    assert_oauth_error(&bad_login(gw.addr).await, 429, "rate_limited");

    // Another route added, both policies unchanged: the budgets stay spent.
    let more = "[[routes]]\npath = \"/more/**\"\nupstream = \"up\"\nauth = \"none\"\n";
    gw.reload(config_of(
        &limited("2/1h", "2/1h", dir.path(), more),
        Some(up.addr),
    ));
    assert_eq!(get(gw.addr, "/more/x", &[]).await.status, 200, "reloaded");
    assert_eq!(get(gw.addr, "/tight/a", &[]).await.status, 429);
    assert_oauth_error(&bad_login(gw.addr).await, 429, "rate_limited");

    // The route's policy changed: its counters start afresh; the login budget stays.
    gw.reload(config_of(
        &limited("3/1h", "2/1h", dir.path(), more),
        Some(up.addr),
    ));
    assert_eq!(get(gw.addr, "/tight/a", &[]).await.status, 200);
    assert_oauth_error(&bad_login(gw.addr).await, 429, "rate_limited");

    // The login policy changed: a new budget.
    gw.reload(config_of(
        &limited("3/1h", "3/1h", dir.path(), more),
        Some(up.addr),
    ));
    assert_oauth_error(&bad_login(gw.addr).await, 400, "invalid_grant");
}

fn pooled(connect_timeout: &str, extra_route: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"up\"\nurl = \"http://{{UP}}\"\nconnect_timeout = \"{connect_timeout}\"\n\
         [[routes]]\npath = \"/**\"\nupstream = \"up\"\nauth = \"none\"\n{extra_route}"
    )
}

#[tokio::test]
async fn a_reload_keeps_the_pool_of_an_unchanged_upstream() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway(&pooled("1s", ""), Some(up.addr)).await;
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "/a", &[]).await.status, 200);
    }
    assert_eq!(up.connections(), 1, "one pooled connection");

    // Routes changed, the upstream did not: no new connection.
    let other = "[[routes]]\npath = \"/b\"\nupstream = \"up\"\nauth = \"required\"\n";
    for _ in 0..3 {
        gw.reload(config_of(&pooled("1s", other), Some(up.addr)));
        assert_eq!(get(gw.addr, "/a", &[]).await.status, 200);
    }
    assert_eq!(get(gw.addr, "/b", &[]).await.status, 401, "reloaded");
    assert_eq!(up.connections(), 1, "the reloads opened no connection");
    assert_eq!(up.requests_on(0).len(), 6);

    // The upstream changed: a new pool, a new connection.
    gw.reload(config_of(&pooled("2s", other), Some(up.addr)));
    assert_eq!(get(gw.addr, "/a", &[]).await.status, 200);
    assert_eq!(up.connections(), 2);
    assert_eq!(up.requests_on(1).len(), 1);
}
