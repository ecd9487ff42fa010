//! Real clients against the code flow: headless Chromium on the demo app (through
//! Playwright, `tests/js/spa_browser.mjs`), npm `openid-client` as a certified relying
//! party (`tests/js/rp_openid_client.mjs`) and Python authlib's `OAuth2Session` with
//! S256 (`tests/clients/authlib_code.py`). Each script prints a line per check and
//! fails on the first that does not hold.

use std::process::Command;

use super::{node_script, run, start};

fn assert_ran(what: &str, out: (bool, String, String), last: Option<&str>) {
    let (ok, stdout, stderr) = out;
    assert!(
        ok && !stdout.contains("FAIL") && last.is_none_or(|l| stdout.contains(l)),
        "{what}:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_on_the_demo_app() {
    let s = start("", "").await;
    let (node, script) = node_script("spa_browser.mjs");
    let mut cmd = Command::new(node);
    // The demo app at http://localhost:PORT/demo/ (a redirect URI of `spa`).
    cmd.arg(script)
        .arg(format!("http://localhost:{}", s.addr().port()));
    assert_ran("spa_browser.mjs", run(cmd).await, Some("no script error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_in_refreshes_and_logs_out() {
    let s = start("", "").await;
    let (node, script) = node_script("rp_openid_client.mjs");
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .arg(&s.base)
        .arg("spa")
        .arg(format!("{}/cb", s.base));
    assert_ran(
        "rp_openid_client.mjs",
        run(cmd).await,
        Some("shows the login page"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_runs_the_code_flow_with_s256() {
    let s = start("", "").await;
    authlib(&s).await;
}

/// The same with id_tokens signed RS256 (PyJWT verifies them against the JWKS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_verifies_rs256_id_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = format!("sqlite://{}/users.db", dir.path().display());
    let port = crate::support::closed_port().await.port();
    let text = super::config_text(port, &store, "", "")
        .replace("signing_key = \"es\"", "signing_key = \"rs\"")
        .replace(
            "kid = \"es\"\nalg = \"ES256\"",
            "kid = \"rs\"\nalg = \"RS256\"",
        )
        .replace("/es256.key\"", "/rs256.key\"");
    assert!(text.contains("alg = \"RS256\"") && text.contains("rs256.key"));
    let s = super::start_text(port, &store, &text).await;
    let meta = crate::support::get(s.addr(), "/.well-known/openid-configuration", &[]).await;
    assert!(
        meta.body
            .contains("\"id_token_signing_alg_values_supported\":[\"RS256\"]"),
        "{}",
        meta.body
    );
    authlib(&s).await;
}

async fn authlib(s: &super::SignIn) {
    let mut cmd = Command::new(crate::clients::python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/authlib_code.py"
    ))
    .arg(&s.base)
    .arg("spa")
    .arg(format!("{}/cb", s.base));
    assert_ran("authlib_code.py", run(cmd).await, Some("all checks passed"));
}
