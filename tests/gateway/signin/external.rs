//! Sign-in through an external identity provider: npm `oidc-provider` (an
//! OpenID-certified provider) on loopback, `tests/js/idp.mjs`, driven through its own
//! login and consent pages by `tests/js/idp_login.mjs`. The user leaves with
//! Portcullis' own tokens in the normalized shape; a tampered id_token, a wrong nonce
//! and an unknown issuer are refused, and refused before any local user is made.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis::token::store::Store;

use super::flow::*;
use super::{node_script, run, start_at, SignIn};
use crate::support::*;

/// The provider process; killed when dropped.
struct Idp(Child);

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SECRET: &str = "idpSecret4tests";

/// A provider in `mode` and a gateway that offers it (`corp`), on a fresh store.
async fn setup(mode: &str, dir: &std::path::Path) -> (Idp, SignIn) {
    setup_with(mode, dir, "", "").await
}

/// [`setup`] with more `[[login.providers]]` keys and more configuration.
async fn setup_with(
    mode: &str,
    dir: &std::path::Path,
    provider_extra: &str,
    extra: &str,
) -> (Idp, SignIn) {
    let gw_port = closed_port().await.port();
    let idp_port = closed_port().await.port();
    let (node, script) = node_script("idp.mjs");
    let callback = format!("http://127.0.0.1:{gw_port}/login/corp/callback");
    let mut child = Command::new(node)
        .arg(script)
        .args([&idp_port.to_string(), "portcullis", SECRET, &callback, mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.trim() == "ready")
    })
    .await
    .expect("join");
    let idp = Idp(child);
    assert!(ready, "idp.mjs did not start");
    let secret_file = dir.join("corp.secret");
    std::fs::write(&secret_file, SECRET).expect("write");
    let login = format!(
        r#"
[[login.providers]]
name = "corp"
display_name = "Corp SSO"
issuer = "http://127.0.0.1:{idp_port}"
client_id = "portcullis"
client_secret_file = "{}"
scopes = ["openid", "email", "profile"]
roles_claim = "groups"
role_map = {{ staff = "user" }}
{provider_extra}
"#,
        secret_file.display()
    );
    let store = format!("sqlite://{}/users.db", dir.display());
    (idp, start_at(gw_port, &store, &login, extra).await)
}

/// Runs the external sign-in as a browser; the script's last line.
async fn external_sign_in(s: &SignIn, challenge: &str, login: &str) -> String {
    let start = format!(
        "{}/login/corp?{}",
        s.base,
        spa_request(&s.base, challenge, "st")
            .trim_start_matches("/authorize?")
            .replace(
                "scope=openid+profile+items%3Aread",
                "scope=openid+profile+email+items%3Aread"
            )
    );
    let (node, script) = node_script("idp_login.mjs");
    let mut cmd = Command::new(node);
    cmd.arg(script).arg(&start).arg(login);
    let (ok, stdout, stderr) = run(cmd).await;
    assert!(ok, "idp_login.mjs failed:\n{stdout}\n{stderr}");
    stdout.lines().last().unwrap_or_default().to_string()
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_oidc_provider_yields_our_own_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_idp, s) = setup("ok", dir.path()).await;
    // The login page offers the provider.
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(s.addr());
    let page = b.get(&spa_request(&s.base, &challenge, "st")).await;
    assert!(page.body.contains("Sign in with Corp SSO"), "{}", page.body);

    let last = external_sign_in(&s, &challenge, "ext-alice").await;
    let url = last
        .strip_prefix("final ")
        .unwrap_or_else(|| panic!("{last}"));
    assert!(url.starts_with(&format!("{}/cb?", s.base)), "{url}");
    assert_eq!(param(url, "state").as_deref(), Some("st"));
    assert_eq!(param(url, "iss").as_deref(), Some(s.base.as_str()));
    let code = param(url, "code").expect("code");
    let t = redeem(s.addr(), &s.base, &code, &verifier).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    // One issuer, one shape: iss, sub, aud, iat, exp, azp, gty — ours, not the IdP's.
    let at = claims(t["access_token"].as_str().expect("at"));
    assert_eq!(at["iss"], s.base.as_str());
    assert_eq!(at["sub"], "corp-ext-alice");
    assert_eq!(at["aud"], "api");
    assert_eq!(at["azp"], "spa");
    assert_eq!(at["gty"], "authorization_code");
    assert_eq!(
        at["roles"],
        serde_json::json!(["user"]),
        "groups staff → role user"
    );
    assert!(at["iat"].is_i64() && at["exp"].is_i64());
    let id = claims(t["id_token"].as_str().expect("id"));
    assert_eq!(id["iss"], s.base.as_str());
    assert_eq!(id["email"], "ext-alice@example.com");
    // The upstream sees our subject.
    let r = get(
        s.addr(),
        "/items/42",
        &[&bearer(t["access_token"].as_str().expect("at"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("corp-ext-alice"), "{}", r.body);
    // A second sign-in maps to the same user (linked by provider and sub).
    let (_, challenge2) = pkce();
    let last = external_sign_in(&s, &challenge2, "ext-alice").await;
    assert!(last.starts_with("final "), "{last}");
    let store = Store::open(&s.store_url).await.expect("store");
    let users: Vec<String> = store
        .list_users()
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.username)
        .filter(|u| u.starts_with("corp-"))
        .collect();
    assert_eq!(users, vec!["corp-ext-alice".to_string()]);
    // No password opens the account.
    let r = crate::token::post(
        s.addr(),
        "/token",
        "grant_type=password&client_id=spa&username=corp-ext-alice&password=!external",
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_foreign_id_token_is_refused() {
    for mode in ["bad-signature", "wrong-nonce", "wrong-iss"] {
        let dir = tempfile::tempdir().expect("tmp");
        let (_idp, s) = setup(mode, dir.path()).await;
        let (_, challenge) = pkce();
        let last = external_sign_in(&s, &challenge, "ext-mallory").await;
        assert!(last.starts_with("refused 400"), "{mode}: {last}");
        let store = Store::open(&s.store_url).await.expect("store");
        assert!(
            store
                .find_user("corp-ext-mallory")
                .await
                .expect("q")
                .is_none(),
            "{mode}: no user was made"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_identities_link_to_local_users_by_email_but_never_become_static_users() {
    let dir = tempfile::tempdir().expect("tmp");
    // A static user named like what ext-carol would be made as.
    let carol = crate::token::cheap_hasher()
        .hash("carol-password")
        .expect("hash");
    let extra = format!(
        "[[users.static]]\nusername = \"corp-ext-carol\"\npassword_hash = \"{carol}\"\nroles = [\"admin\"]\n"
    );
    let (_idp, s) = setup_with("ok", dir.path(), "link_by_email = true", &extra).await;
    let store = Store::open(&s.store_url).await.expect("store");
    // alice (local, admin) has the address ext-alice@example.com on record.
    store
        .set_email("alice", "Ext-Alice@example.com")
        .await
        .expect("email");
    let sub_of = |last: &str, verifier: &str| {
        let url = last
            .strip_prefix("final ")
            .unwrap_or_else(|| panic!("{last}"))
            .to_string();
        let code = param(&url, "code").expect("code");
        (code, verifier.to_string())
    };
    let (verifier, challenge) = pkce();
    let last = external_sign_in(&s, &challenge, "ext-alice").await;
    let (code, v) = sub_of(&last, &verifier);
    let t = redeem(s.addr(), &s.base, &code, &v).await.json();
    assert_eq!(
        claims(t["access_token"].as_str().expect("at"))["sub"],
        "alice",
        "linked by verified email"
    );
    // ext-carol gets a store user of her own, never the static corp-ext-carol.
    let (verifier, challenge) = pkce();
    let last = external_sign_in(&s, &challenge, "ext-carol").await;
    let (code, v) = sub_of(&last, &verifier);
    let t = redeem(s.addr(), &s.base, &code, &v).await.json();
    let at = claims(t["access_token"].as_str().expect("at"));
    let sub = at["sub"].as_str().expect("sub").to_string();
    assert_ne!(sub, "corp-ext-carol");
    assert!(sub.starts_with("corp-ext-carol-"), "{sub}");
    assert_eq!(at["roles"], serde_json::json!(["user"]));
}
