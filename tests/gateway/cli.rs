//! The `portcullis` binary: `check`, and `run` with SIGHUP reload and SIGTERM drain.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

#[test]
fn check_accepts_the_bundled_config() {
    let out = bin()
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml"),
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/public/**"), "{stdout}");
}

#[test]
fn check_lists_every_error_with_its_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"nowhere\"\nrequest_timeout = \"soon\"\n[[upstreams]]\nname = \"items\"\nurl = \"http://127.0.0.1:9\"\n[[routes]]\npath = \"/items/{id}\"\nupstream = \"itmes\"\n[[routes]]\npath = \"/a/../b\"\nupstream = \"items\"\nauth = \"public\"\n",
    )
    .expect("write");
    let out = bin()
        .arg("check")
        .env("PORTCULLIS_CONFIG", &path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "server.listen",
        "server.request_timeout",
        "routes[0].upstream",
        "unknown upstream \"itmes\"",
        "use one of: items",
        "routes[1].path",
        "routes[1].auth",
        "5 configuration errors",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("broken.toml"), "names the file");
    assert_eq!(err.matches("fix:").count(), 5, "{err}");
}

#[tokio::test]
async fn run_reloads_on_sighup_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gw.toml");
    let port = closed_port().await.port();
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[[upstreams]]\nname=\"demo\"\necho=true\n"
    );
    std::fs::write(
        &path,
        format!("{base}[[routes]]\npath=\"/one\"\nupstream=\"demo\"\nauth=\"none\"\n"),
    )
    .expect("write");
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines.next().expect("a log line").expect("utf8");
    assert!(listening.contains("portcullis listening"), "{listening}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert_eq!(get(addr, "/one", &[]).await.status, 200);

    let hup = || {
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill")
    };
    // A broken file is refused; the last good config keeps serving.
    std::fs::write(
        &path,
        format!("{base}[[routes]]\npath=\"/two\"\nupstream=\"nope\"\n"),
    )
    .expect("write");
    assert!(hup().success());
    let refused = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("reload refused")))
        .expect("refusal logged")
        .expect("utf8");
    assert!(refused.contains("unknown upstream"), "{refused}");
    assert_eq!(get(addr, "/one", &[]).await.status, 200);
    // A good file is taken.
    std::fs::write(
        &path,
        format!("{base}[[routes]]\npath=\"/two\"\nupstream=\"demo\"\nauth=\"none\"\n"),
    )
    .expect("write");
    assert!(hup().success());
    lines
        .find(|l| {
            l.as_ref()
                .is_ok_and(|l| l.contains("configuration reloaded"))
        })
        .expect("reload logged")
        .expect("utf8");
    assert_eq!(get(addr, "/two", &[]).await.status, 200);
    assert_eq!(get(addr, "/one", &[]).await.status, 404);

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success());
    let mut status = None;
    for _ in 0..500 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(status.expect("exits after SIGTERM").success());
}

#[test]
fn explain_reports_route_and_decision() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let out = bin()
        .args([
            "explain",
            "GET",
            "/public/../items/42",
            "--scopes",
            "items:read",
            "--config",
            config,
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("canonical: /items/42"), "{text}");
    assert!(
        text.contains("MATCH (chosen)") && text.contains("ALLOW"),
        "{text}"
    );

    let out = bin()
        .args([
            "explain",
            "POST",
            "/items/42",
            "--scopes",
            "items:read",
            "--config",
            config,
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("DENY 403") && text.contains("items:write"),
        "{text}"
    );

    let out = bin()
        .args([
            "explain",
            "POST",
            "/items/42",
            "--roles",
            "admin",
            "--config",
            config,
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "admin role grants items:write: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A token read from stdin (no keys in the bundled config: refused, and said why).
    let mut child = bin()
        .args([
            "explain",
            "GET",
            "/items/42",
            "--token",
            "-",
            "--config",
            config,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "a.b.c").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("DENY 401") && text.contains("no [tokens] keys"),
        "{text}"
    );

    let out = bin()
        .args(["explain", "GET", "/%2e%2e/items/42", "--config", config])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DENY 400"));
}
