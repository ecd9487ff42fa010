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
pub(crate) fn random_b64(n: usize) -> Result<String, OAuthError> {
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| server_error("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// A signed access token.
pub(crate) struct Access {
    pub(crate) token: String,
    /// Lifetime in seconds.
    pub(crate) ttl: u64,
    pub(crate) jti: String,
    /// `exp`, seconds since the epoch.
    pub(crate) exp: i64,
}

/// Who an access token is for and how it was obtained.
pub(crate) struct Subject<'a> {
    pub(crate) subject: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) roles: &'a [String],
    /// The grant (`gty`): `password`, `authorization_code`, `refresh_token`…
    pub(crate) grant: crate::token::Grant,
}

/// Signs an RFC 9068 access token, with the users' `azp` (the client) and `gty`
/// (the grant) claims beside `client_id`.
pub(crate) fn access_token(svc: &TokenService, s: &Subject<'_>) -> Result<Access, OAuthError> {
    let now = now_secs();
    let ttl = svc.access_ttl.as_secs();
    let exp = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
    let jti = random_b64(16)?;
    let claims = json!({
        "iss": svc.issuer,
        "sub": s.subject,
        "aud": svc.audience,
        "exp": exp,
        "iat": now,
        "nbf": now,
        "jti": jti,
        "client_id": s.client_id,
        "azp": s.client_id,
        "gty": s.grant.as_str(),
        "scope": s.scopes.join(" "),
        "roles": s.roles,
    });
    let mut header = jsonwebtoken::Header::new(svc.signing.alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(svc.signing.kid.clone());
    let token =
        jsonwebtoken::encode(&header, &claims, &svc.signing.encoding).map_err(server_error)?;
    Ok(Access {
        token,
        ttl,
        jti,
        exp,
    })
}

/// Stores a new refresh token of `family` and returns it.
pub(crate) async fn refresh_token(
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
pub(crate) fn success(
    access: &Access,
    refresh: Option<String>,
    scopes: &[String],
) -> Response<Body> {
    no_store(StatusCode::OK, &success_body(access, refresh, scopes))
}

/// The RFC 6749 §5.1 body (an OIDC answer adds `id_token`).
pub(crate) fn success_body(access: &Access, refresh: Option<String>, scopes: &[String]) -> Value {
    let mut body = json!({
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.ttl,
        "scope": scopes.join(" "),
    });
    if let Some(r) = refresh {
        body["refresh_token"] = Value::String(r);
    }
    body
}
