//! The access log of the real binary, written to a file: one JSON line per request
//! with the documented fields, for an allowed request, a 401, a 403 and a 429; and no
//! token, password or non-allow-listed query value anywhere in any log.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use crate::token::{config, login, post, sqlite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_have_every_field_and_no_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let port = closed_port().await.port();
    let admin = closed_port().await.port();
    let logfile = dir.path().join("access.log");
    let extra = "[rate_limits.tight]\nkey = \"ip\"\nrate = \"1/1m\"\n[[routes]]\npath = \"/tight/**\"\nupstream = \"up\"\nauth = \"none\"\nrate_limit = \"tight\"\n";
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nshutdown_delay = \"0s\"\naccess_log_file = \"{}\"\naccess_log_rotation = \"never\"\naccess_log_query = [\"page\"]\n{}",
        logfile.display(),
        config(&sqlite(dir.path()), "login_rate = \"1000/1s\"", extra).replace("{UP}", &up.addr.to_string())
    );
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, text).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = login(addr, "johndoe", "secret", "").await;
    let token = body["access_token"].as_str().expect("t").to_string();
    let refresh = body["refresh_token"].as_str().expect("r").to_string();
    let ok = get(addr, "/items/7?page=2&api_key=hunter2", &[&bearer(&token)]).await;
    assert_eq!(ok.status, 200);
    let ok_id = ok.header("x-request-id").expect("rid").to_string();
    assert_eq!(get(addr, "/items/7", &[]).await.status, 401);
    let forbidden = raw(addr, &format!("POST /items/7 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 5\r\n{}\r\n\r\nhello", bearer(&token))).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(get(addr, "/tight/x", &[]).await.status, 200);
    assert_eq!(get(addr, "/tight/x", &[]).await.status, 429);
    let r = post(
        addr,
        "/token",
        "grant_type=password&username=johndoe&password=wrong-Pa55",
        &[],
    )
    .await;
    assert_eq!(r.status, 400);

    // SIGTERM: drain, flush the log writer, exit.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || {
        let _ = child.wait();
        child
    })
    .await
    .expect("join");
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read as _;
    let mut out = out;
    if let Some(mut s) = out.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = out.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let file = std::fs::read_to_string(&logfile).expect("access log file");
    let lines: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().all(|l| l["target"] == "portcullis::access"),
        "only access lines in the file"
    );
    assert!(
        !stdout.contains("portcullis::access"),
        "access lines stay out of the application log"
    );

    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        lines
            .iter()
            .find(|l| pred(l))
            .cloned()
            .unwrap_or_else(|| panic!("no such line in:\n{file}"))
    };
    let allowed = find(&|l| l["request_id"] == ok_id.as_str());
    for (k, v) in [
        ("method", "GET"),
        ("path", "/items/7"),
        ("query", "page=2"),
        ("route", "routes[0]"),
        ("upstream", "up"),
        ("subject", "johndoe"),
        ("client_id", "cli"),
        ("client_ip", "127.0.0.1"),
        ("reason", ""),
    ] {
        if k == "route" {
            assert!(
                allowed[k].as_str().is_some_and(|r| !r.is_empty()),
                "{allowed}"
            );
            continue;
        }
        assert_eq!(allowed[k], v, "{k} in {allowed}");
    }
    assert_eq!(allowed["status"], 200);
    assert!(
        allowed["bytes_out"].as_u64().is_some_and(|b| b > 0),
        "{allowed}"
    );
    assert!(allowed["duration_us"].as_u64().is_some_and(|d| d > 0));
    assert!(allowed["upstream_us"]
        .as_u64()
        .is_some_and(|d| d > 0 && d <= allowed["duration_us"].as_u64().unwrap_or(0)));
    assert!(allowed["timestamp"].as_str().is_some());
    // The line's trace id is the one the upstream was given (W3C traceparent).
    let traceparent = up
        .seen()
        .iter()
        .find(|r| r.target.starts_with("/items/7"))
        .and_then(|r| r.headers.get("traceparent").cloned())
        .expect("the upstream got a traceparent");
    let trace_id = &traceparent.to_str().expect("ascii")[3..35];
    assert_eq!(allowed["trace_id"], trace_id, "{allowed}");
    assert!(lines.iter().all(|l| l["trace_id"]
        .as_str()
        .is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))));
    let unauth = find(&|l| l["status"] == 401);
    assert_eq!(unauth["reason"], "no_token");
    let denied = find(&|l| l["status"] == 403);
    assert_eq!(denied["reason"], "insufficient_scope");
    assert_eq!(denied["subject"], "johndoe");
    let limited = find(&|l| l["status"] == 429);
    assert_eq!(limited["reason"], "rate_limited");
    let refused = find(&|l| l["path"] == "/token" && l["status"] == 400);
    assert_eq!(refused["reason"], "invalid_grant");

    // No secret anywhere: not in the access file, not in the debug-level app log.
    for (what, text) in [
        ("access log", &file),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        for secret in [
            token.as_str(),
            refresh.as_str(),
            "secret\"",
            "wrong-Pa55",
            "wonderland",
            "hunter2",
            "api_key",
        ] {
            assert!(!text.contains(secret), "{what} contains {secret:?}");
        }
    }
}
