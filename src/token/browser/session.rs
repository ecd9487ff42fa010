//! The sign-in cookie and the CSRF tokens bound to it.
//!
//! One cookie identifies the browser: `__Host-portcullis-session` over TLS (`Secure`,
//! `Path=/`, no `Domain`, as the prefix requires), `portcullis-session` on plain HTTP
//! (where a browser would refuse a `__Host-` cookie without `Secure`); `HttpOnly` and
//! `SameSite=Lax` always. Before sign-in its value is a random id that names no
//! session; at sign-in a *new* value is issued and stored as a session (by digest),
//! and the old one is deleted — a value planted before login is worthless after it
//! (session fixation).
//!
//! Every form carries `csrf` = HMAC-SHA256(key, cookie value), the key being a random
//! secret kept in the store and shared by replicas (`store.secret("csrf")`). A form
//! posted without this browser's cookie, or with another browser's token, is refused.

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::auth::api_key;
use crate::token::endpoint::OAuthError;
use crate::token::grants::issue::random_b64;
use crate::token::grants::server_error;
use crate::token::store::SessionRecord;
use crate::token::TokenRuntime;

/// The cookie's name over TLS.
pub const COOKIE_TLS: &str = "__Host-portcullis-session";
/// The cookie's name on plain HTTP.
pub const COOKIE_PLAIN: &str = "portcullis-session";

/// The browser a request comes from.
#[derive(Debug, Clone)]
pub struct Browser {
    /// The cookie's value, if it sent one.
    pub cookie: Option<String>,
    /// Whether the request came over TLS (the cookie's name and `Secure`).
    pub secure: bool,
}

impl Browser {
    pub fn from_headers(headers: &HeaderMap, secure: bool) -> Browser {
        let name = if secure { COOKIE_TLS } else { COOKIE_PLAIN };
        let cookie = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| (20..=100).contains(&v.len()) && v.bytes().all(is_b64url));
        Browser { cookie, secure }
    }

    /// The browser's id, making one (and the `Set-Cookie` for it) when it has none.
    pub fn ensure_id(&mut self) -> Result<Option<HeaderValue>, OAuthError> {
        if self.cookie.is_some() {
            return Ok(None);
        }
        let id = random_b64(32)?;
        let set = self.set_cookie(&id, None);
        self.cookie = Some(id);
        Ok(Some(set))
    }

    /// The `Set-Cookie` for `value`; `max_age` in seconds (`None`: until the browser
    /// closes; `Some(0)`: delete).
    pub fn set_cookie(&self, value: &str, max_age: Option<u64>) -> HeaderValue {
        let name = if self.secure {
            COOKIE_TLS
        } else {
            COOKIE_PLAIN
        };
        let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            s.push_str("; Secure");
        }
        if let Some(a) = max_age {
            s.push_str(&format!("; Max-Age={a}"));
        }
        HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("x=; Path=/"))
    }

    /// The live session this browser's cookie names, if any.
    pub async fn session(&self, rt: &TokenRuntime) -> Result<Option<SessionRecord>, OAuthError> {
        let Some(c) = &self.cookie else {
            return Ok(None);
        };
        rt.store
            .find_session(&api_key::hash(c))
            .await
            .map_err(server_error)
    }

    /// Signs `subject` in: a new cookie value (returned as `Set-Cookie`), stored as a
    /// session, replacing whatever session the old value named.
    pub async fn sign_in(
        &mut self,
        rt: &TokenRuntime,
        session: &SessionRecord,
        ttl_secs: u64,
    ) -> Result<HeaderValue, OAuthError> {
        let id = random_b64(32)?;
        let old = self.cookie.as_deref().map(api_key::hash);
        rt.store
            .insert_session(
                &api_key::hash(&id),
                session,
                i64::try_from(ttl_secs).unwrap_or(i64::MAX),
                old,
            )
            .await
            .map_err(server_error)?;
        let set = self.set_cookie(&id, Some(ttl_secs));
        self.cookie = Some(id);
        Ok(set)
    }

    /// Ends the session (if any) and returns the `Set-Cookie` that deletes the cookie.
    pub async fn sign_out(&mut self, rt: &TokenRuntime) -> Result<HeaderValue, OAuthError> {
        if let Some(c) = self.cookie.take() {
            rt.store
                .delete_session(&api_key::hash(&c))
                .await
                .map_err(server_error)?;
        }
        Ok(self.set_cookie("", Some(0)))
    }

    /// The CSRF token for this browser's forms ("" without a cookie).
    pub fn csrf(&self, key: &ring::hmac::Key) -> String {
        match &self.cookie {
            Some(c) => {
                use base64::Engine as _;
                let tag = ring::hmac::sign(key, format!("csrf\0{c}").as_bytes());
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
            }
            None => String::new(),
        }
    }

    /// Whether `given` is this browser's CSRF token (compared in constant time).
    pub fn csrf_ok(&self, key: &ring::hmac::Key, given: Option<&str>) -> bool {
        use base64::Engine as _;
        let (Some(c), Some(given)) = (&self.cookie, given) else {
            return false;
        };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        ring::hmac::verify(key, format!("csrf\0{c}").as_bytes(), &tag).is_ok()
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_read_by_its_name_and_csrf_is_bound_to_it() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k");
        let mut h = HeaderMap::new();
        let v = "a".repeat(43);
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE_PLAIN}={v}")).expect("v"),
        );
        let b = Browser::from_headers(&h, false);
        assert_eq!(b.cookie.as_deref(), Some(v.as_str()));
        // Over TLS only the __Host- cookie counts.
        assert!(Browser::from_headers(&h, true).cookie.is_none());
        let t = b.csrf(&key);
        assert!(b.csrf_ok(&key, Some(&t)));
        assert!(!b.csrf_ok(&key, None));
        let other = Browser {
            cookie: Some("b".repeat(43)),
            secure: false,
        };
        assert!(!other.csrf_ok(&key, Some(&t)));
        let set = b.set_cookie("x", Some(0));
        assert_eq!(
            set.to_str().ok(),
            Some("portcullis-session=x; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
        );
        let tls = Browser {
            cookie: None,
            secure: true,
        };
        assert!(tls
            .set_cookie("x", None)
            .to_str()
            .is_ok_and(|s| s.starts_with("__Host-portcullis-session=x; Path=/;")
                && s.ends_with("; Secure")));
    }
}
