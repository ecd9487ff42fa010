//! Why a request was refused ([`Denial`]) and how the refusal is written
//! ([`DenialRenderer`]): JSON with `WWW-Authenticate` (RFC 6750 §3) for HTTP APIs by
//! default ([`JsonRenderer`]), a trailers-only gRPC status for tonic services
//! ([`GrpcRenderer`]), or the application's own.
//!
//! The reasons mirror the gateway's (`error.rs`), and like the gateway the client only
//! ever learns `invalid_token`, never which check failed: [`Denial::InvalidToken`]
//! carries the [`TokenError`] for the application's logs, not for the body. A header
//! that is not `Bearer <token>` at all ([`Denial::MalformedAuthorization`]) is told
//! what is wrong with it: nothing was verified.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Response, StatusCode};

use crate::auth::bearer::Malformed;
use crate::auth::jwt::TokenError;

/// Why the layer refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The route needs a credential and the request carries none (`401`).
    MissingToken,
    /// The `Authorization` header is not `Bearer <token>`: two headers, no scheme,
    /// another scheme, an empty token, a stray space (`400 invalid_request`, the
    /// description naming the problem).
    MalformedAuthorization(Malformed),
    /// The token was refused; the reason is for logs only (`401 invalid_token`).
    InvalidToken(TokenError),
    /// The caller lacks what the route asks for (`403 insufficient_scope`); the
    /// scopes to name in `WWW-Authenticate`.
    InsufficientScope(String),
    /// The request is ambiguous: a path that does not canonicalize (`400`).
    BadRequest(&'static str),
    /// No route policy matches the path: denied by default (`404`).
    NoRoute,
    /// Routes match the path but not the method (`405`, with `Allow`).
    MethodNotAllowed(Vec<Method>),
}

impl Denial {
    /// The HTTP status an HTTP API answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::MissingToken | Denial::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Denial::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Denial::MalformedAuthorization(_) | Denial::BadRequest(_) => StatusCode::BAD_REQUEST,
            Denial::NoRoute => StatusCode::NOT_FOUND,
            Denial::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The `error` code (RFC 6750 §3.1 where one applies).
    pub fn code(&self) -> &'static str {
        match self {
            Denial::MissingToken => "unauthorized",
            Denial::InvalidToken(_) => "invalid_token",
            Denial::InsufficientScope(_) => "insufficient_scope",
            Denial::MalformedAuthorization(_) | Denial::BadRequest(_) => "invalid_request",
            Denial::NoRoute => "not_found",
            Denial::MethodNotAllowed(_) => "method_not_allowed",
        }
    }

    /// A sentence for the client: never which token check failed.
    pub fn description(&self) -> String {
        match self {
            Denial::MissingToken => "a bearer token is required".into(),
            Denial::InvalidToken(_) => "the access token is invalid or has expired".into(),
            Denial::InsufficientScope(s) => format!("the token lacks the required scope: {s}"),
            Denial::MalformedAuthorization(m) => m.description().into(),
            Denial::BadRequest(why) => (*why).into(),
            Denial::NoRoute => "no route matches this path".into(),
            Denial::MethodNotAllowed(_) => "the method is not allowed on this path".into(),
        }
    }

    /// The gRPC status code (`grpc-status`).
    pub fn grpc_code(&self) -> u16 {
        match self {
            Denial::MissingToken | Denial::InvalidToken(_) => 16, // UNAUTHENTICATED
            Denial::InsufficientScope(_) => 7,                    // PERMISSION_DENIED
            Denial::MalformedAuthorization(_) | Denial::BadRequest(_) => 3, // INVALID_ARGUMENT
            Denial::NoRoute | Denial::MethodNotAllowed(_) => 12,  // UNIMPLEMENTED
        }
    }
}

/// Writes a refusal. The body is bytes; the layer wraps it in the service's body type.
pub trait DenialRenderer: Clone + Send + Sync + 'static {
    /// The response for `denial`.
    fn render(&self, denial: &Denial) -> Response<Bytes>;
}

/// RFC 6750 JSON: `{"error","error_description"}` with the status and a
/// `WWW-Authenticate: Bearer realm=…` challenge on `401`, `403` and the `400` of a
/// malformed `Authorization` header.
#[derive(Debug, Clone)]
pub struct JsonRenderer {
    realm: String,
}

impl Default for JsonRenderer {
    fn default() -> Self {
        JsonRenderer {
            realm: "api".into(),
        }
    }
}

impl JsonRenderer {
    /// The `realm` of the challenge (default `api`); quotes and backslashes are dropped.
    pub fn realm(realm: &str) -> JsonRenderer {
        JsonRenderer {
            realm: realm.chars().filter(|c| !matches!(c, '"' | '\\')).collect(),
        }
    }

    fn challenge(&self, d: &Denial) -> Option<String> {
        let realm = &self.realm;
        match d {
            Denial::MissingToken => Some(format!("Bearer realm=\"{realm}\"")),
            Denial::InvalidToken(_) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                d.description()
            )),
            // The descriptions have no quotes or backslashes (bearer.rs tests it).
            Denial::MalformedAuthorization(_) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{}\"",
                d.description()
            )),
            // Scope names were checked when the layer was built: no quotes.
            Denial::InsufficientScope(s) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{s}\""
            )),
            Denial::BadRequest(_) | Denial::NoRoute | Denial::MethodNotAllowed(_) => None,
        }
    }
}

impl DenialRenderer for JsonRenderer {
    fn render(&self, d: &Denial) -> Response<Bytes> {
        let body = serde_json::json!({"error": d.code(), "error_description": d.description()});
        let mut resp = Response::new(Bytes::from(body.to_string()));
        *resp.status_mut() = d.status();
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = self
            .challenge(d)
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            h.insert(WWW_AUTHENTICATE, v);
        }
        if let Denial::MethodNotAllowed(allow) = d {
            let list: Vec<&str> = allow.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                h.insert(http::header::ALLOW, v);
            }
        }
        resp
    }
}

/// gRPC: a trailers-only response (HTTP `200`, `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in the headers, no body), as tonic's clients read
/// it: `16` UNAUTHENTICATED, `7` PERMISSION_DENIED, `3` INVALID_ARGUMENT (a malformed
/// `Authorization` header, an ambiguous path), `12` UNIMPLEMENTED.
#[derive(Debug, Clone, Default)]
pub struct GrpcRenderer;

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn grpc_message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl DenialRenderer for GrpcRenderer {
    fn render(&self, d: &Denial) -> Response<Bytes> {
        let mut resp = Response::new(Bytes::new());
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(d.grpc_code()));
        if let Ok(v) = HeaderValue::from_str(&grpc_message(&d.description())) {
            h.insert("grpc-message", v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_challenges_follow_rfc_6750() {
        let r = JsonRenderer::realm("orders");
        let resp = r.render(&Denial::MissingToken);
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer realm=\"orders\"");
        let resp = r.render(&Denial::InsufficientScope("a b".into()));
        assert_eq!(resp.status(), 403);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"orders\", error=\"insufficient_scope\", scope=\"a b\""
        );
        let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("json");
        assert_eq!(body["error"], "insufficient_scope");
        // The client never learns which check refused the token.
        let expired = r.render(&Denial::InvalidToken(TokenError::Expired));
        let forged = r.render(&Denial::InvalidToken(TokenError::BadSignature));
        assert_eq!(expired.body(), forged.body());
        assert_eq!(
            expired.headers()[WWW_AUTHENTICATE],
            forged.headers()[WWW_AUTHENTICATE]
        );
    }

    #[test]
    fn a_malformed_header_is_400_invalid_request_naming_the_problem() {
        let r = JsonRenderer::realm("orders");
        let d = Denial::MalformedAuthorization(Malformed::NoScheme);
        let resp = r.render(&d);
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            format!(
                "Bearer realm=\"orders\", error=\"invalid_request\", error_description=\"{}\"",
                Malformed::NoScheme.description()
            )
            .as_str()
        );
        let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("json");
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], Malformed::NoScheme.description());
        // Each problem has its own text.
        let other = r.render(&Denial::MalformedAuthorization(Malformed::ExtraSpace));
        assert_ne!(resp.body(), other.body());
    }

    #[test]
    fn grpc_status_is_in_the_headers_of_a_200() {
        let resp = GrpcRenderer.render(&Denial::InvalidToken(TokenError::BadSignature));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["grpc-status"], "16");
        let resp = GrpcRenderer.render(&Denial::InsufficientScope("x".into()));
        assert_eq!(resp.headers()["grpc-status"], "7");
        let resp = GrpcRenderer.render(&Denial::MalformedAuthorization(Malformed::OtherScheme));
        assert_eq!(resp.headers()["grpc-status"], "3");
        assert_eq!(
            resp.headers()["grpc-message"],
            Malformed::OtherScheme.description()
        );
        assert_eq!(grpc_message("a%b\n"), "a%25b%0A");
    }
}
