//! `GET/POST {prefix}/userinfo` (OIDC Core §5.3): the claims of the user an access
//! token of this issuer was issued to, by its scopes — `sub` always; `profile` adds
//! `preferred_username` and `roles`; `email` adds `email` and `email_verified` when
//! known. The token must carry `openid` (else `403 insufficient_scope`); a missing,
//! invalid or revoked token is `401` with an RFC 6750 challenge.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::json;

use crate::body::Body;
use crate::error::GatewayError;
use crate::token::endpoint::no_store;
use crate::token::grants::code::add_profile_claims;
use crate::token::grants::credentials::find_user;
use crate::token::grants::Ctx;

fn refused(status: StatusCode, error: &'static str, description: &str) -> Response<Body> {
    let mut resp = no_store(
        status,
        &json!({ "error": error, "error_description": description }),
    );
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

/// The endpoint.
pub(crate) async fn userinfo(
    ctx: &Ctx<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    if method != Method::GET && method != Method::POST {
        return Err(GatewayError::MethodNotAllowed(vec![
            Method::GET,
            Method::POST,
        ]));
    }
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let Some(token) = token else {
        let mut resp = no_store(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": "invalid_token", "error_description": "send the access token as a Bearer token" }),
        );
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(resp);
    };
    let bad = || {
        refused(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid, expired or revoked",
        )
    };
    let Some(principal) = ctx.verifier.and_then(|v| v.verify(token).ok()) else {
        return Ok(bad());
    };
    let revoked = principal
        .claims
        .get("jti")
        .and_then(|j| j.as_str())
        .is_some_and(|j| ctx.rt.deny.contains(j));
    if revoked || principal.issuer != ctx.svc.issuer {
        return Ok(bad());
    }
    if !principal.scopes.iter().any(|s| s == "openid") {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the access token was not granted the openid scope",
        ));
    }
    let user = match find_user(ctx, &principal.subject).await? {
        Some(u) if !u.disabled => u,
        _ => return Ok(bad()),
    };
    let mut claims = json!({ "sub": user.username });
    add_profile_claims(&mut claims, &user, &principal.scopes);
    Ok(no_store(StatusCode::OK, &claims))
}
