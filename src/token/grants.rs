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

use std::collections::HashMap;
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, Response, StatusCode};
use ring::rand::SecureRandom as _;
use serde_json::{json, Value};

use super::endpoint::{
    authenticate_client, no_store, ClientAuth, Form, OAuthError, MAX_PASSWORD_BYTES,
};
use super::hashing::GateError;
use super::password::Verdict;
use super::store::{RefreshRecord, Rotation};
use super::{now_secs, Client, Grant, ScopePolicy, TokenRuntime, TokenService};
use crate::auth::api_key;
use crate::auth::jwt::Verifier;
use crate::body::Body;
use crate::middleware::rate_limit::{KeyInput, Policy};

/// What a grant needs from the request's surroundings.
pub struct Ctx<'a> {
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

/// One counted login attempt. Both policies are counted before the password is
/// checked — so concurrent guesses can never exceed the budget — and given back when
/// the attempt succeeds or was never tried ([`Attempt::refund`]): in effect only failed
/// attempts count. Dropped without a refund, it stays counted (a failure).
struct Attempt<'a> {
    policies: Vec<&'a Policy>,
    input: KeyInput<'a>,
}

fn key_input<'a>(ip: IpAddr, username: &'a str, headers: &'a HeaderMap) -> KeyInput<'a> {
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
    async fn begin(
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

    async fn refund(self) {
        for p in &self.policies {
            p.refund(&self.input).await;
        }
    }
}

const BAD_CREDENTIALS: &str = "the username or password is incorrect";

fn server_error(e: impl std::fmt::Display) -> OAuthError {
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

/// Runs `work` (a password hash or verification) through the process's hashing gate.
async fn hash_work<T: Send + 'static>(
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

/// `n` random bytes, URL-safe base64.
fn random_b64(n: usize) -> Result<String, OAuthError> {
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| server_error("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, space-separated.
fn parse_scope(s: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for t in s.unwrap_or("").split(' ').filter(|t| !t.is_empty()) {
        if !t
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return Err(OAuthError::invalid_scope(
                "a scope contains a forbidden character",
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// The scopes to grant: the request within `allowed` (all of `allowed` when nothing is
/// requested), by the scope policy.
fn grant_scopes(
    policy: ScopePolicy,
    requested: &[String],
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(allowed.to_vec());
    }
    let granted: Vec<String> = requested
        .iter()
        .filter(|s| allowed.contains(s))
        .cloned()
        .collect();
    if granted.len() < requested.len() && policy == ScopePolicy::Reject {
        return Err(OAuthError::invalid_scope(
            "a requested scope is not available to this user or client",
        ));
    }
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes is available to this user or client",
        ));
    }
    Ok(granted)
}

/// Narrows `scopes` to what a client may obtain (no list = no limit).
fn within_client(scopes: Vec<String>, client: &Client) -> Vec<String> {
    if client.scopes.is_empty() {
        scopes
    } else {
        scopes
            .into_iter()
            .filter(|s| client.scopes.contains(s))
            .collect()
    }
}

/// A user as the grants see one: from the config (static) or the store.
struct User {
    username: String,
    password_hash: String,
    roles: Vec<String>,
    disabled: bool,
    stored: bool,
}

async fn find_user(ctx: &Ctx<'_>, username: &str) -> Result<Option<User>, OAuthError> {
    if let Some(u) = ctx.svc.static_users.get(username) {
        return Ok(Some(User {
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            roles: u.roles.clone(),
            disabled: false,
            stored: false,
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
    }))
}

/// Signs an RFC 9068 access token; returns it with its lifetime in seconds.
fn access_token(
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
async fn refresh_token(
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
fn success(access: (String, u64), refresh: Option<String>, scopes: &[String]) -> Response<Body> {
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

/// `POST /token`.
pub async fn token(
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
    let (client, auth) = authenticate_client(ctx.svc, headers, form)?;
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
    }
}

async fn password_grant(
    ctx: &Ctx<'_>,
    client: &Client,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let username = form.require("username", "username is missing")?;
    let password = form.require("password", "password is missing")?;
    // Before anything else: no such user can exist, so no limiter key, no store
    // lookup and no hashing is spent on it.
    if !valid_username(username) {
        return Err(OAuthError::invalid_grant(BAD_CREDENTIALS));
    }
    let requested = parse_scope(form.get("scope"))?;
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
        Some(h) => hasher.verify(&pw, &h),
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
    let allowed = within_client(TokenService::role_scopes(&user.roles, ctx.roles), client);
    let scopes = grant_scopes(ctx.svc.scope_policy, &requested, &allowed)?;
    let access = access_token(
        ctx.svc,
        &user.username,
        &client.client_id,
        &scopes,
        &user.roles,
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
    Ok(success(access, refresh, &scopes))
}

async fn refresh_grant(
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
    .filter(|s| now_allowed.contains(s))
    .collect();
    let access = access_token(
        ctx.svc,
        &user.username,
        &client.client_id,
        &scopes,
        &user.roles,
    )?;
    let refresh = refresh_token(
        ctx,
        record.family_id,
        &user.username,
        &client.client_id,
        &record.scope,
    )
    .await?;
    Ok(success(access, Some(refresh), &scopes))
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
    let access = access_token(ctx.svc, &client.client_id, &client.client_id, &scopes, &[])?;
    Ok(success(access, None, &scopes))
}

/// `POST /revoke` (RFC 7009): always `200` unless the client fails to authenticate or
/// the request is malformed; a token that is unknown, invalid or another client's is
/// left alone without saying so.
pub async fn revoke(
    ctx: &Ctx<'_>,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response<Body>, OAuthError> {
    let (client, _) = authenticate_client(ctx.svc, headers, form)?;
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

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scopes_narrow_or_reject() {
        let allowed = v(&["items:read", "items:write"]);
        assert_eq!(
            grant_scopes(ScopePolicy::Narrow, &[], &allowed),
            Ok(allowed.clone())
        );
        assert_eq!(
            grant_scopes(ScopePolicy::Narrow, &v(&["items:read", "admin"]), &allowed),
            Ok(v(&["items:read"]))
        );
        assert_eq!(
            grant_scopes(ScopePolicy::Reject, &v(&["items:read", "admin"]), &allowed)
                .map_err(|e| e.code),
            Err("invalid_scope")
        );
        assert_eq!(
            grant_scopes(ScopePolicy::Narrow, &v(&["admin"]), &allowed).map_err(|e| e.code),
            Err("invalid_scope")
        );
    }

    #[test]
    fn scope_syntax_follows_rfc_6749() {
        assert_eq!(parse_scope(Some("a  b a")), Ok(v(&["a", "b"])));
        assert_eq!(parse_scope(None), Ok(vec![]));
        for bad in ["a\"b", "a\\b", "é"] {
            assert!(parse_scope(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert!(valid_username("johndoe"));
        assert!(valid_username("a.b-c_d@example.com"));
        for bad in ["ab", "a b", "x\u{0}y", "robert'); DROP", &"a".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }
}
