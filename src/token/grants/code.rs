//! The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6) and the OpenID
//! Connect id_token it returns when `openid` was granted.
//!
//! A code is claimed atomically and once. Presenting it again revokes what the first
//! redemption issued (its refresh-token family and its access token's `jti`), as RFC
//! 6749 §4.1.2 asks. The code must have been issued to the authenticated client, for
//! the same `redirect_uri`; the PKCE verifier must match the S256 challenge, and a
//! verifier sent for a code issued without a challenge is refused (a PKCE downgrade,
//! RFC 9700 §2.1.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use super::credentials::{find_user, User};
use super::issue::{access_token, refresh_token, success_body, Subject};
use super::{server_error, Client, ClientAuth, Ctx, Grant, OAuthError};
use crate::auth::api_key;
use crate::body::Body;
use crate::token::endpoint::{no_store, Form};
use crate::token::store::{CodeRecord, Redemption};
use crate::token::{now_secs, TokenService};

pub(super) async fn code_grant(
    ctx: &Ctx<'_>,
    client: &Client,
    _auth: ClientAuth,
    _headers: &HeaderMap,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let code = form.require("code", "code is missing")?;
    let hash = api_key::hash(code);
    let rec = match ctx
        .rt
        .store
        .redeem_code(&hash, &client.client_id)
        .await
        .map_err(server_error)?
    {
        Redemption::Claimed(rec) => rec,
        Redemption::OtherClient => {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ))
        }
        Redemption::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the code is invalid or has expired",
            ))
        }
        Redemption::Reused { family_id, access } => {
            ctx.rt
                .store
                .revoke_family(&family_id)
                .await
                .map_err(server_error)?;
            if let Some((jti, exp)) = access {
                ctx.rt
                    .store
                    .revoke_jti(&jti, exp)
                    .await
                    .map_err(server_error)?;
                ctx.rt.deny.insert(&jti, exp);
            }
            tracing::warn!(client = %client.client_id, "an authorization code was presented twice: what it issued is revoked");
            return Err(OAuthError::invalid_grant(
                "the code was used before; the tokens it gave are revoked",
            ));
        }
    };
    check_binding(&rec, client, form)?;
    let user = match find_user(ctx, &rec.subject).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(OAuthError::invalid_grant("the user can no longer sign in")),
    };
    let scopes: Vec<String> = rec.scope.split_whitespace().map(str::to_string).collect();
    let access = access_token(
        ctx.svc,
        &Subject {
            subject: &user.username,
            client_id: &client.client_id,
            scopes: &scopes,
            roles: &user.roles,
            grant: Grant::AuthorizationCode,
        },
    )?;
    ctx.rt
        .store
        .code_issued(&hash, &access.jti, access.exp)
        .await
        .map_err(server_error)?;
    let refresh = if client.grants.contains(&Grant::RefreshToken) {
        Some(
            refresh_token(
                ctx,
                rec.family_id.clone(),
                &user.username,
                &client.client_id,
                &rec.scope,
            )
            .await?,
        )
    } else {
        None
    };
    let mut body = success_body(&access, refresh, &scopes);
    if scopes.iter().any(|s| s == "openid") {
        let id = id_token(
            ctx.svc,
            &client.client_id,
            &rec,
            &access.token,
            &user,
            &scopes,
        )?;
        body["id_token"] = Value::String(id);
    }
    tracing::info!(user = %user.username, client = %client.client_id, "token issued (authorization code)");
    Ok(no_store(StatusCode::OK, &body))
}

/// The code is this client's, for this redirect URI, and the PKCE verifier matches.
fn check_binding(rec: &CodeRecord, client: &Client, form: &Form) -> Result<(), OAuthError> {
    if rec.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    match form.get("redirect_uri") {
        Some(r) if r != rec.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ))
        }
        None if rec.redirect_given => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is missing (the authorization request had one)",
            ))
        }
        _ => {}
    }
    match (rec.code_challenge.is_empty(), form.get("code_verifier")) {
        (false, None) => Err(OAuthError::invalid_grant("code_verifier is missing")),
        (false, Some(v)) if !verifier_matches(v, &rec.code_challenge) => Err(
            OAuthError::invalid_grant("the code_verifier does not match the code_challenge"),
        ),
        (true, Some(_)) => Err(OAuthError::invalid_grant(
            "a code_verifier was sent for a code issued without code_challenge",
        )),
        _ => Ok(()),
    }
}

/// RFC 7636 §4.1 syntax (43–128 unreserved characters) and §4.6 S256.
pub(crate) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let syntax = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    syntax && computed.len() == challenge.len() && computed == challenge
}

/// OIDC Core §3.1.3.6: the left half of the hash of `token`, with the hash the
/// signing algorithm uses (SHA-256 for RS256/ES256/HS256, SHA-512 for Ed25519).
pub(crate) fn half_hash(alg: jsonwebtoken::Algorithm, token: &str) -> String {
    let algo = if alg == jsonwebtoken::Algorithm::EdDSA {
        &ring::digest::SHA512
    } else {
        &ring::digest::SHA256
    };
    let d = ring::digest::digest(algo, token.as_bytes());
    let d = d.as_ref();
    URL_SAFE_NO_PAD.encode(&d[..d.len() / 2])
}

/// A signed OIDC id_token for the user a code was issued for.
fn id_token(
    svc: &TokenService,
    client_id: &str,
    rec: &CodeRecord,
    access: &str,
    user: &User,
    scopes: &[String],
) -> Result<String, OAuthError> {
    let now = now_secs();
    let ttl = i64::try_from(svc.access_ttl.as_secs()).unwrap_or(900);
    let mut claims = json!({
        "iss": svc.issuer,
        "sub": user.username,
        "aud": client_id,
        "azp": client_id,
        "exp": now + ttl,
        "iat": now,
        "auth_time": rec.auth_time,
        "at_hash": half_hash(svc.signing.alg, access),
    });
    if !rec.nonce.is_empty() {
        claims["nonce"] = Value::String(rec.nonce.clone());
    }
    add_profile_claims(&mut claims, user, scopes);
    let mut header = jsonwebtoken::Header::new(svc.signing.alg);
    header.kid = Some(svc.signing.kid.clone());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, &claims, &svc.signing.encoding).map_err(server_error)
}

/// The claims `profile` and `email` give (in the id_token and at `/userinfo`).
pub(crate) fn add_profile_claims(claims: &mut Value, user: &User, scopes: &[String]) {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        claims["preferred_username"] = Value::String(user.username.clone());
        claims["roles"] = json!(user.roles);
    }
    if has("email") {
        if let Some(e) = &user.email {
            claims["email"] = Value::String(e.clone());
            claims["email_verified"] = Value::Bool(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_as_rfc_7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(v, c));
        assert!(!verifier_matches(
            v,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        // "plain" (the verifier as its own challenge) never matches.
        assert!(!verifier_matches(v, v));
        assert!(!verifier_matches("short", c));
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // Computed independently: base64url(sha256(t)[:16]) and base64url(sha512(t)[:32])
        // with Python's hashlib.
        let t = "an-access-token";
        assert_eq!(
            half_hash(jsonwebtoken::Algorithm::ES256, t),
            "YiHPD2T9DaX5B837XJXtow"
        );
        assert_eq!(
            half_hash(jsonwebtoken::Algorithm::RS256, t),
            "YiHPD2T9DaX5B837XJXtow"
        );
        assert_eq!(
            half_hash(jsonwebtoken::Algorithm::EdDSA, t),
            "nM_8k04LoVPQDh1346b6eHC5pCiIJeMDBg3Dhz6Pbt4"
        );
    }
}
