//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//!
//! Every function the fuzz crate calls goes through here, so that a change of the
//! signature of one of these pieces breaks this file, which the main crate compiles
//! (and `cargo clippy --all-targets` checks), instead of only the fuzz crate, which CI
//! builds last. Each wrapper is thin: it must exercise exactly the code the gateway
//! runs.
#![doc(hidden)]

use std::path::Path;

use http::{HeaderMap, HeaderValue};

use crate::auth::jwt::TokenError;
use crate::auth::principal::Principal;
use crate::config::{Config, ConfigErrors};
use crate::middleware::cors::{CorsPolicy, OriginRule};
use crate::policy::path::PathError;
use crate::token::endpoint::{Form, OAuthError};

/// The canonical form of a raw request path (without its query), as the gateway
/// computes it by default (`server.reject_double_encoding = true`).
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    crate::policy::path::canonicalize_with(raw, true)
}

/// A request target split into path and raw query.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    crate::policy::path::split_target(target)
}

/// Configuration text → a validated `Config` or every problem found; `path` only names
/// the file in messages and anchors relative key-file paths.
pub fn parse_config(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    crate::config::parse_str(text, path)
}

/// Verifies a bearer token with the configuration's own keys (`[tokens]`).
/// `None` when the configuration has no `[tokens]`.
pub fn verify_own_token(config: &Config, token: &str) -> Option<Result<Principal, TokenError>> {
    config.tokens.as_ref().map(|v| v.verify(token))
}

/// The `/token` (and `/revoke`, `/register`) form parser.
pub fn parse_form(body: &[u8]) -> Result<Form, OAuthError> {
    Form::parse(body)
}

/// RFC 6749 §2.3 client authentication as `/token` runs it: the client id it accepted
/// and whether it authenticated with HTTP Basic, or the OAuth error code.
pub fn authenticate_client(
    config: &Config,
    authorization: Option<&[u8]>,
    form: &Form,
) -> Option<Result<(String, bool), &'static str>> {
    let svc = config.token_service.as_ref()?;
    let mut headers = HeaderMap::new();
    if let Some(v) = authorization.and_then(|a| HeaderValue::from_bytes(a).ok()) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    Some(
        crate::token::endpoint::authenticate_client(svc, &headers, form)
            .map(|(c, how)| {
                (
                    c.client_id.clone(),
                    how == crate::token::endpoint::ClientAuth::Basic,
                )
            })
            .map_err(|e| e.code),
    )
}

/// A CORS policy with these `allow_origins` entries (parsed as `check` parses them),
/// the default methods and headers.
pub fn cors_policy(origins: &[&str], credentials: bool) -> Result<CorsPolicy, String> {
    let rules = origins
        .iter()
        .map(|o| OriginRule::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    CorsPolicy::new(
        rules,
        vec![http::Method::GET, http::Method::POST],
        vec!["authorization".into(), "content-type".into()],
        vec!["x-request-id".into()],
        credentials,
        Some(600),
    )
}

/// The `Access-Control-Allow-Origin` a non-preflight answer gets for this `Origin`
/// header value, if any.
pub fn cors_grant(policy: &CorsPolicy, origin: &[u8]) -> Option<Vec<u8>> {
    let origin = HeaderValue::from_bytes(origin).ok()?;
    let mut h = HeaderMap::new();
    policy.decorate(Some(&origin), &mut h);
    h.get(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.as_bytes().to_vec())
}

/// A preflight's answer for these request headers: its status and its
/// `Access-Control-Allow-Origin`.
pub fn cors_preflight(policy: &CorsPolicy, headers: &HeaderMap) -> (u16, Option<Vec<u8>>) {
    match policy.preflight(headers) {
        Ok(resp) => (
            resp.status().as_u16(),
            resp.headers()
                .get(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.as_bytes().to_vec()),
        ),
        Err(e) => (e.parts().0.as_u16(), None),
    }
}
