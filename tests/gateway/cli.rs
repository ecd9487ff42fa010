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

/// `portcullis check | head -1`: the reader is gone before the first line is
/// written. The pipe's read end is closed before the command starts, so every write
/// meets a closed pipe.
#[test]
fn check_survives_a_closed_pipe() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = bin()
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml"),
        ])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn check_refuses_zero_durations() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("zero.toml");
    std::fs::write(
        &path,
        "[server]\nrequest_timeout = \"0s\"\nheader_read_timeout = \"0s\"\n[[upstreams]]\nname = \"up\"\nurl = \"http://127.0.0.1:9\"\nconnect_timeout = \"0ms\"\n[[routes]]\npath = \"/**\"\nupstream = \"up\"\nauth = \"none\"\n",
    )
    .expect("write");
    let out = bin()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for key in [
        "server.request_timeout",
        "server.header_read_timeout",
        "upstreams[0].connect_timeout",
    ] {
        assert!(stderr.contains(&format!("{key}: \"0")), "{key} in {stderr}");
    }
    assert!(stderr.contains("longer than zero"), "{stderr}");
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
    let admin_port = closed_port().await.port();
    // A delay far longer than the test: only the second signal may end it.
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
         shutdown_delay = \"1h\"\n[[upstreams]]\nname=\"demo\"\necho=true\n"
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

    let term = || {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success()
    };
    // SIGTERM: unready at once, and serving on — new connections included — for the
    // delay, so that a load balancer takes the endpoint out before anything is refused.
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().expect("addr");
    assert_eq!(get(admin, "/readyz", &[]).await.status, 200);
    assert!(term());
    let mut unready = None;
    for _ in 0..500 {
        let r = get(admin, "/readyz", &["X-Request-Id: lb-probe-7"]).await;
        if r.status == 503 {
            unready = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unready = unready.expect("/readyz turns 503 after SIGTERM");
    assert_eq!(unready.json()["status"], "draining");
    assert_eq!(unready.header("x-request-id"), Some("lb-probe-7"));
    assert_eq!(get(addr, "/two", &[]).await.status, 200, "still serving");
    let health = get(admin, "/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("x-request-id").map(str::len), Some(32));
    // A second signal ends the delay: stop accepting, drain, exit.
    assert!(term());
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

    // A token read from stdin (not a JWT: refused, and said why).
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
        text.contains("DENY 401") && text.contains("malformed token"),
        "{text}"
    );

    let out = bin()
        .args(["explain", "GET", "/%2e%2e/items/42", "--config", config])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("DENY 400"));
}

/// A config with the token service on a SQLite file in `dir`.
fn token_config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = crate::token::config(&crate::token::sqlite(dir), "login_rate = \"1000/1s\"", "")
        .replace("{UP}", "127.0.0.1:9");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, format!("[server]\nlisten = \"127.0.0.1:0\"\n{text}")).expect("write");
    path
}

fn run_with_stdin(args: &[&str], config: &std::path::Path, stdin: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = bin()
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn users_cli_manages_the_store_and_reads_passwords_from_stdin_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = token_config(dir.path());
    let ok = |r: (bool, String, String)| {
        assert!(r.0, "{}{}", r.1, r.2);
        r.1
    };
    ok(run_with_stdin(
        &["users", "add", "carol", "--roles", "user"],
        &cfg,
        "carol-password-1\n",
    ));
    // Taken names, unknown roles and empty passwords are refused.
    let (good, _, err) = run_with_stdin(&["users", "add", "carol", "--roles", "user"], &cfg, "x\n");
    assert!(!good && err.contains("exists"), "{err}");
    let (good, _, err) = run_with_stdin(&["users", "add", "dave", "--roles", "root"], &cfg, "x\n");
    assert!(!good && err.contains("not defined in [roles]"), "{err}");
    let (good, _, err) = run_with_stdin(&["users", "add", "dave"], &cfg, "\n");
    assert!(!good && err.contains("empty password"), "{err}");
    let list = ok(run_with_stdin(&["users", "list"], &cfg, ""));
    assert!(list.contains("carol\troles=user\tenabled"), "{list}");
    assert!(!list.contains("carol-password"), "{list}");

    // The gateway logs carol in; roles and state changes take effect.
    let config = portcullis::config::Config::load(&cfg).expect("config");
    let gw = portcullis::Gateway::start(config).await.expect("start");
    let body = crate::token::login(gw.addr, "carol", "carol-password-1", "").await;
    assert_eq!(body["scope"], "items:read");
    ok(run_with_stdin(
        &["users", "set-roles", "carol", "--roles", "admin,user"],
        &cfg,
        "",
    ));
    let body = crate::token::login(gw.addr, "carol", "carol-password-1", "").await;
    assert_eq!(body["scope"], "items:read items:write");
    ok(run_with_stdin(
        &["users", "passwd", "carol"],
        &cfg,
        "carol-password-2\n",
    ));
    let r = crate::token::post(
        gw.addr,
        "/token",
        "grant_type=password&username=carol&password=carol-password-1",
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    crate::token::login(gw.addr, "carol", "carol-password-2", "").await;
    ok(run_with_stdin(&["users", "disable", "carol"], &cfg, ""));
    let r = crate::token::post(
        gw.addr,
        "/token",
        "grant_type=password&username=carol&password=carol-password-2",
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    ok(run_with_stdin(&["users", "enable", "carol"], &cfg, ""));
    crate::token::login(gw.addr, "carol", "carol-password-2", "").await;
    ok(run_with_stdin(&["users", "remove", "carol"], &cfg, ""));
    let (good, _, err) = run_with_stdin(&["users", "remove", "carol"], &cfg, "");
    assert!(!good && err.contains("no user"), "{err}");
}

#[test]
fn hash_password_and_keys_generate() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = token_config(dir.path());
    let (good, out, err) = run_with_stdin(&["hash-password"], &cfg, "hunter2-but-longer\n");
    assert!(good, "{err}");
    let hash = out.trim();
    // The configured parameters are used.
    assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{hash}");
    assert!(!out.contains("hunter2"));
    assert_eq!(
        crate::token::cheap_hasher().verify("hunter2-but-longer", hash),
        portcullis::token::password::Verdict::Valid
    );

    let keys = dir.path().join("keys");
    for (alg, kid) in [("ES256", "k-es"), ("EdDSA", "k-ed"), ("HS256", "k-hs")] {
        let out = bin()
            .args(["keys", "generate", "--alg", alg, "--kid", kid, "--out"])
            .arg(&keys)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("kid = \"{kid}\"")), "{stdout}");
        let private = keys.join(if alg == "HS256" {
            format!("{kid}.secret")
        } else {
            format!("{kid}.pem")
        });
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{alg}: private key readable by others ({mode:o})"
        );
        // The printed entry is a working key: a config signing with it loads.
        let entry = stdout.split_once("\n\n").expect("snippet").1;
        let text = format!(
            "[tokens]\nissuer = \"http://x.test\"\naudiences = [\"api\"]\nsigning_key = \"{kid}\"\ndefault_client = \"c\"\n{}\n[users]\nstore = \"sqlite://{}/k.db\"\n[[clients]]\nclient_id = \"c\"\ngrants = [\"password\"]\n[[upstreams]]\nname = \"u\"\necho = true\n[[routes]]\npath = \"/**\"\nupstream = \"u\"\n",
            entry,
            dir.path().display()
        );
        let parsed = portcullis::config::parse_str(&text, std::path::Path::new("k.toml"));
        assert!(
            parsed.is_ok(),
            "{alg}: {}",
            parsed.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    // Existing files are never overwritten; RS256 points at openssl.
    let out = bin()
        .args([
            "keys", "generate", "--alg", "ES256", "--kid", "k-es", "--out",
        ])
        .arg(&keys)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let out = bin()
        .args(["keys", "generate", "--alg", "RS256", "--kid", "r", "--out"])
        .arg(&keys)
        .output()
        .expect("run");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("openssl"));
}

/// `explain --token` runs the gateway's stack with the store's revocations: a token
/// that the gateway refuses after `/revoke` is refused by explain too.
#[tokio::test]
async fn explain_refuses_a_revoked_token_as_the_gateway_does() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = token_config(dir.path());
    let config = portcullis::config::Config::load(&cfg).expect("config");
    let gw = portcullis::Gateway::start(config).await.expect("start");
    let body = crate::token::login(gw.addr, "alice", "wonderland", "").await;
    let access = body["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let explain = |token: String| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || {
            run_with_stdin(
                &["explain", "GET", "/items/42", "--token", "-"],
                &cfg,
                &format!("{token}\n"),
            )
        })
    };
    let (allowed, out, err) = explain(access.clone()).await.expect("explain");
    assert!(allowed, "{out}{err}");
    assert!(out.contains("x-auth-subject: alice"), "{out}");
    let r = crate::token::post(gw.addr, "/revoke", &format!("token={access}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (allowed, out, _) = explain(access).await.expect("explain");
    assert!(!allowed, "{out}");
    assert!(
        out.contains("DENY 401") && out.contains("token revoked"),
        "{out}"
    );
    gw.shutdown().await;
}
