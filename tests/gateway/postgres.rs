//! The token service on a real PostgreSQL server started by the test (initdb + pg_ctl
//! in a temporary directory, loopback only). `.ci/run` installs PostgreSQL; without it
//! the test fails and says so — it never skips.

use std::path::PathBuf;
use std::process::Command;

use portcullis::token::store::Store;

use crate::support::*;
use crate::token::{assert_oauth_error, basic, config, login, post, WEB_SECRET};

/// A PostgreSQL server for one test; stopped when dropped.
pub(crate) struct Postgres {
    bin: PathBuf,
    data: tempfile::TempDir,
    as_postgres: bool,
    port: u16,
}

fn find_bin() -> PathBuf {
    let mut candidates = vec![];
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            candidates.push(e.path().join("bin"));
        }
    }
    candidates.sort();
    candidates.reverse();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .unwrap_or_else(|| {
            panic!("PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or PATH); `bash .ci/run` installs it (apt-get install postgresql)")
        })
}

impl Postgres {
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) async fn start() -> Postgres {
        let bin = find_bin();
        let data = tempfile::tempdir().expect("tmp");
        // PostgreSQL refuses to run as root: as root, the cluster belongs to `postgres`.
        let as_postgres = nix_is_root();
        if as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(data.path())
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = closed_port().await.port();
        let mut pg = Postgres {
            bin,
            data,
            as_postgres,
            port,
        };
        let dir = pg.data.path().join("db");
        let dir_s = dir.to_string_lossy().to_string();
        let sock = pg.data.path().to_string_lossy().to_string();
        pg.run(
            "initdb",
            &["-D", &dir_s, "-A", "trust", "-U", "portcullis", "--no-sync"],
        );
        let opts = format!("-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off");
        let logfile = format!("{sock}/pg.log");
        pg.run(
            "pg_ctl",
            &["-D", &dir_s, "-o", &opts, "-l", &logfile, "-w", "start"],
        );
        pg.port = port;
        pg
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://portcullis@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let dir = self.data.path().join("db").to_string_lossy().to_string();
        let exe = self.bin.join("pg_ctl");
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(exe)
                .args(["-D", &dir, "-m", "immediate", "stop"])
                .output()
        } else {
            Command::new(exe)
                .args(["-D", &dir, "-m", "immediate", "stop"])
                .output()
        };
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_service_on_postgresql_shared_by_two_replicas() {
    let pg = Postgres::start().await;
    let up = Upstream::start().await;
    let text = config(&pg.url(), "login_rate = \"1000/1s\"", "");
    // Two replicas on one database: the first creates the schema and seeds the users.
    let a = gateway(&text, Some(up.addr)).await;
    let b = gateway(&text, Some(up.addr)).await;
    let store = Store::open(&pg.url()).await.expect("store");
    assert_eq!(
        store.list_users().await.expect("users").len(),
        2,
        "seeded once"
    );

    // Password grant on A (bcrypt upgraded in the shared store), refresh on B.
    let first = login(a.addr, "johndoe", "secret", "").await;
    assert!(store
        .find_user("johndoe")
        .await
        .expect("q")
        .expect("user")
        .password_hash
        .starts_with("$argon2id$"));
    let r1 = first["refresh_token"].as_str().expect("rt");
    let r = post(
        b.addr,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r1}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r2 = r.json()["refresh_token"].as_str().expect("rt").to_string();
    // Reuse on A is detected although B rotated it; the family dies everywhere.
    let r = post(
        a.addr,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r1}"),
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = post(
        b.addr,
        "/token",
        &format!("grant_type=refresh_token&refresh_token={r2}"),
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");

    // Every error path works the same on PostgreSQL.
    let r = post(
        a.addr,
        "/token",
        "grant_type=password&username=nobody&password=x",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = post(
        a.addr,
        "/token",
        "grant_type=password&username=alice&password=wonderland",
        &[&basic("web", "bad")],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = post(
        a.addr,
        "/token",
        "grant_type=password&username=alice&password=wonderland",
        &[&basic("web", WEB_SECRET)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Revoking an access token on A: refused on A at once, on B after its deny-list
    // sync (every 5 s).
    let t = login(a.addr, "alice", "wonderland", "").await;
    let access = t["access_token"].as_str().expect("t");
    assert_eq!(
        get(b.addr, "/items/1", &[&bearer(access)]).await.status,
        200
    );
    let r = post(a.addr, "/revoke", &format!("token={access}"), &[]).await;
    assert_eq!(r.status, 200);
    assert_error(
        &get(a.addr, "/items/1", &[&bearer(access)]).await,
        401,
        "invalid_token",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = get(b.addr, "/items/1", &[&bearer(access)]).await;
        if r.status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica B never saw the revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }

    // Disabled in the shared store: refused by both replicas.
    assert!(store.set_disabled("alice", true).await.expect("q"));
    for gw in [&a, &b] {
        let r = post(
            gw.addr,
            "/token",
            "grant_type=password&username=alice&password=wonderland",
            &[],
        )
        .await;
        assert_oauth_error(&r, 400, "invalid_grant");
    }
    assert!(store.remove_user("alice").await.expect("q"));
    assert!(store.find_user("alice").await.expect("q").is_none());
}
