//! The demo single-page app (`[login] demo_client`): `GET /demo/` (index.html with
//! the client id filled in), `/demo/app.js` and `/demo/style.css`, from
//! `assets/demo/`, compiled in. It signs in with the authorization code flow and PKCE
//! as a public client and calls `/items/42` with the token.
//!
//! Its CSP allows its own script and style and fetches to its own origin only.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_FRAME_OPTIONS};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};

use super::pages::esc;
use crate::body::Body;
use crate::error::GatewayError;

const INDEX: &str = include_str!("../../../assets/demo/index.html");
const APP: &str = include_str!("../../../assets/demo/app.js");
const STYLE: &str = include_str!("../../../assets/demo/style.css");

/// Which file of the demo app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoFile {
    Index,
    App,
    Style,
}

impl DemoFile {
    /// The file at a path, if any (`/demo` redirects to `/demo/`).
    pub fn at(path: &str) -> Option<DemoFile> {
        match path {
            "/demo" | "/demo/" | "/demo/index.html" => Some(DemoFile::Index),
            "/demo/app.js" => Some(DemoFile::App),
            "/demo/style.css" => Some(DemoFile::Style),
            _ => None,
        }
    }
}

/// Serves a file of the demo app.
pub fn demo(
    file: DemoFile,
    method: &Method,
    path: &str,
    client_id: &str,
) -> Result<Response<Body>, GatewayError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(GatewayError::MethodNotAllowed(vec![
            Method::GET,
            Method::HEAD,
        ]));
    }
    if path == "/demo" {
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
        resp.headers_mut()
            .insert(http::header::LOCATION, HeaderValue::from_static("/demo/"));
        return Ok(resp);
    }
    let (body, ctype) = match file {
        DemoFile::Index => (
            INDEX.replace("{{CLIENT_ID}}", &esc(client_id)),
            "text/html; charset=utf-8",
        ),
        DemoFile::App => (APP.to_string(), "text/javascript; charset=utf-8"),
        DemoFile::Style => (STYLE.to_string(), "text/css; charset=utf-8"),
    };
    let mut resp = Response::new(Body::full(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    Ok(resp)
}
