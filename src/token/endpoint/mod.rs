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

    /// For metrics' `http_route` label: the access log's `route` field.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "portcullis:token",
            Endpoint::Revoke => "portcullis:revoke",
            Endpoint::Register => "portcullis:register",
            Endpoint::Jwks => "portcullis:jwks",
            Endpoint::Metadata => "portcullis:metadata",
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

mod client;
mod error;
mod form;
mod metadata;

pub use client::{authenticate_client, ClientAuth};
pub use error::{no_store, OAuthError};
pub use form::Form;
pub use metadata::metadata;

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
            let (headers, form) = form::read_form(req).await?;
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
