//! Client authentication at the token service (RFC 6749 §2.3): HTTP Basic, form
//! fields, or a public client by id (or the configured default client); secrets
//! compared as digests, without an early exit.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::{Form, OAuthError};
use crate::auth::api_key;
use crate::token::{Client, TokenService};

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with a secret.
    Basic,
    /// `client_id` + `client_secret` form fields.
    Post,
    /// A public client: `client_id` alone, or the configured default client.
    None,
}

/// RFC 6749 §2.3: which client this is. One method only; Basic credentials are
/// form-urlencoded before base64 (§2.3.1).
pub fn authenticate_client<'a>(
    svc: &'a TokenService,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(&'a Client, ClientAuth), OAuthError> {
    let basic = match headers.get(AUTHORIZATION) {
        Some(v) => {
            let s = v.to_str().unwrap_or("");
            let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "use HTTP Basic or client_id/client_secret",
                    true,
                ));
            }
            let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
            let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), unescape(secret)))
        }
        None => None,
    };
    if basic.is_some() && (form.get("client_secret").is_some()) {
        return Err(OAuthError::invalid_request(
            "use one client authentication method only",
        ));
    }
    let (id, secret, method) = match (&basic, form.get("client_id"), form.get("client_secret")) {
        (Some((id, secret)), form_id, _) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Basic credentials",
                ));
            }
            (Some(id.as_str()), Some(secret.as_str()), ClientAuth::Basic)
        }
        (None, Some(id), Some(secret)) => (Some(id), Some(secret), ClientAuth::Post),
        (None, Some(id), None) => (Some(id), None, ClientAuth::None),
        (None, None, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "client_secret without client_id",
            ))
        }
        (None, None, None) => (None, None, ClientAuth::None),
    };
    let basic_used = method == ClientAuth::Basic;
    let unknown = || OAuthError::invalid_client("client authentication failed", basic_used);
    let client = match id {
        Some(id) => svc.clients.get(id).ok_or_else(unknown)?,
        None => svc
            .default_client
            .as_ref()
            .and_then(|d| svc.clients.get(d))
            .ok_or(OAuthError::invalid_client(
                "client authentication is required",
                false,
            ))?,
    };
    match (&client.secret_sha256, secret) {
        (Some(expected), Some(given)) => {
            let given = api_key::hash(given);
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                return Err(unknown());
            }
        }
        // A confidential client must authenticate.
        (Some(_), None) => return Err(unknown()),
        // A public client has no secret to present.
        (None, Some(_)) => return Err(unknown()),
        (None, None) => {}
    }
    Ok((client, method))
}

/// Compares two digests without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
