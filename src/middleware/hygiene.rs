//! Request-head hygiene, applied to every request before anything else reads it
//! (DESIGN.md principles 2 and 3).
//!
//! - methods refused server-wide (`server.refuse_methods`, `TRACE` and `CONNECT` by
//!   default) are answered `501`, so that a route without `methods` cannot forward
//!   them;
//! - the request target is capped (`414`), and so are the number of header fields and
//!   their total size (`431`);
//! - `Transfer-Encoding`, when present, must be exactly `chunked` (RFC 9112 §6.1, §7):
//!   hyper's parser already refuses a list that does not end in `chunked`, TE in an
//!   HTTP/1.0 request and unequal `Content-Length`s, and frames a request carrying
//!   both `Content-Length` and `Transfer-Encoding` by the latter alone (dropping the
//!   former) and closes its connection after the answer; what it lets through but the
//!   gateway cannot honour (`gzip, chunked`: the upstream would get coded bytes with
//!   nothing saying so; `chunked` twice; the list split over several lines) is
//!   refused here, `400` with `Connection: close`;
//! - `Host` must be present once in HTTP/1.1, be `host[:port]` (no userinfo) and agree
//!   with the target's authority
//!   (absolute-form, or HTTP/2's `:authority`): a disagreement is refused (`400`)
//!   instead of letting routing and the upstream read different hosts;
//! - header names containing `_` or `.` are refused (`400`) unless the operator allows
//!   them: many servers treat `X_Auth_Subject` or `X.Auth.Subject` as
//!   `X-Auth-Subject`, which would let a client smuggle an identity header past a
//!   filter that only knows the dashed spelling;
//! - every header in the reserved identity prefix (`x-auth-` by default), and every
//!   header named in `[identity] claim_headers`, is removed in every spelling (any
//!   case, `_` or `.` for `-`), on public routes too: only Portcullis sets them;
//! - the headers of `server.strip_request_headers` (by default the routing and method
//!   override headers `X-Original-URL`, `X-Rewrite-URL`, `X-HTTP-Method-Override`,
//!   `X-HTTP-Method`, `X-Method-Override`) are removed.

use http::header::{HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, Request, Uri, Version};

use crate::config::ServerConfig;
use crate::error::GatewayError;

/// Checks and cleans the request head in place.
pub fn apply<B>(
    req: &mut Request<B>,
    server: &ServerConfig,
    extra_reserved: &[HeaderName],
) -> Result<(), GatewayError> {
    if server.refuse_methods.contains(req.method()) {
        return Err(GatewayError::MethodNotSupported);
    }
    if target_len(req.uri()) > server.max_request_target_bytes {
        return Err(GatewayError::UriTooLong);
    }
    check_transfer_encoding(req.headers())?;
    check_host(req)?;
    let headers = req.headers_mut();
    if headers.len() > server.max_headers {
        return Err(GatewayError::HeadersTooLarge);
    }
    clean_headers(
        headers,
        server.max_header_bytes,
        server.reject_underscore_headers,
        &server.identity_header_prefix,
        extra_reserved,
        &server.strip_request_headers,
    )?;
    Ok(())
}

/// Length of the request target as the client sent it (origin- or absolute-form).
fn target_len(uri: &Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + authority + scheme
}

/// `Transfer-Encoding` absent, or one line saying exactly `chunked`: the one coding
/// the gateway decodes (and re-applies upstream) itself.
fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), GatewayError> {
    let mut values = headers.get_all(TRANSFER_ENCODING).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(GatewayError::BadFraming(
            "Transfer-Encoding other than a single `chunked` is not accepted",
        )),
    }
}

/// One `Host` in HTTP/1.1 (RFC 9112 §3.2), and no disagreement between `Host` and the
/// target's authority (RFC 9112 §3.2.2, RFC 9113 §8.3.1).
fn check_host<B>(req: &Request<B>) -> Result<(), GatewayError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadRequest("more than one Host header"));
    }
    // `host[:port]` only (RFC 9110 §7.2): no userinfo (`admin.example@public.example`
    // would route by the part after `@` while the upstream reads the part before),
    // no path, query or space.
    let authority = req.uri().authority();
    if host.is_some_and(|h| !host_port(h.as_bytes()))
        || authority.is_some_and(|a| !host_port(a.as_str().as_bytes()))
    {
        return Err(GatewayError::BadRequest(
            "the Host header must be host[:port]",
        ));
    }
    match (host, authority) {
        (None, None) if req.version() == Version::HTTP_11 => {
            Err(GatewayError::BadRequest("a Host header is required"))
        }
        (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) => Err(
            GatewayError::BadRequest("the Host header and the request target's authority differ"),
        ),
        _ => Ok(()),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2–3.2.3): an IP literal in brackets or a
/// reg-name (unreserved, sub-delims, `%`), then optionally `:` and digits only.
fn host_port(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        match v.iter().position(|&b| b == b']') {
            Some(end) => (&v[..=end], &v[end + 1..]),
            None => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(colon) => (&v[..colon], &v[colon..]),
            None => (v, &v[v.len()..]),
        }
    };
    let port_ok = port.is_empty() || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit));
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => {
            !host.is_empty()
                && host
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
        }
    };
    port_ok && host_ok
}

/// Size and name rules, and removal of reserved (identity) headers and of the
/// `strip` list (`server.strip_request_headers`), in one pass over the names: most
/// requests carry none of them, and a removal of an absent name still hashes it.
fn clean_headers(
    headers: &mut HeaderMap,
    max_bytes: usize,
    reject_odd_names: bool,
    prefix: &str,
    extra_reserved: &[HeaderName],
    strip: &[HeaderName],
) -> Result<(), GatewayError> {
    let is_reserved =
        |n: &str| n.starts_with(prefix) || extra_reserved.iter().any(|r| r.as_str() == n);
    let mut total = 0usize;
    let mut reserved = Vec::new();
    for (name, value) in headers.iter() {
        // Approximates the wire size: "name: value\r\n".
        total += name.as_str().len() + value.len() + 4;
        let n = name.as_str();
        if n.contains(['_', '.']) {
            if reject_odd_names {
                return Err(GatewayError::BadRequest(
                    "header names with '_' or '.' are not accepted",
                ));
            }
            // Many servers and frameworks (CGI's HTTP_* variables, WSGI, PHP) read
            // `X_Original_URL` as `X-Original-URL`: the strip list, like the
            // reserved names, is matched in every spelling.
            let dashed = n.replace(['_', '.'], "-");
            if is_reserved(&dashed) || strip.iter().any(|s| s.as_str() == dashed) {
                reserved.push(name.clone());
            }
        } else if is_reserved(n) || strip.contains(name) {
            reserved.push(name.clone());
        }
    }
    if total > max_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    for name in reserved {
        headers.remove(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        h.keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn reserved_prefix_removed_in_every_spelling() {
        let mut h = map(&[
            ("X-Auth-Subject", "mallory"),
            ("x-auth-scopes", "admin"),
            ("X-AUTH-ROLES", "root"),
            ("accept", "*/*"),
        ]);
        clean_headers(&mut h, 16384, true, "x-auth-", &[], &[]).expect("ok");
        assert_eq!(names(&h), vec!["accept"]);
        let mut h = map(&[
            ("x_auth_subject", "mallory"),
            ("X_Auth-Roles", "root"),
            ("X.Auth.Subject", "admin"),
            ("x.auth_scopes", "admin"),
            ("x_other", "1"),
            ("x.other", "1"),
        ]);
        clean_headers(&mut h, 16384, false, "x-auth-", &[], &[]).expect("ok");
        let mut left = names(&h);
        left.sort_unstable();
        assert_eq!(left, vec!["x.other", "x_other"]);
    }

    #[test]
    fn claim_headers_outside_the_prefix_are_reserved_too() {
        let extra = [HeaderName::from_static("x-user")];
        let mut h = map(&[
            ("X-User", "mallory"),
            ("x_user", "mallory"),
            ("x.user", "mallory"),
            ("x-username", "kept"),
        ]);
        clean_headers(&mut h, 16384, false, "x-auth-", &extra, &[]).expect("ok");
        assert_eq!(names(&h), vec!["x-username"]);
    }

    #[test]
    fn the_strip_list_is_removed_in_the_same_pass() {
        let strip = [
            HeaderName::from_static("x-original-url"),
            HeaderName::from_static("x-http-method-override"),
        ];
        let mut h = map(&[
            ("X-Original-URL", "/admin"),
            ("x-original-url", "/admin/again"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x-original-url-note", "kept"),
            ("accept", "*/*"),
        ]);
        clean_headers(&mut h, 16384, true, "x-auth-", &[], &strip).expect("ok");
        let mut left = names(&h);
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-original-url-note"]);

        // Where odd names are accepted, their other spellings go too.
        let mut h = map(&[
            ("x_original_url", "/admin"),
            ("X.HTTP.Method.Override", "DELETE"),
            ("x_original_url_note", "kept"),
        ]);
        clean_headers(&mut h, 16384, false, "x-auth-", &[], &strip).expect("ok");
        assert_eq!(names(&h), vec!["x_original_url_note"]);
    }

    #[test]
    fn underscores_and_dots_refused_by_default() {
        for name in ["x_auth_subject", "X.Auth.Subject", "x.custom"] {
            let mut h = map(&[(name, "mallory")]);
            assert!(
                matches!(
                    clean_headers(&mut h, 16384, true, "x-auth-", &[], &[]),
                    Err(GatewayError::BadRequest(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn header_size_capped() {
        let mut h = map(&[("x-big", &"a".repeat(2000))]);
        assert!(matches!(
            clean_headers(&mut h, 1024, true, "x-auth-", &[], &[]),
            Err(GatewayError::HeadersTooLarge)
        ));
        assert!(clean_headers(&mut h, 4096, true, "x-auth-", &[], &[]).is_ok());
    }

    fn req(uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn host_must_be_single_and_agree_with_the_target() {
        assert!(check_host(&req("/x", &["a.example"])).is_ok());
        assert!(check_host(&req("http://a.example/x", &["A.example"])).is_ok());
        assert!(check_host(&req("http://a.example/x", &[])).is_ok());
        assert!(check_host(&req("/x", &[])).is_err(), "HTTP/1.1 needs Host");
        assert!(check_host(&req("/x", &["a.example", "b.example"])).is_err());
        assert!(check_host(&req("http://admin.example/x", &["a.example"])).is_err());
        assert!(check_host(&req("http://a.example:8080/x", &["a.example"])).is_err());
        assert!(check_host(&req("/x", &["[::1]:8080"])).is_ok());
        assert!(check_host(&req("/x", &["admin.example@public.example"])).is_err());
        assert!(check_host(&req("http://u@a.example/x", &["u@a.example"])).is_err());
        assert!(check_host(&req("/x", &["a.example/admin"])).is_err());
        assert!(check_host(&req("/x", &[""])).is_err());
        assert!(
            check_host(&req("/x", &["a.example:80(0"])).is_err(),
            "port is digits"
        );
        assert!(
            check_host(&req("/x", &["a.example:"])).is_ok(),
            "empty port (RFC 3986)"
        );
        assert!(check_host(&req("/x", &["[::1"])).is_err());
        assert!(check_host(&req("/x", &["[::1]x"])).is_err());
        assert!(check_host(&req("/x", &["a:b:80"])).is_err());
        assert!(check_host(&req("/x", &["127.0.0.1:8080"])).is_ok());
    }

    #[test]
    fn only_a_single_chunked_coding_is_accepted() {
        assert!(check_transfer_encoding(&map(&[])).is_ok());
        assert!(check_transfer_encoding(&map(&[("transfer-encoding", "chunked")])).is_ok());
        assert!(check_transfer_encoding(&map(&[("transfer-encoding", "Chunked")])).is_ok());
        for pairs in [
            &[("transfer-encoding", "gzip, chunked")][..],
            &[("transfer-encoding", "chunked, chunked")],
            &[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert!(
                matches!(
                    check_transfer_encoding(&map(pairs)),
                    Err(GatewayError::BadFraming(_))
                ),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn target_length_counts_the_whole_target() {
        let uri: Uri = "http://a.example/path?q=1".parse().expect("uri");
        assert_eq!(target_len(&uri), "http://a.example/path?q=1".len());
        let uri: Uri = "/path?q=1".parse().expect("uri");
        assert_eq!(target_len(&uri), 9);
    }
}
