//! HTTP side of the token service: which path is which endpoint, form parsing, client
//! authentication (RFC 6749 §2.3), and the RFC 6749 §5 answers.
//!
//! Bodies are `application/x-www-form-urlencoded` only (a JSON body is
//! `invalid_request`), at most [`MAX_FORM_BYTES`]; a parameter sent twice is
//! `invalid_request` (§3.2) and one sent empty counts as absent. Every answer carries
//! `Cache-Control: no-store` and `Pragma: no-cache` (§5.1).

use std::net::IpAddr;

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Method, Request, Response, StatusCode};

use super::browser::{self, DemoFile};
use super::{grants, TokenRuntime, TokenService};
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
    /// `{prefix}/authorize` (and its login and consent forms).
    Authorize,
    /// `{prefix}/userinfo`.
    Userinfo,
    /// `{prefix}/logout`.
    Logout,
    /// `{prefix}/login.css`.
    LoginCss,
    /// `{prefix}/login/{provider}`: the provider's index in `[login] providers`.
    ExternalStart(u16),
    /// `{prefix}/login/{provider}/callback`.
    ExternalCallback(u16),
    /// The demo app (`[login] demo_client`).
    Demo(DemoFile),
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
            Endpoint::Authorize => "authorize",
            Endpoint::Userinfo => "userinfo",
            Endpoint::Logout => "logout",
            Endpoint::LoginCss => "login-css",
            Endpoint::ExternalStart(_) => "external-login",
            Endpoint::ExternalCallback(_) => "external-callback",
            Endpoint::Demo(_) => "demo",
        }
    }

    /// For metrics' `http_route` label: the access log's `route` field.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "portcullis:token",
            Endpoint::Revoke => "portcullis:revoke",
            Endpoint::Register => "portcullis:register",
            Endpoint::Jwks => "portcullis:jwks",
            Endpoint::Metadata => "portcullis:metadata",
            Endpoint::Authorize => "portcullis:authorize",
            Endpoint::Userinfo => "portcullis:userinfo",
            Endpoint::Logout => "portcullis:logout",
            Endpoint::LoginCss => "portcullis:login-css",
            Endpoint::ExternalStart(_) => "portcullis:external-login",
            Endpoint::ExternalCallback(_) => "portcullis:external-callback",
            Endpoint::Demo(_) => "portcullis:demo",
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
        if svc.login.demo_client.is_some() {
            if let Some(f) = DemoFile::at(path) {
                return Some(Endpoint::Demo(f));
            }
        }
        match path.strip_prefix(svc.endpoint_prefix.as_str())? {
            "/token" => Some(Endpoint::Token),
            "/revoke" => Some(Endpoint::Revoke),
            "/register" if svc.registration.is_some() => Some(Endpoint::Register),
            "/authorize" => Some(Endpoint::Authorize),
            "/userinfo" => Some(Endpoint::Userinfo),
            "/logout" => Some(Endpoint::Logout),
            "/login.css" => Some(Endpoint::LoginCss),
            rest => {
                let rest = rest.strip_prefix("/login/")?;
                let (name, callback) = match rest.strip_suffix("/callback") {
                    Some(n) => (n, true),
                    None => (rest, false),
                };
                let i = svc.login.providers.iter().position(|p| p.name == name)?;
                let i = u16::try_from(i).ok()?;
                Some(if callback {
                    Endpoint::ExternalCallback(i)
                } else {
                    Endpoint::ExternalStart(i)
                })
            }
        }
    }
}

mod client;
mod error;
mod form;
mod metadata;

pub use client::{authenticate, authenticate_client, find_client, ClientAuth, Presented};
pub use error::{no_store, OAuthError};
pub(crate) use form::read_form;
pub use form::Form;
pub use metadata::metadata;

/// Answers a request for one of the token service's endpoints; a refusal is an
/// [`OAuthError`] (or a 405), rendered by the gateway's one error renderer. `secure`:
/// the request came over TLS (the sign-in cookie's name and `Secure` flag).
pub async fn serve<B>(
    endpoint: Endpoint,
    req: Request<B>,
    client_ip: IpAddr,
    secure: bool,
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
        Endpoint::LoginCss => {
            if method != Method::GET && method != Method::HEAD {
                return Err(GatewayError::MethodNotAllowed(vec![
                    Method::GET,
                    Method::HEAD,
                ]));
            }
            Ok(browser::stylesheet(&svc.login))
        }
        Endpoint::Demo(f) => {
            let client = svc.login.demo_client.as_deref().unwrap_or_default();
            browser::demo(f, &method, req.uri().path(), client)
        }
        _ => {
            let Some(rt) = rt else {
                tracing::error!("the token service's store is not open; restart to enable it");
                return Err(GatewayError::TokenServiceDown);
            };
            let Some((login, login_ip)) = snap.login_policies() else {
                tracing::error!("the login rate-limit policies are missing");
                return Err(GatewayError::TokenServiceDown);
            };
            let ctx = grants::Ctx {
                svc,
                rt,
                roles: &snap.config.roles,
                verifier: snap.config.tokens.as_ref(),
                client_ip,
                login,
                login_ip,
            };
            match endpoint {
                Endpoint::Authorize => return browser::authorize(&ctx, secure, req).await,
                Endpoint::Logout => return browser::logout(&ctx, secure, req).await,
                Endpoint::Userinfo => {
                    let headers = req.headers().clone();
                    return browser::userinfo(&ctx, &method, &headers).await;
                }
                Endpoint::ExternalStart(i) => {
                    return browser::external::start(&ctx, secure, usize::from(i), req).await
                }
                Endpoint::ExternalCallback(i) => {
                    return browser::external::callback(&ctx, secure, usize::from(i), req).await
                }
                _ => {}
            }
            if method != Method::POST {
                return Err(GatewayError::MethodNotAllowed(vec![Method::POST]));
            }
            let (headers, form) = form::read_form(req).await?;
            let answer = match endpoint {
                Endpoint::Token => grants::token(&ctx, &headers, &form).await,
                Endpoint::Revoke => grants::revoke(&ctx, &headers, &form).await,
                _ => grants::register(&ctx, &form).await,
            };
            Ok(answer?)
        }
    }
}
