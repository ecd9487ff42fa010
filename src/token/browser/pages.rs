//! The sign-in pages: server-rendered HTML without JavaScript, one small stylesheet
//! (`{prefix}/login.css`, the accent colour from `[login]`), readable on a phone.
//!
//! Every page is `no-store`, framed by nobody (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`) and may load nothing but its stylesheet and logo. Its
//! forms may post only here, and — since the answer to a form is a redirect to the
//! client — to the origin of the client's redirect URI (CSP `form-action` covers
//! redirects after a submission). Every value is HTML-escaped.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE, X_FRAME_OPTIONS};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use super::LoginSettings;
use crate::body::Body;

/// `&`, `<`, `>`, `"` and `'` escaped: safe in text and in quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page to send.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub heading: String,
    /// The HTML inside `<main>`, after the heading (already escaped).
    pub body: String,
    /// An origin the page's forms may end up at (the client's redirect URI).
    pub form_origin: Option<String>,
    pub set_cookie: Vec<HeaderValue>,
}

impl Page {
    pub fn new(status: StatusCode, heading: &str, body: String) -> Page {
        Page {
            status,
            heading: heading.to_string(),
            body,
            form_origin: None,
            set_cookie: Vec::new(),
        }
    }

    /// An error page: nothing is redirected anywhere.
    pub fn error(status: StatusCode, heading: &str, text: &str) -> Page {
        Page::new(
            status,
            heading,
            format!(r#"<p class="error" role="alert">{}</p>"#, esc(text)),
        )
    }

    pub fn render(self, l: &LoginSettings, prefix: &str) -> Response<Body> {
        let logo = l
            .logo_url
            .as_deref()
            .map(|u| format!(r#"<img class="logo" src="{}" alt="">"#, esc(u)))
            .unwrap_or_default();
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"referrer\" content=\"no-referrer\">\
             <title>{title} · {heading}</title>\
             <link rel=\"stylesheet\" href=\"{prefix}/login.css\"></head>\
             <body><main class=\"card\">{logo}<p class=\"brand\">{title}</p><h1>{heading}</h1>{body}</main></body></html>\n",
            title = esc(&l.title),
            heading = esc(&self.heading),
            prefix = esc(prefix),
            body = self.body,
        );
        let mut resp = Response::new(Body::full(html));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        let form_action = match &self.form_origin {
            Some(o) => format!("'self' {o}"),
            None => "'self'".into(),
        };
        let csp = format!(
            "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
             form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(HeaderName::from_static("content-security-policy"), v);
        }
        for c in self.set_cookie {
            h.append(SET_COOKIE, c);
        }
        resp
    }
}

/// Hidden inputs for each parameter.
pub fn hidden(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                esc(k),
                esc(v)
            )
        })
        .collect()
}

/// The login form (and the external providers' buttons).
pub fn login_form(
    prefix: &str,
    fields: &[(String, String)],
    csrf: &str,
    error: Option<&str>,
    username: &str,
    providers: &[(String, String)],
) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let providers: String = if providers.is_empty() {
        String::new()
    } else {
        let links: String = providers
            .iter()
            .map(|(label, href)| {
                format!(
                    r#"<a class="provider" href="{}">Sign in with {}</a>"#,
                    esc(href),
                    esc(label)
                )
            })
            .collect();
        format!(r#"<div class="providers"><p class="or">or</p>{links}</div>"#)
    };
    format!(
        r#"{error}<form id="login" method="post" action="{prefix}/authorize">{hidden}<input type="hidden" name="csrf" value="{csrf}"><label for="username">Username</label><input id="username" name="username" autocomplete="username" autocapitalize="none" required value="{username}"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required><button type="submit" name="action" value="login">Sign in</button></form>{providers}"#,
        prefix = esc(prefix),
        hidden = hidden(fields),
        csrf = esc(csrf),
        username = esc(username),
    )
}

/// The consent form: who asks for what.
pub fn consent_form(
    prefix: &str,
    fields: &[(String, String)],
    csrf: &str,
    user: &str,
    client_id: &str,
    scopes: &[String],
) -> String {
    let items: String = scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", esc(s)))
        .collect();
    format!(
        r#"<p>Signed in as <strong>{user}</strong>.</p><p><strong>{client}</strong> asks for:</p><ul class="scopes">{items}</ul><form id="consent" method="post" action="{prefix}/authorize">{hidden}<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="consent"><div class="buttons"><button type="submit" name="decision" value="allow">Allow</button><button type="submit" class="secondary" name="decision" value="deny">Deny</button></div></form>"#,
        user = esc(user),
        client = esc(client_id),
        prefix = esc(prefix),
        hidden = hidden(fields),
        csrf = esc(csrf),
    )
}

/// The logout confirmation.
pub fn logout_form(prefix: &str, fields: &[(String, String)], csrf: &str) -> String {
    format!(
        r#"<p>Sign out of this browser?</p><form id="logout" method="post" action="{prefix}/logout">{hidden}<input type="hidden" name="csrf" value="{csrf}"><button type="submit" name="confirm" value="yes">Sign out</button></form>"#,
        prefix = esc(prefix),
        hidden = hidden(fields),
        csrf = esc(csrf),
    )
}

/// `GET {prefix}/login.css`.
pub fn stylesheet(l: &LoginSettings) -> Response<Body> {
    let css = STYLE.replace("ACCENT", &l.accent_color);
    let mut resp = Response::new(Body::full(css));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

const STYLE: &str = "\
:root{--accent:ACCENT;color-scheme:light dark}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f3f4f6;color:#111}\
.card{width:100%;max-width:24rem;margin:1rem;padding:2rem 1.5rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.12),0 8px 24px rgba(0,0,0,.06)}\
.logo{display:block;max-height:48px;margin:0 auto 1rem}\
.brand{margin:0;color:#666;font-size:.875rem;text-transform:uppercase;letter-spacing:.05em}\
h1{margin:.25rem 0 1.25rem;font-size:1.5rem}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600;font-size:.9rem}\
input{width:100%;padding:.6rem .7rem;font:inherit;border:1px solid #bbb;border-radius:8px}\
input:focus{outline:2px solid var(--accent);border-color:transparent}\
button,.provider{display:block;width:100%;margin-top:1.25rem;padding:.65rem;font:inherit;font-weight:600;\
text-align:center;text-decoration:none;color:#fff;background:var(--accent);border:0;border-radius:8px;cursor:pointer}\
button.secondary,.provider{color:var(--accent);background:transparent;border:1px solid var(--accent)}\
.buttons{display:flex;gap:.75rem}.buttons button{flex:1}\
.error{padding:.6rem .8rem;border-radius:8px;background:#fde8e8;color:#8a1c1c}\
.or{text-align:center;color:#777;margin:1.25rem 0 0}\
.scopes code{font-size:.95em}\
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}.card{background:#1d1d1f}\
input{background:#111;color:#eee;border-color:#555}.brand{color:#aaa}}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_everywhere() {
        let f = vec![("state".to_string(), "\"><script>x</script>".to_string())];
        let html = login_form("", &f, "t", Some("<b>"), "a'b", &[]);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("a&#39;b"));
    }
}
