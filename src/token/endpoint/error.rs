//! The token service's refusals: RFC 6749 §5.2 errors (and 429/503/5xx in the same
//! shape), rendered by the gateway's one error renderer (`error.rs`) through
//! [`GatewayError::OAuth`]; and the `no-store` JSON answer every endpoint gives.

use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

use crate::body::Body;
use crate::error::GatewayError;

/// An RFC 6749 §5.2 error (or a 429/5xx in the same shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: &'static str,
    /// `WWW-Authenticate: Basic` (the client authenticated with Basic and failed).
    pub basic_challenge: bool,
    pub retry_after: Option<u64>,
    /// The `[rate_limits]` policy that refused: (name, `RateLimit-Policy` value).
    pub policy: Option<(String, String)>,
}

impl OAuthError {
    pub fn new(status: StatusCode, code: &'static str, description: &'static str) -> OAuthError {
        OAuthError {
            status,
            code,
            description,
            basic_challenge: false,
            retry_after: None,
            policy: None,
        }
    }

    pub fn invalid_request(d: &'static str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    pub fn invalid_grant(d: &'static str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    pub fn invalid_scope(d: &'static str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    pub fn invalid_client(d: &'static str, basic: bool) -> OAuthError {
        OAuthError {
            basic_challenge: basic,
            ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }

    pub fn server_error() -> OAuthError {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the token service failed; try again later",
        )
    }

    pub fn rate_limited(retry_after: u64) -> OAuthError {
        OAuthError {
            retry_after: Some(retry_after),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many attempts; retry later",
            )
        }
    }

    /// Every password-hashing place is taken (`hashing.rs`): retry in a second.
    pub fn busy() -> OAuthError {
        OAuthError {
            retry_after: Some(1),
            ..OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the login service is busy; retry in a moment",
            )
        }
    }
}

impl From<OAuthError> for GatewayError {
    fn from(e: OAuthError) -> GatewayError {
        GatewayError::OAuth(e)
    }
}

/// A JSON answer with `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = crate::error::json_response(status, body);
    resp.headers_mut()
        .insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_full_hashing_gate_is_an_oauth_shaped_503_with_retry_after() {
        let rid = HeaderValue::from_static("r1");
        let resp = GatewayError::from(OAuthError::busy()).into_response(&rid);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let h = resp.headers();
        assert_eq!(h.get(RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(
            h.get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert_eq!(
            h.get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"], "temporarily_unavailable");
        assert!(v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
}
