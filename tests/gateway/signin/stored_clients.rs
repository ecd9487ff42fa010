//! `portcullis clients add|list|remove`: clients kept in the store sign users in like
//! configured ones; a confidential client's secret is shown once and stored as a
//! digest; new clients get the code grant, not the password grant.

use std::process::Command;

use portcullis::token::store::Store;

use super::flow::*;
use super::{config_text, run, start_at};
use crate::support::*;

fn portcullis(config: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    c.arg("--config").arg(config).args(args);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_added_to_the_store_sign_users_in() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = format!("sqlite://{}/users.db", dir.path().display());
    let port = closed_port().await.port();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config_text(port, &store, "", "")).expect("write");

    let app_cb = format!("http://127.0.0.1:{port}/app");
    let (ok, out, err) = run(portcullis(
        &file,
        &["clients", "add", "my-app", "--redirect-uri", &app_cb],
    ))
    .await;
    assert!(ok && out.contains("added my-app (public"), "{out}{err}");
    let (ok, out, err) = run(portcullis(
        &file,
        &[
            "clients",
            "add",
            "backend",
            "--confidential",
            "--no-consent",
            "--redirect-uri",
            "https://backend.example/cb",
        ],
    ))
    .await;
    assert!(ok, "{out}{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .expect("the secret is printed")
        .to_string();
    // Refused: a clash with the configuration, a bad redirect URI, the code grant
    // without one, client_credentials for a public client.
    for args in [
        vec![
            "clients",
            "add",
            "spa",
            "--redirect-uri",
            "https://x.example/cb",
        ],
        vec![
            "clients",
            "add",
            "x1",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
        vec!["clients", "add", "x2"],
        vec!["clients", "add", "x3", "--grant", "client_credentials"],
    ] {
        let (ok, out, err) = run(portcullis(&file, &args)).await;
        assert!(!ok, "{args:?} must be refused: {out}");
        assert!(!err.is_empty());
    }
    let (ok, out, _) = run(portcullis(&file, &["clients", "list"])).await;
    assert!(
        ok && out.contains("my-app\tpublic") && out.contains("backend\tconfidential"),
        "{out}"
    );
    // Only a digest is stored.
    let st = Store::open(&store).await.expect("store");
    let rec = st.find_client("backend").await.expect("q").expect("client");
    assert_eq!(
        rec.secret_sha256.as_deref(),
        Some(portcullis::auth::api_key::hash(&secret).as_str())
    );
    assert!(!std::fs::read(dir.path().join("users.db"))
        .expect("db")
        .windows(secret.len())
        .any(|w| w == secret.as_bytes()));

    let s = start_at(port, &store, "", "").await;
    let addr = s.addr();
    // The public stored client: consent, then a code redeemed with PKCE.
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(addr);
    let target = authorize_url(&[
        ("response_type", "code"),
        ("client_id", "my-app"),
        ("redirect_uri", &app_cb),
        ("scope", "openid items:read"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let page = b.get(&target).await;
    let r = b.login(&page, "johndoe", "secret").await;
    assert!(
        r.body.contains("form id=\"consent\""),
        "consent by default: {}",
        r.body
    );
    let r = b.consent(&r, "allow").await;
    let code = param(&location(&r), "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&client_id=my-app&code={code}&redirect_uri={}&code_verifier={verifier}",
        urlencode(&app_cb)
    );
    let t = crate::token::post(addr, "/token", &body, &[]).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert!(t.json().get("refresh_token").is_some());
    // No password grant for a new client.
    let r = crate::token::post(
        addr,
        "/token",
        "grant_type=password&client_id=my-app&username=johndoe&password=secret",
        &[],
    )
    .await;
    crate::token::assert_oauth_error(&r, 400, "unauthorized_client");
    // The confidential one: no consent page, Basic with the printed secret.
    let (verifier, challenge) = pkce();
    let r = b
        .get(&authorize_url(&[
            ("response_type", "code"),
            ("client_id", "backend"),
            ("redirect_uri", "https://backend.example/cb"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let code = param(&location(&r), "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fbackend.example%2Fcb&code_verifier={verifier}"
    );
    let r = crate::token::post(
        addr,
        "/token",
        &body,
        &[&crate::token::basic("backend", "wrong")],
    )
    .await;
    crate::token::assert_oauth_error(&r, 401, "invalid_client");
    let r = crate::token::post(
        addr,
        "/token",
        &body,
        &[&crate::token::basic("backend", &secret)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Removed: its authorization requests are refused with a page.
    let (ok, out, err) = run(portcullis(&file, &["clients", "remove", "my-app"])).await;
    assert!(ok, "{out}{err}");
    let r = b.get(&target).await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
}
