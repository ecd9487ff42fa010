//! `POST /register`: self-registration with the default roles only, and the username
//! syntax every user name follows.
//!
//! Every registration costs a password hash, so each one is counted per client IP on
//! the login policy.

use http::{HeaderMap, Response, StatusCode};
use serde_json::json;

use super::credentials::{hash_work, key_input, Attempt};
use super::{server_error, Ctx, OAuthError};
use crate::body::Body;
use crate::token::endpoint::{no_store, Form, MAX_PASSWORD_BYTES};

/// `POST /register`: a new user with the default roles; the client never picks roles.
pub async fn register(ctx: &Ctx<'_>, form: &Form) -> Result<Response<Body>, OAuthError> {
    let Some(reg) = &ctx.svc.registration else {
        return Err(OAuthError::invalid_request("registration is disabled"));
    };
    let username = form.require("username", "username is missing")?;
    let password = form.require("password", "password is missing")?;
    if form.get("roles").is_some() || form.get("role").is_some() || form.get("scope").is_some() {
        return Err(OAuthError::invalid_request(
            "roles cannot be chosen at registration",
        ));
    }
    if !valid_username(username) {
        return Err(OAuthError::invalid_request(
            "a username has 3 to 64 characters: letters, digits, '.', '_', '-', '@'",
        ));
    }
    if password.chars().count() < reg.min_password_length || password.len() > MAX_PASSWORD_BYTES {
        return Err(OAuthError::invalid_request(
            "the password is too short or too long",
        ));
    }
    // Every registration costs a hash: all are counted, per client IP, on the login
    // policy (under a name no username can have).
    let headers = HeaderMap::new();
    let _counted = Attempt::begin(
        &[ctx.login],
        key_input(ctx.client_ip, "\u{1f}register", &headers),
    )
    .await?;
    if ctx.svc.static_users.contains_key(username) {
        return Err(OAuthError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "this username is taken",
        ));
    }
    let (hasher, pw) = (ctx.svc.hasher.clone(), password.to_string());
    let hash = hash_work(ctx, move || hasher.hash(&pw))
        .await?
        .map_err(server_error)?;
    let created = ctx
        .rt
        .store
        .add_user(username, &hash, &reg.default_roles)
        .await
        .map_err(server_error)?;
    if !created {
        return Err(OAuthError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "this username is taken",
        ));
    }
    tracing::info!(user = %username, "user registered");
    Ok(no_store(
        StatusCode::CREATED,
        &json!({"username": username, "roles": reg.default_roles}),
    ))
}

/// 3–64 of `[A-Za-z0-9._@-]`.
pub fn valid_username(u: &str) -> bool {
    (3..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("johndoe"));
        assert!(valid_username("a.b-c_d@example.com"));
        for bad in ["ab", "a b", "x\u{0}y", "robert'); DROP", &"a".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }
}
