//! `POST /revoke` (RFC 7009): a refresh token revokes its whole family; an access
//! token is revoked by `jti` (in the store and the in-process deny-list).
//!
//! The answer never tells whether the token was known, valid or another client's.

use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use super::{authenticate, server_error, Ctx, OAuthError};
use crate::auth::api_key;
use crate::body::Body;
use crate::token::endpoint::{no_store, Form};

/// `POST /revoke` (RFC 7009): always `200` unless the client fails to authenticate or
/// the request is malformed; a token that is unknown, invalid or another client's is
/// left alone without saying so.
pub async fn revoke(
    ctx: &Ctx<'_>,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let (client, _) = authenticate(ctx.svc, ctx.rt, headers, form).await?;
    let token = form.require("token", "token is missing")?;
    let hint = form.get("token_type_hint");
    let ok = || Ok(no_store(StatusCode::OK, &json!({})));
    let try_refresh = || async {
        let digest = api_key::hash(token);
        match ctx
            .rt
            .store
            .find_refresh(&digest)
            .await
            .map_err(server_error)?
        {
            Some(r) if r.client_id == client.client_id => {
                ctx.rt
                    .store
                    .revoke_family(&r.family_id)
                    .await
                    .map_err(server_error)?;
                tracing::info!(client = %client.client_id, "refresh token family revoked");
                Ok::<bool, OAuthError>(true)
            }
            Some(_) => Ok(true),
            None => Ok(false),
        }
    };
    if hint != Some("access_token") && try_refresh().await? {
        return ok();
    }
    if let Some(v) = ctx.verifier {
        if let Ok(p) = v.verify(token) {
            let jti = p.claims.get("jti").and_then(Value::as_str);
            let exp = i64::try_from(p.expires_at).unwrap_or(i64::MAX);
            if let (Some(jti), true) = (
                jti,
                p.client_id.as_deref() == Some(client.client_id.as_str()),
            ) {
                ctx.rt
                    .store
                    .revoke_jti(jti, exp)
                    .await
                    .map_err(server_error)?;
                ctx.rt.deny.insert(jti, exp);
                tracing::info!(client = %client.client_id, "access token revoked");
            }
            return ok();
        }
    }
    if hint == Some("access_token") {
        let _ = try_refresh().await?;
    }
    ok()
}
