//! A tiny browser over raw HTTP/1.1: one cookie (the sign-in cookie), the hidden
//! fields of the pages' forms, redirects read from `Location`. Enough to drive the
//! authorization code flow from Rust and to replay what an attacker would send.

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::support::*;

/// The browser.
pub struct Browser {
    pub addr: SocketAddr,
    /// The sign-in cookie's value.
    pub cookie: Option<String>,
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden inputs of the form with this id (the pages' own markup).
pub fn hidden_fields(html: &str, form_id: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!("<form id=\"{form_id}\""))
        .unwrap_or_else(|| panic!("no form#{form_id} in {html}"));
    let form = &html[start..];
    let form = &form[..form.find("</form>").expect("form end")];
    let mut out = Vec::new();
    for part in form.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = part.split_once('"').expect("name");
        let value = rest
            .split_once("value=\"")
            .and_then(|(_, v)| v.split_once('"'))
            .map(|(v, _)| v)
            .unwrap_or("");
        out.push((unescape(name), unescape(value)));
    }
    out
}

pub fn location(r: &Raw) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no Location ({}): {}", r.status, r.body))
        .to_string()
}

/// A query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

fn rand_bytes() -> [u8; 32] {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).expect("rand");
    b
}

/// `/authorize?…` from pairs.
pub fn authorize_url(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("/authorize?{}", q.finish())
}

/// The usual request of the `spa` client with a challenge.
pub fn spa_request(base: &str, challenge: &str, state: &str) -> String {
    authorize_url(&[
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", &format!("{base}/cb")),
        ("scope", "openid profile items:read"),
        ("state", state),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ])
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser { addr, cookie: None }
    }

    fn keep_cookie(&mut self, r: &Raw) {
        for c in r.headers.get("set-cookie").into_iter().flatten() {
            let first = c.split(';').next().unwrap_or("");
            if let Some((_, v)) = first.split_once('=') {
                self.cookie = if v.is_empty() || c.contains("Max-Age=0") {
                    None
                } else {
                    Some(v.to_string())
                };
            }
        }
    }

    fn cookie_header(&self) -> Option<String> {
        self.cookie
            .as_ref()
            .map(|c| format!("Cookie: portcullis-session={c}"))
    }

    pub async fn get(&mut self, target: &str) -> Raw {
        let h = self.cookie_header();
        let headers: Vec<&str> = h.iter().map(String::as_str).collect();
        let r = get(self.addr, target, &headers).await;
        self.keep_cookie(&r);
        r
    }

    pub async fn post(&mut self, path: &str, fields: &[(String, String)]) -> Raw {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            q.append_pair(k, v);
        }
        let h = self.cookie_header();
        let headers: Vec<&str> = h.iter().map(String::as_str).collect();
        let r = crate::token::post(self.addr, path, &q.finish(), &headers).await;
        self.keep_cookie(&r);
        r
    }

    /// Posts the login form of `page` with these credentials.
    pub async fn login(&mut self, page: &Raw, user: &str, password: &str) -> Raw {
        let mut f = hidden_fields(&page.body, "login");
        f.push(("username".into(), user.into()));
        f.push(("password".into(), password.into()));
        f.push(("action".into(), "login".into()));
        self.post("/authorize", &f).await
    }

    /// Posts the consent form of `page`.
    pub async fn consent(&mut self, page: &Raw, decision: &str) -> Raw {
        let mut f = hidden_fields(&page.body, "consent");
        f.push(("decision".into(), decision.into()));
        self.post("/authorize", &f).await
    }

    /// The whole sign-in of johndoe at `target`: login, consent when asked; the
    /// final redirect.
    pub async fn sign_in(&mut self, target: &str) -> Raw {
        let page = self.get(target).await;
        assert_eq!(page.status, 200, "login page: {}", page.body);
        let mut r = self.login(&page, "johndoe", "secret").await;
        if r.status == 200 && r.body.contains("form id=\"consent\"") {
            r = self.consent(&r, "allow").await;
        }
        assert_eq!(r.status, 303, "{}", r.body);
        r
    }
}

/// Redeems a code at `/token` as the public client `spa`.
pub async fn redeem(addr: SocketAddr, base: &str, code: &str, verifier: &str) -> Raw {
    let body = format!(
        "grant_type=authorization_code&client_id=spa&code={code}&redirect_uri={}&code_verifier={verifier}",
        urlencode(&format!("{base}/cb"))
    );
    crate::token::post(addr, "/token", &body, &[]).await
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
