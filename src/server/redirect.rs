//! `server.tls.redirect_listen`: a plain-HTTP listener whose every answer is a `308
//! Permanent Redirect` to the same host, path and query over HTTPS (the method and
//! body are kept by the client, unlike with `301`). Nothing is proxied from it and no
//! credential is read. The HTTPS port is the public listener's (left out when 443).
//! A request without a usable `Host` gets `400`.

use std::sync::Arc;

use http::uri::Authority;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::Body;
use crate::error::json_response;
use crate::runtime::Shared;

/// The `Location` of the HTTPS twin of `req`, or `None` without a usable host.
pub(super) fn location<B>(req: &Request<B>, https_port: u16) -> Option<HeaderValue> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(Authority::as_str))?;
    let authority: Authority = host.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let pq = if pq.starts_with('/') { pq } else { "/" };
    HeaderValue::from_str(&format!("https://{}{port}{pq}", authority.host())).ok()
}

fn answer<B>(req: &Request<B>, https_port: u16) -> Response<Body> {
    match location(req, https_port) {
        Some(to) => {
            let mut resp = json_response(
                StatusCode::PERMANENT_REDIRECT,
                &serde_json::json!({"error": "https_required", "error_description": "this service is served over HTTPS"}),
            );
            resp.headers_mut().insert(header::LOCATION, to);
            resp
        }
        None => json_response(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request", "error_description": "a Host header is required"}),
        ),
    }
}

pub(super) async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let answer = move |req: &Request<Incoming>| answer(req, https_port);
    super::plain::serve_plain("redirect", listener, shared, stop, answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, target: &str) -> Request<()> {
        let mut b = Request::builder().uri(target);
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn the_location_keeps_host_path_and_query_and_takes_the_https_port() {
        let to = |host, target, port| {
            location(&req(host, target), port).map(|v| v.to_str().expect("ascii").to_string())
        };
        assert_eq!(
            to(Some("example.com:8080"), "/a/b?c=d", 8443).as_deref(),
            Some("https://example.com:8443/a/b?c=d")
        );
        assert_eq!(
            to(Some("example.com"), "/", 443).as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            to(Some("[::1]:80"), "/x", 8443).as_deref(),
            Some("https://[::1]:8443/x")
        );
        assert_eq!(to(None, "/x", 443), None);
        assert_eq!(to(Some("evil.com/x"), "/", 443), None);
        assert_eq!(to(Some("user@evil.com"), "/", 443), None);
    }
}
