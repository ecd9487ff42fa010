//! Sign-in through an external OpenID Connect provider (`[[login.providers]]`):
//! Portcullis is the relying party, and the user leaves with Portcullis' own tokens.
//!
//! 1. `GET {prefix}/login/{name}?<authorization request>`: the request is checked as
//!    `/authorize` checks it, then the browser goes to the provider with a code
//!    request of Portcullis' own (fresh `state`, `nonce` and PKCE S256). What to resume
//!    is stored under the state's digest with the browser's cookie digest, for ten
//!    minutes, single use.
//! 2. `GET {prefix}/login/{name}/callback`: the state is taken (once), must come back
//!    in the browser that started, `iss` (RFC 9207) must be the provider's when sent;
//!    the code is exchanged at the provider's token endpoint (with the verifier and
//!    the client secret), and its id_token verified with the provider's JWKS — issuer,
//!    audience, expiry, signature and our `nonce`. A refusal is an error page.
//! 3. The identity maps to a local user: an earlier link (provider + `sub`), else with
//!    `link_by_email` the user whose verified email it is, else (with `create_users`) a
//!    new user `{name}-{sub}` with `default_roles` and the roles `role_map` gives for
//!    `roles_claim`. The new user has no password (nothing verifies against it).
//! 4. The browser is signed in (a new session cookie) and the original authorization
//!    request goes on: consent, then a code for the client — tokens in the one
//!    normalized shape, whatever the user signed in with.
//!
//! The provider's discovery document and JWKS client are made at first use and kept
//! in the runtime (`TokenRuntime::providers`), keyed by name, issuer and client id.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::authorize::{answer, read, Flow};
use super::pages::Page;
use super::request::{parse, Redirect, Refusal};
use super::session::Browser;
use super::Provider;
use crate::auth::api_key;
use crate::auth::jwks::{IssuerConfig, JwksClient, JwksSource};
use crate::auth::jwt::claims::ClaimRules;
use crate::body::Body;
use crate::error::GatewayError;
use crate::token::endpoint::Form;
use crate::token::grants::issue::random_b64;
use crate::token::grants::{server_error, valid_username, Ctx};
use crate::token::store::{LoginState, SessionRecord};
use crate::token::{now_secs, TokenRuntime};

/// How long a started external sign-in may take.
const PENDING_SECS: i64 = 600;

/// A provider's endpoints and keys, found at first use.
#[derive(Debug)]
pub struct ProviderRuntime {
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    sends_iss: bool,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks: Arc<JwksClient>,
    http: reqwest::Client,
}

fn http_client() -> reqwest::Client {
    crate::auth::http_client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The provider's runtime: discovery, then a JWKS client whose keys are fetched.
async fn runtime(rt: &TokenRuntime, p: &Provider) -> Result<Arc<ProviderRuntime>, String> {
    let key = format!("{}\0{}\0{}", p.name, p.issuer, p.client_id);
    if let Some(found) = rt.providers.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(found);
    }
    let http = http_client();
    let url = format!("{}/.well-known/openid-configuration", p.issuer);
    let doc: Value = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("discovery failed: {e}"))?
        .json()
        .await
        .map_err(|e| format!("discovery document: {e}"))?;
    let field = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(format!("the discovery document has no {k}"))
    };
    if field("issuer")?.trim_end_matches('/') != p.issuer {
        return Err("the discovery document names another issuer".into());
    }
    let config = IssuerConfig {
        issuer: field("issuer")?,
        source: JwksSource::Url(field("jwks_uri")?),
        algorithms: vec![
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::EdDSA,
        ],
        rules: ClaimRules::new(
            field("issuer")?,
            vec![p.client_id.clone()],
            Duration::from_secs(60),
        ),
        min_refresh: Duration::from_secs(60),
        max_refresh: Duration::from_secs(3600),
        unknown_kid_cooldown: Duration::from_secs(30),
    };
    let jwks = JwksClient::new(config);
    let handle = rt.store.handle().map_err(|e| e.to_string())?;
    jwks.spawn_refresher(&handle);
    let out = Arc::new(ProviderRuntime {
        sends_iss: doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        authorization_endpoint: field("authorization_endpoint")?,
        token_endpoint: field("token_endpoint")?,
        jwks,
        http,
    });
    if let Ok(mut m) = rt.providers.lock() {
        m.insert(key, out.clone());
    }
    Ok(out)
}

fn page(status: StatusCode, text: &str) -> Page {
    Page::error(status, "Sign-in did not work", text)
}

/// `GET {prefix}/login/{name}`: off to the provider.
pub(crate) async fn start<B>(
    ctx: &Ctx<'_>,
    secure: bool,
    index: usize,
    req: Request<B>,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (svc, l) = (ctx.svc, &ctx.svc.login);
    let prefix = svc.endpoint_prefix.as_str();
    let Some(p) = l.providers.get(index) else {
        return Err(GatewayError::NoRoute);
    };
    let (headers, form) = match read(svc, req, &[Method::GET]).await? {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    let areq = match parse(svc, ctx.rt, &form).await {
        Ok(r) => r,
        Err(Refusal::Page(pg)) => return Ok(pg.render(l, prefix)),
        Err(Refusal::Redirect(r)) => return Ok(r.response(Some(&svc.issuer), Vec::new())),
        Err(Refusal::Internal(_)) => {
            return Ok(
                page(StatusCode::INTERNAL_SERVER_ERROR, "Try again in a moment.").render(l, prefix),
            )
        }
    };
    // Each start writes a pending sign-in to the store: anonymous callers pay for it
    // from the per-IP login budget (`login_ip`), like a failed password.
    let headers_for_limit = http::HeaderMap::new();
    let attempt = crate::token::grants::credentials::Attempt::begin(
        &[ctx.login_ip],
        crate::token::grants::credentials::key_input(ctx.client_ip, "", &headers_for_limit),
    )
    .await;
    if let Err(e) = attempt {
        let wait = e.retry_after.unwrap_or(1);
        let mut resp = page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-in attempts. Wait {wait} seconds, then try again."),
        )
        .render(l, prefix);
        if let Ok(v) = http::HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    let prt = match runtime(ctx.rt, p).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(provider = %p.name, error = %e, "external provider unavailable");
            return Ok(page(
                StatusCode::BAD_GATEWAY,
                "The identity provider cannot be reached. Try again later.",
            )
            .render(l, prefix));
        }
    };
    let mut browser = Browser::from_headers(&headers, secure);
    let set = browser.ensure_id()?;
    let (state, nonce, verifier) = (random_b64(32)?, random_b64(24)?, random_b64(32)?);
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let resume = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &areq.fields {
            q.append_pair(k, v);
        }
        q.finish()
    };
    ctx.rt
        .store
        .insert_login_state(
            &api_key::hash(&state),
            LoginState {
                provider: p.name.clone(),
                nonce: nonce.clone(),
                verifier,
                browser_hash: api_key::hash(browser.cookie.as_deref().unwrap_or_default()),
                request: resume,
            },
            PENDING_SECS,
        )
        .await
        .map_err(server_error)?;
    let params = vec![
        ("response_type", "code".to_string()),
        ("client_id", p.client_id.clone()),
        ("redirect_uri", callback_uri(ctx, p)),
        ("scope", p.scopes.join(" ")),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".to_string()),
    ];
    tracing::info!(provider = %p.name, client = %areq.client.client_id, "external sign-in started");
    Ok(Redirect {
        uri: prt.authorization_endpoint.clone(),
        params,
    }
    .response(None, set.into_iter().collect()))
}

fn callback_uri(ctx: &Ctx<'_>, p: &Provider) -> String {
    format!(
        "{}{}/login/{}/callback",
        ctx.svc.issuer, ctx.svc.endpoint_prefix, p.name
    )
}

/// `GET {prefix}/login/{name}/callback`: back from the provider.
pub(crate) async fn callback<B>(
    ctx: &Ctx<'_>,
    secure: bool,
    index: usize,
    req: Request<B>,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (svc, l) = (ctx.svc, &ctx.svc.login);
    let prefix = svc.endpoint_prefix.as_str();
    let Some(p) = l.providers.get(index) else {
        return Err(GatewayError::NoRoute);
    };
    let (headers, form) = match read(svc, req, &[Method::GET]).await? {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    let browser = Browser::from_headers(&headers, secure);
    match finish(ctx, p, &form, browser).await {
        Ok(resp) => Ok(resp),
        Err(Failure::Page(pg)) => Ok(pg.render(l, prefix)),
        Err(Failure::Refused(why)) => {
            tracing::warn!(provider = %p.name, reason = %why, "external sign-in refused");
            Ok(page(StatusCode::BAD_REQUEST, "The identity provider's answer could not be accepted. Go back to the application and sign in again.").render(l, prefix))
        }
    }
}

enum Failure {
    Page(Page),
    /// Logged with the reason; the browser gets one text.
    Refused(String),
}

impl From<crate::token::endpoint::OAuthError> for Failure {
    fn from(e: crate::token::endpoint::OAuthError) -> Failure {
        Failure::Refused(format!("server error: {}", e.code))
    }
}

async fn finish(
    ctx: &Ctx<'_>,
    p: &Provider,
    form: &Form,
    mut browser: Browser,
) -> Result<Response<Body>, Failure> {
    let state = form
        .get("state")
        .ok_or_else(|| Failure::Page(page(StatusCode::BAD_REQUEST, "The answer has no state.")))?;
    let pending = ctx
        .rt
        .store
        .take_login_state(&api_key::hash(state))
        .await
        .map_err(server_error)?
        .filter(|s| s.provider == p.name)
        .ok_or_else(|| {
            Failure::Page(page(
                StatusCode::BAD_REQUEST,
                "This sign-in has expired or was already used. Go back to the application and sign in again.",
            ))
        })?;
    let same_browser = browser
        .cookie
        .as_deref()
        .is_some_and(|c| api_key::hash(c) == pending.browser_hash);
    if !same_browser {
        return Err(Failure::Page(page(
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser.",
        )));
    }
    // The original request, checked again (the client may have changed meanwhile).
    let resumed = Form::parse(pending.request.as_bytes())?;
    let areq = match parse(ctx.svc, ctx.rt, &resumed).await {
        Ok(r) => r,
        Err(Refusal::Page(pg)) => return Err(Failure::Page(pg)),
        Err(Refusal::Redirect(r)) => return Ok(r.response(Some(&ctx.svc.issuer), Vec::new())),
        Err(Refusal::Internal(e)) => return Err(e.into()),
    };
    if let Some(e) = form.get("error") {
        tracing::info!(provider = %p.name, error = ?e, "the provider refused the sign-in");
        let r = Redirect::error(
            &areq,
            "access_denied",
            "the identity provider refused the sign-in",
        );
        return Ok(r.response(Some(&ctx.svc.issuer), Vec::new()));
    }
    let prt = runtime(ctx.rt, p).await.map_err(Failure::Refused)?;
    // RFC 9207: `iss` in the answer must be the provider's, and must be there when the
    // provider says it sends it (a mix-up attack answers from another provider).
    match form.get("iss") {
        Some(i) if i.trim_end_matches('/') != p.issuer => {
            return Err(Failure::Refused(
                "iss in the answer is not the provider's".into(),
            ))
        }
        None if prt.sends_iss => {
            return Err(Failure::Refused(
                "the answer has no iss, which the provider promises".into(),
            ))
        }
        _ => {}
    }
    let code = form.get("code").ok_or(Failure::Refused("no code".into()))?;
    let claims = exchange(ctx, p, &prt, code, &pending).await?;
    let username = local_user(ctx, p, &claims).await?;
    let session = SessionRecord {
        subject: username.clone(),
        auth_time: now_secs(),
    };
    let set = browser
        .sign_in(ctx.rt, &session, ctx.svc.login.session_ttl.as_secs())
        .await?;
    tracing::info!(user = %username, provider = %p.name, "signed in (external provider)");
    let mut flow = Flow {
        ctx,
        areq,
        browser,
        set_cookie: vec![set],
    };
    let out = flow.signed_in(session).await;
    Ok(answer(flow, out))
}

/// The code exchanged for the provider's id_token, verified; its claims.
async fn exchange(
    ctx: &Ctx<'_>,
    p: &Provider,
    prt: &ProviderRuntime,
    code: &str,
    pending: &LoginState,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let redirect = callback_uri(ctx, p);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", pending.verifier.as_str()),
        ("client_id", p.client_id.as_str()),
    ];
    let body = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(form.iter());
        q.finish()
    };
    let mut req = prt
        .http
        .post(&prt.token_endpoint)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    if let Some(secret) = &p.client_secret {
        // RFC 6749 §2.3.1: form-urlencoded before Basic.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(&p.client_id), Some(enc(secret)));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::Refused(format!("token request failed: {e}")))?;
    if !resp.status().is_success() {
        return Err(Failure::Refused(format!(
            "the token endpoint answered {}",
            resp.status()
        )));
    }
    let body: Value = resp
        .json()
        .await
        .map_err(|e| Failure::Refused(format!("token response: {e}")))?;
    let id_token = body
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or(Failure::Refused("no id_token in the token response".into()))?;
    let principal = prt
        .jwks
        .verify(id_token)
        .await
        .map_err(|e| Failure::Refused(format!("id_token refused: {e}")))?;
    let claims = principal.claims;
    if claims.get("nonce").and_then(Value::as_str) != Some(pending.nonce.as_str()) {
        return Err(Failure::Refused("the id_token's nonce is not ours".into()));
    }
    let aud_many = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    let azp = claims.get("azp").and_then(Value::as_str);
    // OIDC Core §3.1.3.7: azp, when present (and always with several audiences), is us.
    if (aud_many || azp.is_some()) && azp != Some(p.client_id.as_str()) {
        return Err(Failure::Refused(
            "the id_token's azp is not our client".into(),
        ));
    }
    Ok(claims)
}

/// The local user for an external identity (linked, or created).
async fn local_user(
    ctx: &Ctx<'_>,
    p: &Provider,
    claims: &serde_json::Map<String, Value>,
) -> Result<String, Failure> {
    let store = &ctx.rt.store;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(Failure::Refused("the id_token has no sub".into()))?;
    let is_static = |u: &str| ctx.svc.static_users.contains_key(u);
    if let Some(u) = store
        .external_user(&p.name, sub)
        .await
        .map_err(server_error)?
    {
        // A static user of that name (added to the file later) shadows the store's:
        // the external identity never becomes it.
        if is_static(&u) {
            return Err(Failure::Refused(format!(
                "linked user {u} is now a static user"
            )));
        }
        return Ok(u);
    }
    let verified_email = match (claims.get("email"), claims.get("email_verified")) {
        (Some(Value::String(e)), Some(Value::Bool(true))) => Some(e.to_ascii_lowercase()),
        _ => None,
    };
    if p.link_by_email {
        if let Some(e) = &verified_email {
            if let Some(u) = store.user_by_email(e).await.map_err(server_error)? {
                store
                    .link_external(&p.name, sub, &u)
                    .await
                    .map_err(server_error)?;
                tracing::info!(user = %u, provider = %p.name, "external identity linked by verified email");
                return Ok(u);
            }
        }
    }
    if !p.create_users {
        return Err(Failure::Page(page(
            StatusCode::FORBIDDEN,
            "This account is not allowed to sign in here.",
        )));
    }
    let roles = roles_for(p, claims);
    let base = username_for(&p.name, sub);
    let mut name = base.clone();
    for _ in 0..3 {
        // "!external": not a password hash, so no password ever verifies against it.
        // A static user's name is taken too (it would shadow the new store user).
        if !is_static(&name)
            && store
                .add_user(&name, "!external", &roles)
                .await
                .map_err(server_error)?
        {
            if let Some(e) = &verified_email {
                store.set_email(&name, e).await.map_err(server_error)?;
            }
            store
                .link_external(&p.name, sub, &name)
                .await
                .map_err(server_error)?;
            // Two first sign-ins at once: the first link wins.
            let linked = store
                .external_user(&p.name, sub)
                .await
                .map_err(server_error)?;
            tracing::info!(user = %name, provider = %p.name, "user created for an external identity");
            return Ok(linked.unwrap_or(name));
        }
        let tail = random_b64(4)?.to_ascii_lowercase().replace(['-', '_'], "x");
        name = format!("{}-{tail}", &base[..base.len().min(58)]);
    }
    Err(Failure::Refused("no free username".into()))
}

/// `{provider}-{sub}`, with characters a username cannot have replaced, at most 64.
fn username_for(provider: &str, sub: &str) -> String {
    let clean: String = sub
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut u = format!("{provider}-{clean}");
    u.truncate(64);
    if valid_username(&u) {
        u
    } else {
        format!("{provider}-user")
    }
}

/// `default_roles`, plus what `role_map` gives for the values of `roles_claim`.
fn roles_for(p: &Provider, claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut roles = p.default_roles.clone();
    let values: Vec<&str> = match p.roles_claim.as_ref().and_then(|c| claims.get(c)) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split_whitespace().collect(),
        _ => Vec::new(),
    };
    for v in values {
        if let Some(r) = p.role_map.get(v) {
            if !roles.contains(r) {
                roles.push(r.clone());
            }
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_roles_from_claims() {
        assert_eq!(username_for("corp", "ab|12 3"), "corp-ab_12_3");
        assert!(valid_username(&username_for("corp", &"x".repeat(200))));
        let p = Provider {
            name: "corp".into(),
            display_name: "Corp".into(),
            issuer: "https://idp".into(),
            client_id: "c".into(),
            client_secret: None,
            scopes: vec![],
            roles_claim: Some("groups".into()),
            role_map: [("admins".to_string(), "admin".to_string())].into(),
            default_roles: vec!["user".into()],
            link_by_email: false,
            create_users: true,
        };
        let claims = serde_json::json!({"groups": ["staff", "admins"]});
        let claims = claims.as_object().cloned().unwrap_or_default();
        assert_eq!(
            roles_for(&p, &claims),
            vec!["user".to_string(), "admin".into()]
        );
    }
}
