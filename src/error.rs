//! Every way a request can fail, and the one place that turns it into a response.
//!
//! Each variant maps to a status, an OAuth-style error code and a short description
//! in a single exhaustive `match` (no `_ =>`): adding a variant forces a decision on
//! how it is answered. Bodies are `{"error", "error_description", "request_id"}` and
//! never carry request data, tokens or upstream details. The token service's RFC 6749
//! §5.2 errors ([`OAuthError`]; §5.2 allows members beyond its two, so they carry the
//! `request_id` too) and the CORS preflight refusal are variants too, so
//! there is one renderer, one place that writes `WWW-Authenticate`, `Retry-After` and
//! the `RateLimit-*` headers ([`rate_limit_headers`]), and one enum of reasons for the
//! access log ([`Reason`]).

use http::header::{ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::auth::bearer::Malformed;
use crate::auth::jwt::TokenError;
use crate::body::Body;
use crate::token::endpoint::OAuthError;

const INVALID_TOKEN_DESCRIPTION: &str = "the access token is invalid or has expired";
use crate::policy::path::PathError;

/// A request that Portcullis answers itself instead of forwarding.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    BadPath(#[from] PathError),
    #[error("{0}")]
    BadRequest(&'static str),
    /// Message framing the gateway refuses (RFC 9112 §6.1): answered `400` with
    /// `Connection: close`, since what follows on the connection cannot be trusted to
    /// start a new request.
    #[error("{0}")]
    BadFraming(&'static str),
    #[error("no route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed(Vec<Method>),
    #[error("authentication required")]
    Unauthenticated,
    /// An `Authorization` header that is not `Bearer <token>` (RFC 6750 §3.1
    /// `invalid_request`): answered `400`, the description naming the problem.
    #[error("malformed Authorization header: {}", .0.description())]
    MalformedAuthorization(Malformed),
    #[error("invalid token: {0}")]
    InvalidToken(TokenError),
    /// The scopes the route requires (space-separated), for `WWW-Authenticate`.
    #[error("insufficient scope")]
    InsufficientScope(String),
    /// A `[rate_limits]` policy refused the request.
    #[error("rate limited by {policy}")]
    RateLimited {
        policy: String,
        /// `RateLimit-Policy` value.
        policy_header: String,
        retry_after: u64,
    },
    #[error("forward-auth from an untrusted peer")]
    UntrustedProxy,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("request target too long")]
    UriTooLong,
    /// A method refused server-wide (`server.refuse_methods`).
    #[error("method not supported")]
    MethodNotSupported,
    /// The upstream answered `101` to a request that asked no (allowed) upgrade, or
    /// switched to another protocol than the one asked for.
    #[error("upstream switched protocols unasked")]
    UnexpectedUpgrade,
    #[error("upstream unreachable")]
    UpstreamConnect,
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// Every connection to the upstream (`max_connections`) stayed busy for
    /// `pool_wait_timeout`.
    #[error("upstream connections exhausted")]
    UpstreamBusy,
    #[error("upstream failed")]
    UpstreamFailed,
    #[error("request deadline exceeded")]
    RequestTimeout,
    /// A CORS preflight the policy does not grant (origin, method or header).
    #[error("CORS preflight refused")]
    CorsDenied,
    /// An answer of the token service (`/token`, `/revoke`, `/register`).
    #[error("token request refused: {}", .0.code)]
    OAuth(OAuthError),
    /// The token service is configured but its store is not open (restart needed).
    #[error("token service unavailable")]
    TokenServiceDown,
    /// The route requires a verified TLS client certificate (with one of its SANs).
    #[error("client certificate refused: {0}")]
    ClientCertRefused(&'static str),
    /// `server.max_in_flight` requests are being handled: shed at the entry.
    #[error("overloaded")]
    Overloaded,
    /// A handler panicked (caught; the connection and the process live on).
    #[error("internal error")]
    Internal,
}

/// Why the gateway answered as it did, for the access log's `reason` field: every
/// denial and failure, and the answers that are not an upstream's (`preflight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadPath,
    BadRequest,
    BadFraming,
    NoRoute,
    MethodNotAllowed,
    NoToken,
    MalformedAuthorization,
    UntrustedProxy,
    RateLimited,
    InvalidToken,
    InsufficientScope,
    BodyTooLarge,
    HeadersTooLarge,
    UriTooLong,
    MethodRefused,
    UnexpectedUpgrade,
    UpstreamConnect,
    UpstreamTimeout,
    UpstreamBusy,
    UpstreamFailed,
    RequestTimeout,
    Panic,
    CorsDenied,
    /// A CORS preflight answered at the edge (granted).
    Preflight,
    TokenServiceDown,
    LoginBusy,
    InvalidClient,
    InvalidGrant,
    ServerError,
    TokenRequestRefused,
    Overloaded,
    ClientCertificate,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            BadPath => "bad_path",
            BadRequest => "bad_request",
            BadFraming => "bad_framing",
            NoRoute => "no_route",
            MethodNotAllowed => "method_not_allowed",
            NoToken => "no_token",
            MalformedAuthorization => "malformed_authorization",
            UntrustedProxy => "untrusted_proxy",
            RateLimited => "rate_limited",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            BodyTooLarge => "body_too_large",
            HeadersTooLarge => "headers_too_large",
            UriTooLong => "uri_too_long",
            MethodRefused => "method_refused",
            UnexpectedUpgrade => "unexpected_upgrade",
            UpstreamConnect => "upstream_connect",
            UpstreamTimeout => "upstream_timeout",
            UpstreamBusy => "upstream_busy",
            UpstreamFailed => "upstream_failed",
            RequestTimeout => "request_timeout",
            Panic => "panic",
            CorsDenied => "cors_denied",
            Preflight => "preflight",
            TokenServiceDown => "token_service_down",
            LoginBusy => "login_busy",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            ServerError => "server_error",
            TokenRequestRefused => "token_request_refused",
            Overloaded => "overloaded",
            ClientCertificate => "client_certificate",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl GatewayError {
    /// Status, error code and description; the description is safe to show anyone.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        use GatewayError::*;
        match self {
            OAuth(e) => (e.status, e.code, e.description.to_string()),
            CorsDenied => (
                StatusCode::FORBIDDEN,
                "cors_denied",
                "this origin, method or header is not allowed by the CORS policy".into(),
            ),
            TokenServiceDown => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the token service failed; try again later".into(),
            ),
            BadPath(e) => (StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
            BadRequest(d) | BadFraming(d) => {
                (StatusCode::BAD_REQUEST, "invalid_request", (*d).to_string())
            }
            NoRoute => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no route matches this request".into(),
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
            ),
            Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required".into(),
            ),
            // Unlike an invalid token, a malformed header says what is wrong with it:
            // nothing was verified, and the text never echoes the header.
            MalformedAuthorization(m) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                m.description().into(),
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry after the time in Retry-After".into(),
            ),
            UntrustedProxy => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint answers trusted proxies only".into(),
            ),
            // One text for every cause: which check failed is for the logs only.
            InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                INVALID_TOKEN_DESCRIPTION.into(),
            ),
            InsufficientScope(_) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the access token does not grant what this route requires".into(),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body exceeds the size limit".into(),
            ),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "the request headers exceed the size limit".into(),
            ),
            UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request target exceeds the length limit".into(),
            ),
            MethodNotSupported => (
                StatusCode::NOT_IMPLEMENTED,
                "method_not_supported",
                "this gateway does not serve that method".into(),
            ),
            UnexpectedUpgrade => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream service switched protocols without being asked to".into(),
            ),
            UpstreamConnect => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream service could not be reached".into(),
            ),
            UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "the upstream service did not answer in time".into(),
            ),
            UpstreamBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_busy",
                "every connection to the upstream service is busy; retry after the time in Retry-After".into(),
            ),
            UpstreamFailed => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream service failed to answer".into(),
            ),
            RequestTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "the request took longer than the gateway allows".into(),
            ),
            ClientCertRefused(why) => (
                StatusCode::FORBIDDEN,
                "client_certificate_required",
                (*why).to_string(),
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the gateway is at capacity; retry after the time in Retry-After".into(),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the gateway failed to handle the request".into(),
            ),
        }
    }

    /// Why, for the access log.
    pub fn reason(&self) -> Reason {
        use GatewayError::*;
        match self {
            BadPath(_) => Reason::BadPath,
            BadRequest(_) => Reason::BadRequest,
            BadFraming(_) => Reason::BadFraming,
            NoRoute => Reason::NoRoute,
            MethodNotAllowed(_) => Reason::MethodNotAllowed,
            Unauthenticated => Reason::NoToken,
            MalformedAuthorization(_) => Reason::MalformedAuthorization,
            UntrustedProxy => Reason::UntrustedProxy,
            RateLimited { .. } => Reason::RateLimited,
            InvalidToken(_) => Reason::InvalidToken,
            InsufficientScope(_) => Reason::InsufficientScope,
            PayloadTooLarge => Reason::BodyTooLarge,
            HeadersTooLarge => Reason::HeadersTooLarge,
            UriTooLong => Reason::UriTooLong,
            MethodNotSupported => Reason::MethodRefused,
            UnexpectedUpgrade => Reason::UnexpectedUpgrade,
            UpstreamConnect => Reason::UpstreamConnect,
            UpstreamTimeout => Reason::UpstreamTimeout,
            UpstreamBusy => Reason::UpstreamBusy,
            UpstreamFailed => Reason::UpstreamFailed,
            RequestTimeout => Reason::RequestTimeout,
            CorsDenied => Reason::CorsDenied,
            TokenServiceDown => Reason::TokenServiceDown,
            OAuth(e) => match e.code {
                "rate_limited" => Reason::RateLimited,
                "temporarily_unavailable" => Reason::LoginBusy,
                "invalid_client" => Reason::InvalidClient,
                "invalid_grant" => Reason::InvalidGrant,
                "server_error" => Reason::ServerError,
                _ => Reason::TokenRequestRefused,
            },
            Overloaded => Reason::Overloaded,
            ClientCertRefused(_) => Reason::ClientCertificate,
            Internal => Reason::Panic,
        }
    }

    /// The JSON response for this error.
    pub fn into_response(self, request_id: &HeaderValue) -> Response<Body> {
        let (status, code, description) = self.parts();
        // The token service's RFC 6749 §5.2 errors too: §5.2 lets a body carry more
        // members than `error` and `error_description`. Two refusals that must look
        // alike (unknown user, wrong password) differ in their request id only.
        let body = serde_json::json!({
            "error": code,
            "error_description": description,
            "request_id": request_id.to_str().unwrap_or(""),
        });
        let mut resp = json_response(status, &body);
        let h = resp.headers_mut();
        match self {
            GatewayError::MethodNotAllowed(allow) => {
                let list = allow
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(v) = HeaderValue::from_str(&list) {
                    h.insert(ALLOW, v);
                }
            }
            GatewayError::RateLimited {
                policy,
                policy_header,
                retry_after,
            } => rate_limit_headers(h, retry_after, Some((&policy, &policy_header))),
            GatewayError::OAuth(e) => {
                // RFC 6749 §5.1: token endpoint answers are never cached.
                h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
                if e.basic_challenge {
                    h.insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"portcullis\", charset=\"UTF-8\""),
                    );
                }
                if let Some(s) = e.retry_after {
                    let policy = e.policy.as_ref().map(|(n, p)| (n.as_str(), p.as_str()));
                    rate_limit_headers(h, s, policy);
                }
            }
            GatewayError::TokenServiceDown => {
                h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
            }
            GatewayError::Overloaded | GatewayError::UpstreamBusy => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            GatewayError::CorsDenied => {
                h.append(http::header::VARY, HeaderValue::from_static("Origin"));
            }
            GatewayError::BadFraming(_) => {
                h.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            GatewayError::Unauthenticated => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis\""),
                );
            }
            GatewayError::MalformedAuthorization(m) => {
                // RFC 6750 §3: the descriptions are quoted-string safe (bearer.rs).
                let v = format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_request\", error_description=\"{}\"",
                    m.description()
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::InvalidToken(_) => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"the access token is invalid or has expired\"",
                    ),
                );
            }
            GatewayError::InsufficientScope(scopes) => {
                // Scope names were checked at config time: no quotes or backslashes.
                let v = format!(
                    "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"{scopes}\""
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::BadPath(_)
            | GatewayError::BadRequest(_)
            | GatewayError::NoRoute
            | GatewayError::UntrustedProxy
            | GatewayError::PayloadTooLarge
            | GatewayError::HeadersTooLarge
            | GatewayError::UriTooLong
            | GatewayError::MethodNotSupported
            | GatewayError::UnexpectedUpgrade
            | GatewayError::UpstreamConnect
            | GatewayError::UpstreamTimeout
            | GatewayError::UpstreamFailed
            | GatewayError::RequestTimeout
            | GatewayError::ClientCertRefused(_)
            | GatewayError::Internal => {}
        }
        resp
    }
}

/// `Retry-After` and, when a `[rate_limits]` policy refused, the IETF RateLimit
/// headers (`RateLimit-Policy`, and `RateLimit` with no quota left): the one place
/// they are written, for a route's `429` and the token service's alike.
pub fn rate_limit_headers(h: &mut HeaderMap, retry_after: u64, policy: Option<(&str, &str)>) {
    h.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
    let Some((name, policy_header)) = policy else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(policy_header) {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r=0;t={retry_after}")) {
        h.insert("ratelimit", v);
    }
}

/// A JSON response that is never cached.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::full(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `Option::ok_or(GatewayError::Internal)` without building (and dropping) the error
/// when the value is there: the layers look their facts up this way on every request.
pub trait OrInternal<T> {
    fn or_internal(self) -> Result<T, GatewayError>;
}

impl<T> OrInternal<T> for Option<T> {
    #[inline]
    fn or_internal(self) -> Result<T, GatewayError> {
        match self {
            Some(v) => Ok(v),
            None => Err(GatewayError::Internal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_bodies_are_json_with_request_id() {
        let rid = HeaderValue::from_static("abc-123");
        let resp =
            GatewayError::MethodNotAllowed(vec![Method::GET, Method::HEAD]).into_response(&rid);
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()[ALLOW], "GET, HEAD");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["error"], "method_not_allowed");
        assert_eq!(v["request_id"], "abc-123");

        let resp = GatewayError::BadFraming("x").into_response(&rid);
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()[CONNECTION], "close");

        let resp = GatewayError::Unauthenticated.into_response(&rid);
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"portcullis\""
        );
    }

    #[tokio::test]
    async fn a_malformed_authorization_header_is_400_invalid_request_naming_the_problem() {
        let rid = HeaderValue::from_static("abc-123");
        for m in [
            Malformed::NoScheme,
            Malformed::OtherScheme,
            Malformed::Duplicate,
        ] {
            let e = GatewayError::MalformedAuthorization(m);
            assert_eq!(e.reason(), Reason::MalformedAuthorization);
            let resp = e.into_response(&rid);
            assert_eq!(resp.status(), 400);
            assert_eq!(
                resp.headers()[WWW_AUTHENTICATE],
                format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_request\", error_description=\"{}\"",
                    m.description()
                )
                .as_str()
            );
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(v["error"], "invalid_request");
            assert_eq!(v["error_description"], m.description());
            assert_eq!(v["request_id"], "abc-123");
        }
    }

    #[tokio::test]
    async fn oauth_error_bodies_carry_the_request_id_too() {
        let rid = HeaderValue::from_static("rid-7");
        let e = OAuthError::invalid_grant("the grant is invalid");
        let resp = GatewayError::OAuth(e).into_response(&rid);
        assert_eq!(resp.status(), 400);
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"error": "invalid_grant",
                "error_description": "the grant is invalid", "request_id": "rid-7"})
        );
    }
}
