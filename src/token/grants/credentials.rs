//! What a login needs besides the password check itself: the user (static or stored),
//! the process's bounded hashing gate, and the counted login attempt.
//!
//! Attempts are counted *before* the password is verified, on every login policy, so
//! that concurrent guesses can never exceed a budget; they are refunded when the
//! attempt succeeds or was never really tried.

use std::net::IpAddr;

use http::HeaderMap;

use super::{gate_error, server_error, Ctx, OAuthError};
use crate::ratelimit::{KeyInput, Policy};

/// One counted login attempt. Both policies are counted before the password is
/// checked — so concurrent guesses can never exceed the budget — and given back when
/// the attempt succeeds or was never tried ([`Attempt::refund`]): in effect only failed
/// attempts count. Dropped without a refund, it stays counted (a failure).
pub(crate) struct Attempt<'a> {
    policies: Vec<&'a Policy>,
    input: KeyInput<'a>,
}

pub(crate) fn key_input<'a>(ip: IpAddr, username: &'a str, headers: &'a HeaderMap) -> KeyInput<'a> {
    KeyInput {
        ip,
        issuer: None,
        subject: None,
        client_id: None,
        route: "token",
        headers,
        username: Some(username),
    }
}

impl<'a> Attempt<'a> {
    /// Counts the attempt on each policy in turn (per IP first: a flood from one
    /// address then stops adding per-username keys); a refusal gives back what the
    /// earlier ones counted.
    pub(crate) async fn begin(
        policies: &[&'a Policy],
        input: KeyInput<'a>,
    ) -> Result<Attempt<'a>, OAuthError> {
        let mut counted = Attempt {
            policies: Vec::new(),
            input,
        };
        for p in policies {
            if let Err(secs) = p.check(&counted.input).await {
                counted.refund().await;
                return Err(OAuthError {
                    policy: Some((p.name.clone(), p.policy_header())),
                    ..OAuthError::rate_limited(secs)
                });
            }
            counted.policies.push(p);
        }
        Ok(counted)
    }

    pub(crate) async fn refund(self) {
        for p in &self.policies {
            p.refund(&self.input).await;
        }
    }
}

/// Runs `work` (a password hash or verification) through the process's hashing gate.
pub(crate) async fn hash_work<T: Send + 'static>(
    ctx: &Ctx<'_>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OAuthError> {
    let admission = ctx.rt.gate.admit().map_err(gate_error)?;
    let pool = ctx.rt.store.handle().map_err(server_error)?;
    ctx.rt
        .gate
        .run(admission, &pool, work)
        .await
        .map_err(gate_error)
}

/// A user as the grants see one: from the config (static) or the store.
pub(crate) struct User {
    pub(crate) username: String,
    pub(crate) password_hash: String,
    pub(crate) roles: Vec<String>,
    pub(crate) disabled: bool,
    pub(crate) stored: bool,
    pub(crate) email: Option<String>,
}

pub(crate) async fn find_user(ctx: &Ctx<'_>, username: &str) -> Result<Option<User>, OAuthError> {
    if let Some(u) = ctx.svc.static_users.get(username) {
        return Ok(Some(User {
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            roles: u.roles.clone(),
            disabled: false,
            stored: false,
            email: None,
        }));
    }
    let found = ctx
        .rt
        .store
        .find_user(username)
        .await
        .map_err(server_error)?;
    Ok(found.map(|u| User {
        username: u.username,
        password_hash: u.password_hash,
        roles: u.roles,
        disabled: u.disabled,
        stored: true,
        email: u.email,
    }))
}
