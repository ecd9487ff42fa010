//! The negative table over HTTP: PKCE missing or `plain`, a wrong verifier, a
//! redirect URI that is not registered (no redirect happens), a reused code (what it
//! gave is revoked), an expired code, a code of another client, a PKCE downgrade; and
//! the redirects that must happen, with `state` and `iss`.

use portcullis::token::store::{CodeRecord, Store};

use super::flow::*;
use super::start;
use crate::support::*;
use crate::token::assert_oauth_error;

/// An error sent back to the client: 303 to its redirect URI with error, state, iss.
fn assert_redirected_error(r: &Raw, base: &str, error: &str) {
    assert_eq!(r.status, 303, "{}", r.body);
    let loc = location(r);
    assert!(loc.starts_with(&format!("{base}/cb?")), "{loc}");
    assert_eq!(param(&loc, "error").as_deref(), Some(error), "{loc}");
    assert_eq!(param(&loc, "state").as_deref(), Some("st"), "{loc}");
    assert_eq!(param(&loc, "iss").as_deref(), Some(base), "{loc}");
}

/// An error page: no redirect anywhere.
fn assert_page(r: &Raw, status: u16, text: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.header("location").is_none(), "must not redirect");
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(r.body.contains(text), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_requests_that_must_be_refused() {
    let s = start("", "").await;
    let (base, addr) = (s.base.clone(), s.addr());
    let cb = format!("{base}/cb");
    let (_, challenge) = pkce();
    let mut b = Browser::new(addr);
    let base_pairs = |extra: &[(&'static str, &str)]| {
        let mut v: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", "spa".into()),
            ("redirect_uri", cb.clone()),
            ("scope", "openid items:read".into()),
            ("state", "st".into()),
        ];
        for (k, val) in extra {
            v.retain(|(x, _)| x != k);
            v.push((k, val.to_string()));
        }
        v
    };
    let url = |v: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        authorize_url(&pairs)
    };

    // Missing PKCE, plain PKCE, a challenge that is no S256 digest: back to the client.
    let r = b.get(&url(base_pairs(&[]))).await;
    assert_redirected_error(&r, &base, "invalid_request");
    let r = b
        .get(&url(base_pairs(&[
            ("code_challenge", &challenge),
            ("code_challenge_method", "plain"),
        ])))
        .await;
    assert_redirected_error(&r, &base, "invalid_request");
    let r = b
        .get(&url(base_pairs(&[("code_challenge", &challenge)])))
        .await;
    assert_redirected_error(&r, &base, "invalid_request");
    let r = b
        .get(&url(base_pairs(&[
            ("code_challenge", "short"),
            ("code_challenge_method", "S256"),
        ])))
        .await;
    assert_redirected_error(&r, &base, "invalid_request");
    let pk = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with_pkce = |extra: &[(&'static str, &str)]| {
        let mut all: Vec<(&'static str, &str)> = pk.to_vec();
        all.extend_from_slice(extra);
        url(base_pairs(&all))
    };
    // Other response types, prompt=none without a session, a malformed scope.
    let r = b.get(&with_pkce(&[("response_type", "token")])).await;
    assert_redirected_error(&r, &base, "unsupported_response_type");
    let r = b.get(&with_pkce(&[("prompt", "none")])).await;
    assert_redirected_error(&r, &base, "login_required");
    let r = b.get(&with_pkce(&[("scope", "a\"b")])).await;
    assert_redirected_error(&r, &base, "invalid_scope");
    let r = b
        .get(&with_pkce(&[("request_uri", "https://evil.example/r")]))
        .await;
    assert_redirected_error(&r, &base, "request_uri_not_supported");

    // The redirect URI decides where errors may go: unregistered → a page, never a
    // redirect (no open redirector), whatever else is wrong.
    for bad in [
        "https://evil.example/cb",
        &format!("{base}/cb/../evil"),
        &format!("{base}/cb?next=https://evil.example"),
        &format!("{base}/cb#frag"),
        &format!("{base}/cb2"),
        &format!("http://evil.example@127.0.0.1:{}/cb", addr.port()),
        "http://localhost/cb",
    ] {
        let r = b
            .get(&url(base_pairs(&[
                ("redirect_uri", bad),
                ("response_type", "token"),
            ])))
            .await;
        assert_page(&r, 400, "not registered");
    }
    // Unknown or missing client: a page.
    let r = b.get(&with_pkce(&[("client_id", "nobody")])).await;
    assert_page(&r, 400, "unknown");
    let r = b.get("/authorize?response_type=code").await;
    assert_page(&r, 400, "client_id is missing");
    // A parameter twice (RFC 6749 §3.1): a page.
    let r = b.get(&format!("{}&client_id=first", with_pkce(&[]))).await;
    assert_page(&r, 400, "more than once");
    // A loopback redirect URI may use another port (RFC 8252 §7.3): the login page.
    let other_port = format!("http://127.0.0.1:{}/cb", addr.port() + 1);
    let r = b
        .get(&url({
            let mut v = base_pairs(&pk);
            v.retain(|(k, _)| *k != "redirect_uri");
            v.push(("redirect_uri", other_port));
            v
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("form id=\"login\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_single_use_bound_and_short_lived() {
    let s = start("", "").await;
    let (base, addr) = (s.base.clone(), s.addr());
    let mut b = Browser::new(addr);

    // A wrong verifier: invalid_grant (and the code is gone).
    let (_, challenge) = pkce();
    let r = b.sign_in(&spa_request(&base, &challenge, "st")).await;
    let code = param(&location(&r), "code").expect("code");
    let (wrong, _) = pkce();
    assert_oauth_error(
        &redeem(addr, &base, &code, &wrong).await,
        400,
        "invalid_grant",
    );

    // No verifier at all.
    let (verifier, challenge) = pkce();
    let r = b.get(&spa_request(&base, &challenge, "st")).await;
    let code = param(&location(&r), "code").expect("code (signed in already)");
    let body = format!(
        "grant_type=authorization_code&client_id=spa&code={code}&redirect_uri={}",
        urlencode(&format!("{base}/cb"))
    );
    assert_oauth_error(
        &crate::token::post(addr, "/token", &body, &[]).await,
        400,
        "invalid_grant",
    );
    let _ = verifier;

    // A code redeemed with another redirect_uri, or by another client.
    let (verifier, challenge) = pkce();
    let r = b.get(&spa_request(&base, &challenge, "st")).await;
    let code = param(&location(&r), "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&client_id=spa&code={code}&redirect_uri={}&code_verifier={verifier}",
        urlencode(&format!("{base}/demo/"))
    );
    assert_oauth_error(
        &crate::token::post(addr, "/token", &body, &[]).await,
        400,
        "invalid_grant",
    );
    let (verifier, challenge) = pkce();
    let r = b.get(&spa_request(&base, &challenge, "st")).await;
    let code = param(&location(&r), "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
        urlencode(&format!("{base}/cb"))
    );
    let other = crate::token::post(
        addr,
        "/token",
        &body,
        &[&crate::token::basic("web", crate::token::WEB_SECRET)],
    )
    .await;
    assert_oauth_error(&other, 400, "invalid_grant");
    assert!(other.body.contains("another client"), "{}", other.body);

    // Reuse: the second redemption fails and what the first gave is revoked.
    let (verifier, challenge) = pkce();
    let r = b.get(&spa_request(&base, &challenge, "st")).await;
    let code = param(&location(&r), "code").expect("code");
    let first = redeem(addr, &base, &code, &verifier).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let tokens = first.json();
    let access = tokens["access_token"].as_str().expect("at");
    let refresh = tokens["refresh_token"].as_str().expect("rt");
    let r = get(addr, "/items/42", &[&bearer(access)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_oauth_error(
        &redeem(addr, &base, &code, &verifier).await,
        400,
        "invalid_grant",
    );
    let r = get(addr, "/items/42", &[&bearer(access)]).await;
    assert_eq!(
        r.status, 401,
        "the first access token is revoked: {}",
        r.body
    );
    let r = crate::token::post(
        addr,
        "/token",
        &format!("grant_type=refresh_token&client_id=spa&refresh_token={refresh}"),
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");

    // An expired code (written to the store as issued long ago) is refused.
    let store = Store::open(&s.store_url).await.expect("store");
    let (verifier, challenge) = pkce();
    let old = "expired-code-expired-code-expired-code-0001";
    store
        .insert_code(CodeRecord {
            code_hash: portcullis::auth::api_key::hash(old),
            client_id: "spa".into(),
            redirect_uri: format!("{base}/cb"),
            redirect_given: true,
            code_challenge: challenge,
            nonce: String::new(),
            scope: "items:read".into(),
            subject: "johndoe".into(),
            auth_time: now() - 100,
            family_id: "f-expired".into(),
            expires_at: now() - 1,
        })
        .await
        .expect("insert");
    assert_oauth_error(
        &redeem(addr, &base, old, &verifier).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_client_without_pkce_cannot_be_downgraded() {
    let s = start("", "").await;
    let (addr, base) = (s.addr(), s.base.clone());
    let mut b = Browser::new(addr);
    let target = authorize_url(&[
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", "https://web.example/cb"),
        ("scope", "items:read"),
        ("state", "st"),
    ]);
    let r = b.sign_in(&target).await;
    let loc = location(&r);
    assert!(loc.starts_with("https://web.example/cb?"), "{loc}");
    assert_eq!(param(&loc, "iss").as_deref(), Some(base.as_str()));
    let code = param(&loc, "code").expect("code");
    // A code_verifier for a code issued without a challenge: refused (RFC 9700 §2.1.1).
    let (verifier, _) = pkce();
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fweb.example%2Fcb&code_verifier={verifier}"
    );
    let auth = crate::token::basic("web", crate::token::WEB_SECRET);
    assert_oauth_error(
        &crate::token::post(addr, "/token", &body, &[&auth]).await,
        400,
        "invalid_grant",
    );
    // Without the secret the client is not authenticated.
    let r = b.get(&target).await;
    let code = param(&location(&r), "code").expect("code");
    let body = format!("grant_type=authorization_code&client_id=web&code={code}&redirect_uri=https%3A%2F%2Fweb.example%2Fcb");
    assert_oauth_error(
        &crate::token::post(addr, "/token", &body, &[]).await,
        401,
        "invalid_client",
    );
    // With it, tokens (no id_token: openid was not asked).
    let r = b.get(&target).await;
    let code = param(&location(&r), "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fweb.example%2Fcb"
    );
    let r = crate::token::post(addr, "/token", &body, &[&auth]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v.get("id_token").is_none());
    assert_eq!(v["scope"], "items:read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_configuration_and_the_forms_refuse() {
    // A client id equal to an API audience: an id_token would open the API.
    let text = super::config_text(1, "sqlite://x.db", "", "")
        .replace("client_id = \"first\"", "client_id = \"api\"");
    let e =
        portcullis::config::parse_str(&text, std::path::Path::new("t.toml")).expect_err("refused");
    assert!(
        e.to_string().contains("client_id") && e.to_string().contains("audiences"),
        "{e}"
    );

    let s = start("", "").await;
    let (base, addr) = (s.base.clone(), s.addr());
    // A login "form" sent as a GET (a password in a URL) signs nobody in.
    let (_, challenge) = pkce();
    let mut b = Browser::new(addr);
    let page = b.get(&spa_request(&base, &challenge, "st")).await;
    let mut f = hidden_fields(&page.body, "login");
    f.extend([
        ("username".to_string(), "johndoe".to_string()),
        ("password".into(), "secret".into()),
        ("action".into(), "login".into()),
    ]);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(f.iter())
        .finish();
    let r = b.get(&format!("/authorize?{q}")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("form id=\"login\""), "still the login page");
    // A public client on a loopback redirect URI is asked about at least once, even
    // as a first-party client (any local program could listen there).
    let r = b.login(&page, "johndoe", "secret").await;
    assert!(r.body.contains("form id=\"consent\""));
    let (_, ch) = pkce();
    let native = authorize_url(&[
        ("response_type", "code"),
        ("client_id", "native"),
        ("redirect_uri", "http://127.0.0.1:50123/native"),
        ("code_challenge", &ch),
        ("code_challenge_method", "S256"),
    ]);
    let r = b.get(&native).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("form id=\"consent\""), "{}", r.body);
    // An access token is no id_token_hint: the user is asked to confirm.
    let (verifier, challenge) = pkce();
    let r = b.get(&spa_request(&base, &challenge, "st")).await;
    let r = if r.status == 200 {
        b.consent(&r, "allow").await
    } else {
        r
    };
    let code = param(&location(&r), "code").expect("code");
    let t = redeem(addr, &base, &code, &verifier).await.json();
    let access = t["access_token"].as_str().expect("at");
    let r = b
        .get(&format!(
            "/logout?client_id=spa&post_logout_redirect_uri={}&id_token_hint={access}",
            urlencode(&format!("{base}/cb"))
        ))
        .await;
    assert_eq!(
        r.status, 200,
        "a confirmation page, not a sign-out: {}",
        r.body
    );
    assert!(r.body.contains("form id=\"logout\""));
    // The id_token is no access token: refused by the API and by /userinfo.
    let id = t["id_token"].as_str().expect("id");
    assert_eq!(get(addr, "/items/42", &[&bearer(id)]).await.status, 401);
    assert_eq!(get(addr, "/userinfo", &[&bearer(id)]).await.status, 401);
}
