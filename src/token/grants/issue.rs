//! What a grant hands out: a signed RFC 9068 access token, a stored refresh token
//! (only its SHA-256 digest is kept) and the RFC 6749 §5.1 response carrying them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{Response, StatusCode};
use ring::rand::SecureRandom as _;
use serde_json::{json, Value};

use super::{server_error, Ctx, OAuthError};
use crate::auth::api_key;
use crate::body::Body;
use crate::token::endpoint::no_store;
use crate::token::store::RefreshRecord;
use crate::token::{now_secs, TokenService};

/// `n` random bytes, URL-safe base64.
pub(super) fn random_b64(n: usize) -> Result<String, OAuthError> {
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| server_error("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// Signs an RFC 9068 access token; returns it with its lifetime in seconds.
pub(super) fn access_token(
    svc: &TokenService,
    subject: &str,
    client_id: &str,
    scopes: &[String],
    roles: &[String],
) -> Result<(String, u64), OAuthError> {
    let now = now_secs();
    let ttl = svc.access_ttl.as_secs();
    let claims = json!({
        "iss": svc.issuer,
        "sub": subject,
        "aud": svc.audience,
        "exp": now + i64::try_from(ttl).unwrap_or(i64::MAX / 2),
        "iat": now,
        "nbf": now,
        "jti": random_b64(16)?,
        "client_id": client_id,
        "scope": scopes.join(" "),
        "roles": roles,
    });
    let mut header = jsonwebtoken::Header::new(svc.signing.alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(svc.signing.kid.clone());
    let token =
        jsonwebtoken::encode(&header, &claims, &svc.signing.encoding).map_err(server_error)?;
    Ok((token, ttl))
}

/// Stores a new refresh token of `family` and returns it.
pub(super) async fn refresh_token(
    ctx: &Ctx<'_>,
    family: String,
    subject: &str,
    client_id: &str,
    scope: &str,
) -> Result<String, OAuthError> {
    let token = random_b64(32)?;
    let ttl = i64::try_from(ctx.svc.refresh_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    ctx.rt
        .store
        .insert_refresh(RefreshRecord {
            token_hash: api_key::hash(&token),
            family_id: family,
            subject: subject.to_string(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            expires_at: now_secs() + ttl,
        })
        .await
        .map_err(server_error)?;
    Ok(token)
}

/// RFC 6749 §5.1.
pub(super) fn success(
    access: (String, u64),
    refresh: Option<String>,
    scopes: &[String],
) -> Response<Body> {
    let mut body = json!({
        "access_token": access.0,
        "token_type": "Bearer",
        "expires_in": access.1,
        "scope": scopes.join(" "),
    });
    if let Some(r) = refresh {
        body["refresh_token"] = Value::String(r);
    }
    no_store(StatusCode::OK, &body)
}
