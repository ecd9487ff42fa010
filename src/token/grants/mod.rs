//! The grants (RFC 6749 §4.3, §4.4, §6), revocation (RFC 7009) and registration.
//!
//! Who may get which scopes: a user's roles map to scopes through `[roles]`; a
//! client's `scopes` (when listed) bound what it may obtain. A requested scope outside
//! that set is dropped (`scope_policy = "narrow"`, the default; the response's `scope`
//! shows what was granted) or refused with `invalid_scope` (`"reject"`).
//!
//! Login failures never tell an unknown user from a wrong password or a disabled
//! account: the same `invalid_grant` text, and the same argon2 work (a dummy hash is
//! verified for unknown users).
//!
//! One file per grant (`password`, `refresh`; client_credentials, a few lines, is
//! here beside the dispatcher), one for revocation and one for registration; what
//! they share sits in `scope` (which scopes to grant), `credentials` (users, the
//! hashing gate and counted login attempts) and `issue` (signing and storing what a
//! grant hands out).

pub(crate) mod code;
pub(crate) mod credentials;
pub(crate) mod issue;
pub(crate) mod password;
mod refresh;
mod register;
mod revoke;
pub(crate) mod scope;

use std::collections::HashMap;
use std::net::IpAddr;

use http::{HeaderMap, Response, StatusCode};

use super::endpoint::{authenticate, ClientAuth, Form, OAuthError};
use super::hashing::GateError;
use super::{Client, Grant, TokenRuntime, TokenService};
use crate::auth::jwt::Verifier;
use crate::body::Body;
use crate::ratelimit::Policy;

use code::code_grant;
use issue::{access_token, success, Subject};
use password::password_grant;
use refresh::refresh_grant;
pub use register::{register, valid_username};
pub use revoke::revoke;
use scope::{grant_scopes, parse_scope};

/// What a grant needs from the request's surroundings.
pub(crate) struct Ctx<'a> {
    pub svc: &'a TokenService,
    pub rt: &'a TokenRuntime,
    pub roles: &'a HashMap<String, Vec<String>>,
    pub verifier: Option<&'a Verifier>,
    pub client_ip: IpAddr,
    /// `[rate_limits.login]` (default: client IP + username, `[tokens] login_rate`).
    pub login: &'a Policy,
    /// `[rate_limits.login_ip]` (default: client IP, `[tokens] login_ip_rate`).
    pub login_ip: &'a Policy,
}

pub(crate) const BAD_CREDENTIALS: &str = "the username or password is incorrect";

pub(crate) fn server_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "token service failure");
    OAuthError::server_error()
}

fn gate_error(e: GateError) -> OAuthError {
    match e {
        GateError::Busy => {
            tracing::warn!("password hashing at capacity: 503");
            OAuthError::busy()
        }
        GateError::Failed(e) => server_error(e),
    }
}

/// `POST /token`, counted in `portcullis_token_grants_total{grant_type, outcome}`
/// (the outcome is `success` or the RFC 6749 error code).
pub async fn token(
    ctx: &Ctx<'_>,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let out = grant(ctx, headers, form).await;
    let grant_type = match form.get("grant_type") {
        Some(g) => Grant::parse(g).map_or("other", Grant::as_str),
        None => "none",
    };
    let outcome = out.as_ref().map_or_else(|e| e.code, |_| "success");
    crate::metrics::metrics()
        .grants
        .get_or_create(&crate::metrics::GrantLabels {
            grant_type,
            outcome,
        })
        .inc();
    out
}

async fn grant(
    ctx: &Ctx<'_>,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let grant = match form.get("grant_type") {
        Some(g) => g,
        None if !ctx.svc.require_grant_type
            && form.get("username").is_some()
            && form.get("password").is_some() =>
        {
            "password"
        }
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
    };
    let (client, auth) = authenticate(ctx.svc, ctx.rt, headers, form).await?;
    let client = &client;
    // A grant the server does not serve is unsupported whichever client asks (even
    // one whose `grants` lists it).
    let grant = Grant::parse(grant)
        .filter(|g| ctx.svc.grants.contains(g))
        .ok_or(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this grant type is not served here; see grant_types_supported in the server metadata",
        ))?;
    if !client.grants.contains(&grant) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this client may not use this grant type",
        ));
    }
    match grant {
        Grant::Password => password_grant(ctx, client, form).await,
        Grant::RefreshToken => refresh_grant(ctx, client, form).await,
        Grant::ClientCredentials => client_credentials_grant(ctx, client, auth, form),
        Grant::AuthorizationCode => code_grant(ctx, client, auth, headers, form).await,
    }
}

fn client_credentials_grant(
    ctx: &Ctx<'_>,
    client: &Client,
    auth: ClientAuth,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    if auth == ClientAuth::None {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "client_credentials needs a confidential client",
        ));
    }
    let requested = parse_scope(form.get("scope"))?;
    let scopes = grant_scopes(ctx.svc.scope_policy, &requested, &client.scopes)?;
    let access = access_token(
        ctx.svc,
        &Subject {
            subject: &client.client_id,
            client_id: &client.client_id,
            scopes: &scopes,
            roles: &[],
            grant: Grant::ClientCredentials,
        },
    )?;
    Ok(success(&access, None, &scopes))
}
