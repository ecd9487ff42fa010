//! The refresh_token grant (RFC 6749 §6): rotation on every use, reuse revokes the
//! whole family, never more scope than first granted, and the user re-checked (a
//! disabled or removed user's family is revoked).

use http::Response;

use super::credentials::find_user;
use super::issue::{access_token, refresh_token, success, Subject};
use super::scope::{is_identity_scope, parse_scope, within_client};
use super::{server_error, Client, Ctx, Grant, OAuthError, TokenService};
use crate::auth::api_key;
use crate::body::Body;
use crate::token::endpoint::Form;
use crate::token::store::Rotation;

pub(super) async fn refresh_grant(
    ctx: &Ctx<'_>,
    client: &Client,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let presented = form.require("refresh_token", "refresh_token is missing")?;
    let requested = parse_scope(form.get("scope"))?;
    let digest = api_key::hash(presented);
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    // Issued to another client, or asked for more than it grants: refused without
    // consuming it (§6: never more scope than originally granted).
    let original: Vec<String> = match ctx
        .rt
        .store
        .find_refresh(&digest)
        .await
        .map_err(server_error)?
    {
        Some(r) if r.client_id == client.client_id => r
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => return Err(invalid()),
    };
    if requested.iter().any(|s| !original.contains(s)) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds the original grant",
        ));
    }
    let record = match ctx
        .rt
        .store
        .rotate_refresh(&digest)
        .await
        .map_err(server_error)?
    {
        Rotation::Rotated(r) => r,
        Rotation::Reused => {
            tracing::warn!(client = %client.client_id, "refresh token reused: its family is revoked");
            return Err(invalid());
        }
        Rotation::Unknown | Rotation::Expired | Rotation::Revoked => return Err(invalid()),
    };
    // The user may have been disabled, removed or given other roles meanwhile.
    let user = match find_user(ctx, &record.subject).await? {
        Some(u) if !u.disabled => u,
        _ => {
            let _ = ctx.rt.store.revoke_family(&record.family_id).await;
            return Err(invalid());
        }
    };
    let now_allowed = within_client(TokenService::role_scopes(&user.roles, ctx.roles), client);
    let scopes: Vec<String> = if requested.is_empty() {
        original.clone()
    } else {
        requested
    }
    .into_iter()
    // OpenID scopes (`openid`, `profile`…) are not role scopes: they stay as granted.
    .filter(|s| now_allowed.contains(s) || is_identity_scope(s))
    .collect();
    let access = access_token(
        ctx.svc,
        &Subject {
            subject: &user.username,
            client_id: &client.client_id,
            scopes: &scopes,
            roles: &user.roles,
            grant: Grant::RefreshToken,
        },
    )?;
    let refresh = refresh_token(
        ctx,
        record.family_id,
        &user.username,
        &client.client_id,
        &record.scope,
    )
    .await?;
    Ok(success(&access, Some(refresh), &scopes))
}
