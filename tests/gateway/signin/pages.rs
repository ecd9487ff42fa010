//! The pages a browser sees: CSRF tokens, the cookie rotated at login (session
//! fixation), clickjacking headers, consent (deny, remembered, first-party), logout
//! (open-redirect attempts refused), the login limiter and no user enumeration, and
//! `/userinfo`'s refusals.

use super::flow::*;
use super::start;
use crate::support::*;

fn assert_page_headers(r: &Raw) {
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let csp = r.header("content-security-policy").expect("CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script may run: {csp}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_fixation_and_clickjacking() {
    let s = start("", "").await;
    let (base, addr) = (s.base.clone(), s.addr());
    let (_, challenge) = pkce();
    let target = spa_request(&base, &challenge, "st");

    let mut b = Browser::new(addr);
    let page = b.get(&target).await;
    assert_eq!(page.status, 200);
    assert_page_headers(&page);
    let set = page
        .header("set-cookie")
        .expect("a cookie for the login form");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Domain="), "{set}");
    let before = b.cookie.clone().expect("cookie");

    // The login form without its CSRF token, or with another browser's: refused, no
    // session, no redirect.
    let mut f = hidden_fields(&page.body, "login");
    f.retain(|(k, _)| k != "csrf");
    f.extend([
        ("username".to_string(), "johndoe".to_string()),
        ("password".into(), "secret".into()),
        ("action".into(), "login".into()),
    ]);
    let r = b.post("/authorize", &f).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.header("location").is_none());
    assert!(r.body.contains("This form has expired"));
    assert_eq!(
        b.cookie.as_deref(),
        Some(before.as_str()),
        "no session was made"
    );
    let mut other = Browser::new(addr);
    let other_page = other.get(&target).await;
    let mut stolen = hidden_fields(&other_page.body, "login");
    stolen.extend([
        ("username".to_string(), "johndoe".to_string()),
        ("password".into(), "secret".into()),
        ("action".into(), "login".into()),
    ]);
    let r = b.post("/authorize", &stolen).await;
    assert_eq!(r.status, 400, "another browser's token: {}", r.body);
    // A forged form posted with no cookie at all.
    let mut nobody = Browser::new(addr);
    let r = nobody.post("/authorize", &stolen).await;
    assert_eq!(r.status, 400);

    // Login rotates the cookie; the value planted before login names no session.
    let r = b.login(&page, "johndoe", "secret").await;
    assert_eq!(r.status, 200, "consent page: {}", r.body);
    assert_page_headers(&r);
    let after = b.cookie.clone().expect("cookie");
    assert_ne!(before, after, "the cookie is rotated at login");
    let mut attacker = Browser::new(addr);
    attacker.cookie = Some(before);
    let r = attacker.get(&target).await;
    assert!(
        r.body.contains("form id=\"login\""),
        "the old cookie is worthless"
    );

    // The consent form needs its CSRF token too.
    let consent = b.get(&target).await;
    let mut f = hidden_fields(&consent.body, "consent");
    f.retain(|(k, _)| k != "csrf");
    f.push(("decision".into(), "allow".into()));
    let r = b.post("/authorize", &f).await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    // Deny: access_denied to the client.
    let r = b.consent(&consent, "deny").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );
    // Allow: remembered, so the next request goes straight back with a code.
    let consent = b.get(&target).await;
    let r = b.consent(&consent, "allow").await;
    assert!(param(&location(&r), "code").is_some());
    let r = b.get(&target).await;
    assert_eq!(r.status, 303, "consent remembered");
    // prompt=consent asks again; prompt=login asks for the password again.
    let r = b.get(&format!("{target}&prompt=consent")).await;
    assert!(r.body.contains("form id=\"consent\""));
    let r = b.get(&format!("{target}&prompt=login")).await;
    assert!(r.body.contains("form id=\"login\""));
    // A first-party client (require_consent = false) never shows the consent page.
    let (_, ch) = pkce();
    let first = authorize_url(&[
        ("response_type", "code"),
        ("client_id", "first"),
        ("redirect_uri", "https://first.example/cb"),
        ("code_challenge", &ch),
        ("code_challenge_method", "S256"),
    ]);
    let r = b.get(&first).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(location(&r).starts_with("https://first.example/cb?code="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_counts_failures_and_tells_nothing() {
    let s = start(
        "",
        "[rate_limits.login]\nkey = \"ip+username\"\nrate = \"3/1h\"\n[rate_limits.login_ip]\nkey = \"ip\"\nrate = \"1000/1s\"\n",
    )
    .await;
    let (base, addr) = (s.base.clone(), s.addr());
    let (_, challenge) = pkce();
    let mut b = Browser::new(addr);
    let page = b.get(&spa_request(&base, &challenge, "st")).await;
    // Unknown user and wrong password: the same status and text.
    let unknown = b.login(&page, "nobody", "whatever").await;
    let wrong = b.login(&page, "alice", "not-her-password").await;
    for r in [&unknown, &wrong] {
        assert_eq!(r.status, 400);
        assert!(r.body.contains("The username or password is incorrect."));
        assert!(r.header("location").is_none());
    }
    let strip = |r: &Raw| {
        r.body
            .replace("value=\"nobody\"", "")
            .replace("value=\"alice\"", "")
    };
    assert_eq!(strip(&unknown).len(), strip(&wrong).len(), "same page");
    // The login policy (ip+username, 3 per hour) counts page logins like /token's:
    // a third failure is still answered, then even the right password waits.
    for pw in ["nope-2", "nope-3"] {
        let r = b.login(&page, "alice", pw).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let r = b.login(&page, "alice", "wonderland").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many attempts"));
    // /token shares the budget.
    let r = crate::token::post(
        addr,
        "/token",
        "grant_type=password&client_id=spa&username=alice&password=wonderland",
        &[],
    )
    .await;
    assert!(r.status == 429 || r.status == 400, "{}", r.body);
    // Another user is not affected.
    let r = b.login(&page, "johndoe", "secret").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_follows_only_registered_uris_and_userinfo_refuses() {
    let s = start("", "").await;
    let (base, addr) = (s.base.clone(), s.addr());
    let mut b = Browser::new(addr);
    let (verifier, challenge) = pkce();
    let r = b.sign_in(&spa_request(&base, &challenge, "st")).await;
    let code = param(&location(&r), "code").expect("code");
    let t = redeem(addr, &base, &code, &verifier).await.json();
    let (access, id_token) = (
        t["access_token"].as_str().expect("at").to_string(),
        t["id_token"].as_str().expect("id").to_string(),
    );

    // /userinfo: a token, with openid.
    let r = get(addr, "/userinfo", &[&bearer(&access)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sub"], "johndoe");
    assert_eq!(r.json()["preferred_username"], "johndoe");
    let r = get(addr, "/userinfo", &[]).await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Bearer")));
    let r = get(addr, "/userinfo", &[&bearer("not.a.token")]).await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.contains("invalid_token")));
    let no_openid = {
        let (v, c) = pkce();
        let target = authorize_url(&[
            ("response_type", "code"),
            ("client_id", "spa"),
            ("redirect_uri", &format!("{base}/cb")),
            ("scope", "items:read"),
            ("code_challenge", &c),
            ("code_challenge_method", "S256"),
        ]);
        let r = b.get(&target).await;
        let r = if r.status == 200 {
            b.consent(&r, "allow").await
        } else {
            r
        };
        let code = param(&location(&r), "code").expect("code");
        redeem(addr, &base, &code, &v).await.json()["access_token"]
            .as_str()
            .expect("at")
            .to_string()
    };
    let r = get(addr, "/userinfo", &[&bearer(&no_openid)]).await;
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.contains("insufficient_scope")));

    // Logout to an unregistered URI: a page, no redirect; the session stays.
    for bad in [
        "https://evil.example/",
        "//evil.example/",
        &format!("{base}/cb/../../evil"),
    ] {
        let r = b
            .get(&format!(
                "/logout?client_id=spa&post_logout_redirect_uri={}&id_token_hint={id_token}",
                urlencode(bad)
            ))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.header("location").is_none());
    }
    // Without an id_token_hint: a confirmation page, whose form needs its CSRF token.
    let r = b
        .get(&format!(
            "/logout?client_id=spa&post_logout_redirect_uri={}&state=s1",
            urlencode(&format!("{base}/cb"))
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_page_headers(&r);
    let mut f = hidden_fields(&r.body, "logout");
    f.retain(|(k, _)| k != "csrf");
    f.push(("confirm".into(), "yes".into()));
    let refused = b.post("/logout", &f).await;
    assert_eq!(refused.status, 400);
    assert!(b.cookie.is_some(), "still signed in");
    // With the hint: signed out at once, back to the registered URI with state.
    let r = b
        .get(&format!(
            "/logout?post_logout_redirect_uri={}&state=s2&id_token_hint={id_token}",
            urlencode(&format!("{base}/cb"))
        ))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(location(&r), format!("{base}/cb?state=s2"));
    assert!(b.cookie.is_none(), "cookie deleted");
    let (_, c) = pkce();
    let r = b.get(&spa_request(&base, &c, "st")).await;
    assert!(r.body.contains("form id=\"login\""), "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_cookie_is_host_prefixed_and_secure() {
    use crate::tls::pki::{KeyKind, Pki};
    let pki = Pki::new();
    pki.ca("ca");
    pki.leaf("server", "ca", KeyKind::RsaPkcs8, true);
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.p("server.pem"),
        pki.p("server.key")
    );
    let s = super::start("", &tls).await;
    let port = s.addr().port();
    let (_, challenge) = pkce();
    let target = spa_request(&s.base, &challenge, "st");
    let jar = pki.p("jar.txt");
    let ca = pki.p("ca.pem");
    let url = format!("https://localhost:{port}{target}");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-i", "--cacert", &ca, "-c", &jar, &url]);
    let (ok, page, err) = super::run(cmd).await;
    assert!(ok, "{err}");
    let set = page
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("Set-Cookie");
    assert!(set.contains("__Host-portcullis-session="), "{set}");
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Domain"), "{set}");
    // The whole login over TLS, curl keeping the cookie: the rotated cookie is
    // __Host- and Secure too, and the consent page follows.
    let mut form = hidden_fields(&page, "login");
    form.extend([
        ("username".to_string(), "johndoe".to_string()),
        ("password".into(), "secret".into()),
        ("action".into(), "login".into()),
    ]);
    let body: String = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &form {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sS",
        "-i",
        "--cacert",
        &ca,
        "-b",
        &jar,
        "-c",
        &jar,
        "--data",
        &body,
        &format!("https://localhost:{port}/authorize"),
    ]);
    let (ok, consent, err) = super::run(cmd).await;
    assert!(ok, "{err}");
    assert!(consent.contains("form id=\"consent\""), "{consent}");
    let set = consent
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("the cookie is rotated");
    assert!(
        set.contains("__Host-portcullis-session=") && set.contains("; Secure"),
        "{set}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_cookie_never_reaches_an_upstream_nor_comes_from_one() {
    use crate::raw_upstream::{Answer, RawUpstream};
    let up = RawUpstream::start(Answer::SetsCookies).await;
    let extra = format!(
        "[[upstreams]]\nname = \"raw\"\nurl = \"http://{}\"\n\n[[routes]]\npath = \"/app/**\"\nupstream = \"raw\"\nauth = \"none\"\n",
        up.addr
    );
    let s = start("", &extra).await;
    let (base, addr) = (s.base.clone(), s.addr());
    let mut b = Browser::new(addr);
    let (_, challenge) = pkce();
    b.sign_in(&spa_request(&base, &challenge, "st")).await;
    let session = b.cookie.clone().expect("signed in");
    let r = get(
        addr,
        "/app/x",
        &[
            &format!("Cookie: theme=dark; portcullis-session={session}; lang=en"),
            &format!("Cookie: __Host-portcullis-session={session}"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // What the upstream received, byte for byte: the app's cookies, not the session.
    let seen = up.text();
    assert!(
        !seen.contains(&session),
        "the session cookie reached the upstream:\n{seen}"
    );
    let req = up.requests().pop().expect("request");
    assert_eq!(
        req.header_values("cookie"),
        vec!["theme=dark; lang=en"],
        "{seen}"
    );
    // And the upstream cannot plant a session.
    let set = r.headers.get("set-cookie").cloned().unwrap_or_default();
    assert_eq!(set, vec!["app=1; Path=/".to_string()], "{set:?}");
}
