//! Browser sign-in: the authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636,
//! RFC 9700), its login and consent pages, OpenID Connect (id_token, `/userinfo`,
//! RP-initiated logout) and sign-in through external OpenID Connect providers.
//!
//! | path | what |
//! |---|---|
//! | `GET/POST {prefix}/authorize` | the authorization endpoint; its login and consent forms post back here |
//! | `GET/POST {prefix}/userinfo` | OIDC UserInfo for an access token with `openid` |
//! | `GET/POST {prefix}/logout` | OIDC RP-initiated logout (confirmation page without an `id_token_hint`) |
//! | `GET {prefix}/login/{provider}` | starts a sign-in at an external provider |
//! | `GET {prefix}/login/{provider}/callback` | where that provider sends the browser back |
//! | `GET {prefix}/login.css` | the pages' stylesheet |
//! | `GET /demo/`, `/demo/app.js`, `/demo/style.css` | the demo single-page app (`[login] demo_client`) |
//!
//! Everything a replica must share lives in the store: codes (`store/codes.rs`),
//! sessions, consents, pending external sign-ins and the CSRF key
//! (`store/sessions.rs`), stored clients and linked identities (`store/clients.rs`).
//! The authorization request itself travels in the forms' hidden fields and is
//! checked again at every step, so nothing about a half-finished sign-in is kept.
//!
//! Files: `request` (the authorization request and where its errors may go),
//! `session` (the cookie and CSRF tokens), `pages` (the HTML), `authorize` (the
//! endpoint's steps), `logout`, `userinfo`, `external` (providers), `demo`.

mod authorize;
mod demo;
pub(crate) mod external;
mod logout;
mod pages;
pub(crate) mod request;
pub(crate) mod session;
mod userinfo;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use authorize::authorize;
pub use demo::{demo, DemoFile};
pub(crate) use logout::logout;
pub use pages::stylesheet;
pub(crate) use userinfo::userinfo;

/// `[login]`, typed.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// The pages' title.
    pub title: String,
    /// A CSS colour (`#rgb` / `#rrggbb`, checked).
    pub accent_color: String,
    pub logo_url: Option<String>,
    pub session_ttl: Duration,
    pub code_ttl: Duration,
    /// The public client the demo app at `/demo/` signs in as.
    pub demo_client: Option<String>,
    pub providers: Vec<Arc<Provider>>,
    /// Whether the file has a `[login]` section (browser sign-in is meant to be used,
    /// with store-backed clients too: the metadata then advertises the code flow).
    pub configured: bool,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            configured: false,
            title: "Sign in".into(),
            accent_color: "#2f5bd3".into(),
            logo_url: None,
            session_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(60),
            demo_client: None,
            providers: Vec::new(),
        }
    }
}

/// One `[[login.providers]]` entry, typed. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Provider {
    pub name: String,
    pub display_name: String,
    /// Without a trailing `/`.
    pub issuer: String,
    pub client_id: String,
    /// Read from the environment or a file at load; never logged.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub roles_claim: Option<String>,
    pub role_map: BTreeMap<String, String>,
    pub default_roles: Vec<String>,
    pub link_by_email: bool,
    pub create_users: bool,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a redirect URI cannot be registered, if it cannot: it must be absolute, have
/// no fragment, and be `https`, `http` on a loopback host, or a private-use scheme
/// with a dot (`com.example.app:/cb`, RFC 8252 §7.1).
pub fn check_redirect_uri(u: &str) -> Result<(), &'static str> {
    if u.contains('#') {
        return Err("has a fragment");
    }
    if let Some((scheme, rest)) = private_use(u) {
        // `http::Uri` wants `scheme://`; RFC 8252 §7.1 shows `com.example.app:/cb`.
        let _ = scheme;
        return if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(())
        } else {
            Err("is not a URI")
        };
    }
    let uri: http::Uri = u.parse().map_err(|_| "is not a URI")?;
    match uri.scheme_str() {
        Some("https") if uri.host().is_some() => Ok(()),
        Some("http") if uri.host().is_some_and(is_loopback) => Ok(()),
        Some("http") => Err("is plain http on a host that is not loopback"),
        Some(s) if s.contains('.') => Ok(()),
        Some(_) => Err("has a scheme that is neither https nor private-use (with a dot)"),
        None => Err("is not absolute"),
    }
}

/// `(scheme, rest)` of a URI with a private-use scheme (one with a dot, RFC 8252
/// §7.1), compared as written.
fn private_use(u: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = u.split_once(':')?;
    let ok = scheme.contains('.')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then_some((scheme, rest))
}

/// A loopback host name or literal.
pub(crate) fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// Whether a redirect URI reaches an app on the user's own device (loopback `http`
/// or a private-use scheme): any local program can claim it, so the user is always
/// asked before a code goes there (RFC 8252 §8.6).
pub(crate) fn is_native_redirect(u: &str) -> bool {
    private_use(u).is_some()
        || u.parse::<http::Uri>()
            .is_ok_and(|x| x.scheme_str() == Some("http") && x.host().is_some_and(is_loopback))
}

/// Whether `given` is one of `registered`: exact, except that for an `http` loopback
/// URI the port may differ (RFC 8252 §7.3: native apps listen on an ephemeral port).
pub fn redirect_matches(registered: &[String], given: &str) -> bool {
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        let (Ok(a), Ok(b)) = (r.parse::<http::Uri>(), given.parse::<http::Uri>()) else {
            return false;
        };
        a.scheme_str() == Some("http")
            && b.scheme_str() == Some("http")
            && a.host().is_some_and(is_loopback)
            && a.host() == b.host()
            && a.path_and_query() == b.path_and_query()
            && !given.contains('#')
            && b.authority().is_some_and(|x| !x.as_str().contains('@'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_registered_and_matched() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        let reg = vec![
            "http://127.0.0.1:8080/cb".to_string(),
            "https://a.example/cb".into(),
        ];
        assert!(redirect_matches(&reg, "http://127.0.0.1:8080/cb"));
        assert!(redirect_matches(&reg, "http://127.0.0.1:53211/cb"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:53211/cb2"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:53211/cb?x=1"));
        assert!(!redirect_matches(&reg, "http://localhost:8080/cb"));
        assert!(!redirect_matches(&reg, "https://a.example:444/cb"));
        assert!(!redirect_matches(&reg, "https://a.example/cb/"));
        assert!(!redirect_matches(
            &reg,
            "https://a.example/cb?next=https://evil"
        ));
        assert!(!redirect_matches(&reg, "http://evil@127.0.0.1:1/cb"));
    }
}
