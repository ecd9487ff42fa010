//! The password grant (RFC 6749 §4.3): a counted attempt, the user looked up, the
//! password verified through the hashing gate (a dummy hash for unknown users, so
//! timing tells nothing), an old hash upgraded, and the tokens issued.

use http::{HeaderMap, Response};

use super::credentials::{find_user, hash_work, key_input, Attempt, User};
use super::issue::{access_token, random_b64, refresh_token, success, Subject};
use super::scope::{grant_scopes, parse_scope, within_client};
use super::{valid_username, Client, Ctx, Grant, OAuthError, TokenService, BAD_CREDENTIALS};
use crate::body::Body;
use crate::token::endpoint::{Form, MAX_PASSWORD_BYTES};
use crate::token::password::Verdict;

pub(super) async fn password_grant(
    ctx: &Ctx<'_>,
    client: &Client,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let username = form.require("username", "username is missing")?;
    let password = form.require("password", "password is missing")?;
    let requested = parse_scope(form.get("scope"))?;
    let user = verify_login(ctx, username, password).await?;
    let allowed = within_client(TokenService::role_scopes(&user.roles, ctx.roles), client);
    let scopes = grant_scopes(ctx.svc.scope_policy, &requested, &allowed)?;
    let access = access_token(
        ctx.svc,
        &Subject {
            subject: &user.username,
            client_id: &client.client_id,
            scopes: &scopes,
            roles: &user.roles,
            grant: Grant::Password,
        },
    )?;
    let refresh = if client.grants.contains(&Grant::RefreshToken) {
        let family = random_b64(16)?;
        Some(
            refresh_token(
                ctx,
                family,
                &user.username,
                &client.client_id,
                &scopes.join(" "),
            )
            .await?,
        )
    } else {
        None
    };
    tracing::info!(user = %user.username, client = %client.client_id, "token issued (password grant)");
    Ok(success(&access, refresh, &scopes))
}

/// A counted login attempt (both login policies), the user looked up and the password
/// verified through the hashing gate; an outdated hash is upgraded. Every failure is
/// the same `invalid_grant` text, whatever failed. Used by the password grant and the
/// login page.
pub(crate) async fn verify_login(
    ctx: &Ctx<'_>,
    username: &str,
    password: &str,
) -> Result<User, OAuthError> {
    // Before anything else: no such user can exist, so no limiter key, no store
    // lookup and no hashing is spent on it.
    if !valid_username(username) {
        return Err(OAuthError::invalid_grant(BAD_CREDENTIALS));
    }
    let headers = HeaderMap::new();
    let attempt = Attempt::begin(
        &[ctx.login_ip, ctx.login],
        key_input(ctx.client_ip, username, &headers),
    )
    .await?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(OAuthError::invalid_grant(BAD_CREDENTIALS));
    }
    let user = match find_user(ctx, username).await {
        Ok(u) => u,
        Err(e) => {
            attempt.refund().await;
            return Err(e);
        }
    };
    let hasher = ctx.svc.hasher.clone();
    let (pw, stored) = (
        password.to_string(),
        user.as_ref().map(|u| u.password_hash.clone()),
    );
    let verdict = hash_work(ctx, move || match stored {
        // "!external" (a user made by external sign-in) has no password: the same
        // work as an unknown user, so timing does not tell it apart.
        Some(h) if h.starts_with('$') => hasher.verify(&pw, &h),
        Some(_) => hasher.verify_unknown_user(&pw),
        None => hasher.verify_unknown_user(&pw),
    })
    .await;
    let verdict = match verdict {
        Ok(v) => v,
        // Busy or failed: not the caller's guess, so not counted.
        Err(e) => {
            attempt.refund().await;
            return Err(e);
        }
    };
    let user = match (user, verdict) {
        (Some(u), Verdict::Valid | Verdict::ValidNeedsRehash) if !u.disabled => u,
        (Some(u), _) => {
            tracing::info!(user = %u.username, disabled = u.disabled, "login refused");
            return Err(OAuthError::invalid_grant(BAD_CREDENTIALS));
        }
        (None, _) => {
            tracing::info!("login refused: unknown user");
            return Err(OAuthError::invalid_grant(BAD_CREDENTIALS));
        }
    };
    // A successful login is not counted against the user or the address.
    attempt.refund().await;
    if verdict == Verdict::ValidNeedsRehash && user.stored {
        let (hasher, pw) = (ctx.svc.hasher.clone(), password.to_string());
        match hash_work(ctx, move || hasher.hash(&pw)).await {
            Ok(Ok(new)) => match ctx
                .rt
                .store
                .upgrade_password_hash(&user.username, &user.password_hash, &new)
                .await
            {
                Ok(_) => {
                    tracing::info!(user = %user.username, "password hash upgraded to argon2id")
                }
                Err(e) => tracing::warn!(error = %e, "password hash upgrade failed"),
            },
            // Busy: the upgrade waits for the next login.
            Err(_) => tracing::info!("password hash upgrade postponed: hashing at capacity"),
            Ok(Err(e)) => tracing::warn!(error = %e, "password hash upgrade failed"),
        }
    }
    Ok(user)
}
