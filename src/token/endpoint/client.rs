//! Client authentication at the token service (RFC 6749 §2.3): HTTP Basic, form
//! fields, or a public client by id (or the configured default client); secrets
//! compared as digests, without an early exit. Clients come from `[[clients]]`, then
//! from the store (`portcullis clients add`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::{Form, OAuthError};
use crate::auth::api_key;
use crate::token::{Client, TokenRuntime, TokenService};

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

/// The credentials a request presents (RFC 6749 §2.3): one method only; Basic
/// credentials are form-urlencoded before base64 (§2.3.1).
#[derive(Debug)]
pub struct Presented {
    /// The client id; `None`: the default client, if any.
    pub id: Option<String>,
    pub secret: Option<String>,
    pub method: ClientAuth,
}

impl Presented {
    /// Reads the credentials from the `Authorization` header and the form.
    pub fn read(headers: &HeaderMap, form: &Form) -> Result<Presented, OAuthError> {
        let basic = match headers.get(AUTHORIZATION) {
            Some(v) => Some(basic_credentials(v)?),
            None => None,
        };
        if basic.is_some() && form.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method only",
            ));
        }
        let (id, secret, method) = match (basic, form.get("client_id"), form.get("client_secret")) {
            (Some((id, secret)), form_id, _) => {
                if form_id.is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the Basic credentials",
                    ));
                }
                (Some(id), Some(secret), ClientAuth::Basic)
            }
            (None, Some(id), Some(secret)) => (
                Some(id.to_string()),
                Some(secret.to_string()),
                ClientAuth::Post,
            ),
            (None, Some(id), None) => (Some(id.to_string()), None, ClientAuth::None),
            (None, None, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "client_secret without client_id",
                ))
            }
            (None, None, None) => (None, None, ClientAuth::None),
        };
        Ok(Presented { id, secret, method })
    }

    /// The refusal for an unknown client or a wrong secret (one text for both).
    pub fn failed(&self) -> OAuthError {
        OAuthError::invalid_client(
            "client authentication failed",
            self.method == ClientAuth::Basic,
        )
    }

    /// Checks the presented secret against the client's (digests compared without an
    /// early exit); a public client must present none.
    pub fn verify(&self, client: &Client) -> Result<(), OAuthError> {
        match (&client.secret_sha256, &self.secret) {
            (Some(expected), Some(given)) => {
                let given = api_key::hash(given);
                if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                    return Err(self.failed());
                }
            }
            // A confidential client must authenticate.
            (Some(_), None) => return Err(self.failed()),
            // A public client has no secret to present.
            (None, Some(_)) => return Err(self.failed()),
            (None, None) => {}
        }
        Ok(())
    }
}

fn basic_credentials(v: &http::HeaderValue) -> Result<(String, String), OAuthError> {
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
    Ok((unescape(id), unescape(secret)))
}

/// RFC 6749 §2.3 against the `[[clients]]` of the configuration only.
pub fn authenticate_client<'a>(
    svc: &'a TokenService,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(&'a Client, ClientAuth), OAuthError> {
    let p = Presented::read(headers, form)?;
    let client = match &p.id {
        Some(id) => svc.clients.get(id).ok_or_else(|| p.failed())?,
        None => default_client(svc)?,
    };
    p.verify(client)?;
    Ok((client, p.method))
}

/// The configured default client (a request that names none acts as it).
fn default_client(svc: &TokenService) -> Result<&Client, OAuthError> {
    svc.default_client
        .as_ref()
        .and_then(|d| svc.clients.get(d))
        .ok_or(OAuthError::invalid_client(
            "client authentication is required",
            false,
        ))
}

/// RFC 6749 §2.3 against the configuration's clients, then the store's.
pub async fn authenticate(
    svc: &TokenService,
    rt: &TokenRuntime,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(Client, ClientAuth), OAuthError> {
    let p = Presented::read(headers, form)?;
    let client = match &p.id {
        Some(id) => find_client(svc, rt, id).await?.ok_or_else(|| p.failed())?,
        None => default_client(svc)?.clone(),
    };
    p.verify(&client)?;
    Ok((client, p.method))
}

/// A client by id: `[[clients]]` first, then the store (`portcullis clients add`).
pub async fn find_client(
    svc: &TokenService,
    rt: &TokenRuntime,
    id: &str,
) -> Result<Option<Client>, OAuthError> {
    if let Some(c) = svc.clients.get(id) {
        return Ok(Some(c.clone()));
    }
    let stored = rt.store.find_client(id).await.map_err(|e| {
        tracing::error!(error = %e, "client lookup failed");
        OAuthError::server_error()
    })?;
    Ok(stored.map(|r| Client::from_record(r, &svc.grants)))
}

/// Compares two digests without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
