//! HTTP side of the token service: which path is which endpoint, form parsing, client
//! authentication (RFC 6749 §2.3), and the RFC 6749 §5 answers.
//!
//! Bodies are `application/x-www-form-urlencoded` only (a JSON body is
//! `invalid_request`), at most [`MAX_FORM_BYTES`]; a parameter sent twice is
//! `invalid_request` (§3.2) and one sent empty counts as absent. Every answer carries
//! `Cache-Control: no-store` and `Pragma: no-cache` (§5.1).

use std::collections::HashMap;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use serde_json::{json, Value};

use super::{grants, Client, TokenRuntime, TokenService};
use crate::auth::api_key;
use crate::body::Body;
use crate::error::GatewayError;
use crate::state::Snapshot;

/// Largest form body accepted by `/token`, `/revoke` and `/register`.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest password accepted (argon2 would hash anything; bound the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// One of the token service's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revoke,
    Register,
    Jwks,
    Metadata,
}

impl Endpoint {
    /// For the access log's `route` field.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Revoke => "revoke",
            Endpoint::Register => "register",
            Endpoint::Jwks => "jwks",
            Endpoint::Metadata => "metadata",
        }
    }

    /// The endpoint at a canonical path, if any.
    pub fn at(svc: &TokenService, path: &str) -> Option<Endpoint> {
        match path {
            "/.well-known/jwks.json" => return Some(Endpoint::Jwks),
            "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => {
                return Some(Endpoint::Metadata)
            }
            _ => {}
        }
        match path.strip_prefix(svc.endpoint_prefix.as_str())? {
            "/token" => Some(Endpoint::Token),
            "/revoke" => Some(Endpoint::Revoke),
            "/register" if svc.registration.is_some() => Some(Endpoint::Register),
            _ => None,
        }
    }
}

/// An RFC 6749 §5.2 error (or a 429/5xx in the same shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: &'static str,
    /// `WWW-Authenticate: Basic` (the client authenticated with Basic and failed).
    pub basic_challenge: bool,
    pub retry_after: Option<u64>,
    /// The `[rate_limits]` policy that refused: (name, `RateLimit-Policy` value).
    pub policy: Option<(String, String)>,
}

impl OAuthError {
    pub fn new(status: StatusCode, code: &'static str, description: &'static str) -> OAuthError {
        OAuthError {
            status,
            code,
            description,
            basic_challenge: false,
            retry_after: None,
            policy: None,
        }
    }

    pub fn invalid_request(d: &'static str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    pub fn invalid_grant(d: &'static str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    pub fn invalid_scope(d: &'static str) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    pub fn invalid_client(d: &'static str, basic: bool) -> OAuthError {
        OAuthError {
            basic_challenge: basic,
            ..OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }

    pub fn server_error() -> OAuthError {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the token service failed; try again later",
        )
    }

    pub fn rate_limited(retry_after: u64) -> OAuthError {
        OAuthError {
            retry_after: Some(retry_after),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many attempts; retry later",
            )
        }
    }

    /// Every password-hashing place is taken (`hashing.rs`): retry in a second.
    pub fn busy() -> OAuthError {
        OAuthError {
            retry_after: Some(1),
            ..OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the login service is busy; retry in a moment",
            )
        }
    }
}

impl From<OAuthError> for GatewayError {
    fn from(e: OAuthError) -> GatewayError {
        GatewayError::OAuth(e)
    }
}

/// A JSON answer with `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = crate::error::json_response(status, body);
    resp.headers_mut()
        .insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The parameters of a form body: each at most once, empty ones dropped.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.contains_key(k.as_ref()) {
                return Err(OAuthError::invalid_request(
                    "a parameter is included more than once",
                ));
            }
            map.insert(k.into_owned(), v.into_owned());
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Form(map))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn require(&self, k: &str, d: &'static str) -> Result<&str, OAuthError> {
        self.get(k).ok_or(OAuthError::invalid_request(d))
    }
}

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with a secret.
    Basic,
    /// `client_id` + `client_secret` form fields.
    Post,
    /// A public client: `client_id` alone, or the configured default client.
    None,
}

/// RFC 6749 §2.3: which client this is. One method only; Basic credentials are
/// form-urlencoded before base64 (§2.3.1).
pub fn authenticate_client<'a>(
    svc: &'a TokenService,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(&'a Client, ClientAuth), OAuthError> {
    let basic = match headers.get(AUTHORIZATION) {
        Some(v) => {
            let s = v.to_str().unwrap_or("");
            let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "use HTTP Basic or client_id/client_secret",
                    true,
                ));
            }
            let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
            let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), unescape(secret)))
        }
        None => None,
    };
    if basic.is_some() && (form.get("client_secret").is_some()) {
        return Err(OAuthError::invalid_request(
            "use one client authentication method only",
        ));
    }
    let (id, secret, method) = match (&basic, form.get("client_id"), form.get("client_secret")) {
        (Some((id, secret)), form_id, _) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Basic credentials",
                ));
            }
            (Some(id.as_str()), Some(secret.as_str()), ClientAuth::Basic)
        }
        (None, Some(id), Some(secret)) => (Some(id), Some(secret), ClientAuth::Post),
        (None, Some(id), None) => (Some(id), None, ClientAuth::None),
        (None, None, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "client_secret without client_id",
            ))
        }
        (None, None, None) => (None, None, ClientAuth::None),
    };
    let basic_used = method == ClientAuth::Basic;
    let unknown = || OAuthError::invalid_client("client authentication failed", basic_used);
    let client = match id {
        Some(id) => svc.clients.get(id).ok_or_else(unknown)?,
        None => svc
            .default_client
            .as_ref()
            .and_then(|d| svc.clients.get(d))
            .ok_or(OAuthError::invalid_client(
                "client authentication is required",
                false,
            ))?,
    };
    match (&client.secret_sha256, secret) {
        (Some(expected), Some(given)) => {
            let given = api_key::hash(given);
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                return Err(unknown());
            }
        }
        // A confidential client must authenticate.
        (Some(_), None) => return Err(unknown()),
        // A public client has no secret to present.
        (None, Some(_)) => return Err(unknown()),
        (None, None) => {}
    }
    Ok((client, method))
}

/// Compares two digests without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a form body of at most [`MAX_FORM_BYTES`] after checking the content type.
async fn read_form<B>(req: Request<B>) -> Result<(HeaderMap, Form), OAuthError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is too large",
            )
        })?
        .to_bytes();
    Ok((parts.headers, Form::parse(&bytes)?))
}

/// Answers a request for one of the token service's endpoints; a refusal is an
/// [`OAuthError`] (or a 405), rendered by the gateway's one error renderer.
pub async fn serve<B>(
    endpoint: Endpoint,
    req: Request<B>,
    client_ip: IpAddr,
    snap: &Snapshot,
    svc: &TokenService,
    rt: Option<&TokenRuntime>,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    match endpoint {
        Endpoint::Jwks | Endpoint::Metadata => {
            if method != Method::GET && method != Method::HEAD {
                return Err(GatewayError::MethodNotAllowed(vec![
                    Method::GET,
                    Method::HEAD,
                ]));
            }
            let body = if endpoint == Endpoint::Jwks {
                svc.jwks.clone()
            } else {
                metadata(svc, &snap.config.roles)
            };
            let mut resp = crate::error::json_response(StatusCode::OK, &body);
            resp.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            Ok(resp)
        }
        Endpoint::Token | Endpoint::Revoke | Endpoint::Register => {
            if method != Method::POST {
                return Err(GatewayError::MethodNotAllowed(vec![Method::POST]));
            }
            let Some(rt) = rt else {
                tracing::error!("the token service's store is not open; restart to enable it");
                return Err(GatewayError::TokenServiceDown);
            };
            let Some((login, login_ip)) = snap.login_policies() else {
                tracing::error!("the login rate-limit policies are missing");
                return Err(GatewayError::TokenServiceDown);
            };
            let (headers, form) = read_form(req).await?;
            let ctx = grants::Ctx {
                svc,
                rt,
                roles: &snap.config.roles,
                verifier: snap.config.tokens.as_ref(),
                client_ip,
                login,
                login_ip,
            };
            let answer = match endpoint {
                Endpoint::Token => grants::token(&ctx, &headers, &form).await,
                Endpoint::Revoke => grants::revoke(&ctx, &headers, &form).await,
                _ => grants::register(&ctx, &form).await,
            };
            Ok(answer?)
        }
    }
}

/// RFC 8414 authorization server metadata.
pub fn metadata(svc: &TokenService, roles: &HashMap<String, Vec<String>>) -> Value {
    let base = &svc.issuer;
    let prefix = &svc.endpoint_prefix;
    // What is served: a grant the server enables and some client may use (a client
    // can list enabled grants only, `check` makes sure).
    let mut grants: Vec<&str> = Vec::new();
    for c in svc.clients.values() {
        for g in c.grants.iter().filter(|g| svc.grants.contains(g)) {
            if !grants.contains(&g.as_str()) {
                grants.push(g.as_str());
            }
        }
    }
    grants.sort_unstable();
    let mut scopes: Vec<&str> = roles
        .values()
        .flatten()
        .chain(svc.clients.values().flat_map(|c| c.scopes.iter()))
        .map(String::as_str)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut algs: Vec<&str> = vec![super::keys::alg_name(svc.signing.alg)];
    algs.dedup();
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "issuer": base,
        "token_endpoint": format!("{base}{prefix}/token"),
        "revocation_endpoint": format!("{base}{prefix}/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": grants,
        "response_types_supported": [],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "access_token_signing_alg_values_supported": algs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_refuse_repeats_and_drop_empty_values() {
        let f =
            Form::parse(b"grant_type=password&username=a%20b&password=p%26q&scope=").expect("form");
        assert_eq!(f.get("username"), Some("a b"));
        assert_eq!(f.get("password"), Some("p&q"));
        assert_eq!(f.get("scope"), None);
        let e = Form::parse(b"username=a&username=b").expect_err("repeat");
        assert_eq!(e.code, "invalid_request");
    }

    use http::header::RETRY_AFTER;

    #[tokio::test]
    async fn a_full_hashing_gate_is_an_oauth_shaped_503_with_retry_after() {
        let rid = HeaderValue::from_static("r1");
        let resp = GatewayError::from(OAuthError::busy()).into_response(&rid);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let h = resp.headers();
        assert_eq!(h.get(RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(
            h.get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert_eq!(
            h.get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"], "temporarily_unavailable");
        assert!(v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
}
