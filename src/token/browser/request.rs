//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1),
//! checked in the order that decides where its errors may go: the client and the
//! redirect URI first — while either is in doubt the answer is a page and nothing is
//! redirected anywhere (§4.1.2.1, no open redirector) — then the rest, whose errors go
//! back to the client with `state` and `iss` (RFC 9207).

use http::{HeaderValue, Response, StatusCode};

use super::pages::Page;
use super::redirect_matches;
use crate::body::Body;
use crate::token::endpoint::{find_client, Form, OAuthError};
use crate::token::grants::scope::parse_scope;
use crate::token::{Client, Grant, TokenRuntime, TokenService};

/// The parameters carried through the login and consent forms.
const CARRIED: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
];

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthzRequest {
    pub client: Client,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// Whether the request named it (then `/token` must too).
    pub redirect_given: bool,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// The scopes asked for (parsed; empty when `scope` was absent).
    pub scope: Vec<String>,
    /// The S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt` values (`none`, `login`, `consent`).
    pub prompt: Vec<String>,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// The request's parameters, for the forms' hidden fields.
    pub fields: Vec<(String, String)>,
}

/// Why an authorization request is refused.
#[derive(Debug)]
pub enum Refusal {
    /// The client or redirect URI is unknown: an error page, never a redirect.
    Page(Page),
    /// An error for the client, at its redirect URI (§4.1.2.1).
    Redirect(Redirect),
    /// The server failed.
    Internal(OAuthError),
}

/// An answer to the client at its redirect URI.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub uri: String,
    pub params: Vec<(&'static str, String)>,
}

impl Redirect {
    /// An error for the client (§4.1.2.1), with `state` and `iss`.
    pub fn error(req: &AuthzRequest, error: &'static str, description: &str) -> Redirect {
        let mut params = vec![
            ("error", error.to_string()),
            ("error_description", description.to_string()),
        ];
        if let Some(s) = &req.state {
            params.push(("state", s.clone()));
        }
        Redirect {
            uri: req.redirect_uri.clone(),
            params,
        }
    }

    /// `303 See Other` to the URI with the parameters (and `iss`, RFC 9207, when
    /// given) added to its query.
    pub fn response(&self, issuer: Option<&str>, set_cookie: Vec<HeaderValue>) -> Response<Body> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            q.append_pair(k, v);
        }
        if let Some(iss) = issuer {
            q.append_pair("iss", iss);
        }
        let sep = if self.uri.contains('?') { '&' } else { '?' };
        let location = format!("{}{sep}{}", self.uri, q.finish());
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::SEE_OTHER;
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(http::header::LOCATION, v);
        }
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        for c in set_cookie {
            h.append(http::header::SET_COOKIE, c);
        }
        resp
    }
}

fn page(text: &str) -> Refusal {
    Refusal::Page(Page::error(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        text,
    ))
}

/// Checks an authorization request (from the query or a posted form).
pub async fn parse(
    svc: &TokenService,
    rt: &TokenRuntime,
    form: &Form,
) -> Result<AuthzRequest, Refusal> {
    let Some(client_id) = form.get("client_id") else {
        return Err(page("The request names no client (client_id is missing)."));
    };
    let client = match find_client(svc, rt, client_id).await {
        Ok(Some(c)) if c.grants.contains(&Grant::AuthorizationCode) => c,
        Ok(_) => return Err(page("The client is unknown or may not sign users in here.")),
        Err(e) => return Err(Refusal::Internal(e)),
    };
    let (redirect_uri, redirect_given) = match form.get("redirect_uri") {
        Some(r) if redirect_matches(&client.redirect_uris, r) => (r.to_string(), true),
        Some(_) => return Err(page("The redirect URI is not registered for this client.")),
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => {
                return Err(page(
                    "The request names no redirect URI (redirect_uri is missing).",
                ))
            }
        },
    };
    let fields = CARRIED
        .iter()
        .filter_map(|k| form.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect();
    let mut req = AuthzRequest {
        client,
        redirect_uri,
        redirect_given,
        state: form.get("state").map(str::to_string),
        nonce: form.get("nonce").map(str::to_string),
        scope: Vec::new(),
        code_challenge: None,
        prompt: Vec::new(),
        max_age: None,
        fields,
    };
    if let Err(e) = check_rest(&mut req, form) {
        return Err(Refusal::Redirect(e));
    }
    Ok(req)
}

/// Everything after the client and redirect URI: errors go to the client.
fn check_rest(req: &mut AuthzRequest, form: &Form) -> Result<(), Redirect> {
    let err = |req: &AuthzRequest, code: &'static str, d: &str| Redirect::error(req, code, d);
    if form.get("request").is_some() {
        return Err(err(
            req,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if form.get("request_uri").is_some() {
        return Err(err(
            req,
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match form.get("response_type") {
        Some("code") => {}
        None => return Err(err(req, "invalid_request", "response_type is missing")),
        Some(_) => {
            return Err(err(
                req,
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if form.get("response_mode").is_some_and(|m| m != "query") {
        return Err(err(
            req,
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    req.scope = match parse_scope(form.get("scope")) {
        Ok(s) => s,
        Err(_) => return Err(err(req, "invalid_scope", "the scope is malformed")),
    };
    match (
        form.get("code_challenge"),
        form.get("code_challenge_method"),
    ) {
        (Some(c), Some("S256")) => {
            let ok = c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(err(
                    req,
                    "invalid_request",
                    "code_challenge is not an S256 challenge",
                ));
            }
            req.code_challenge = Some(c.to_string());
        }
        (Some(_), _) | (None, Some(_)) => {
            return Err(err(
                req,
                "invalid_request",
                "code_challenge_method must be S256 (plain is refused)",
            ))
        }
        (None, None) if req.client.require_pkce => {
            return Err(err(
                req,
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ))
        }
        (None, None) => {}
    }
    if let Some(p) = form.get("prompt") {
        req.prompt = p
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if req
            .prompt
            .iter()
            .any(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
            || (req.prompt.iter().any(|p| p == "none") && req.prompt.len() > 1)
        {
            return Err(err(
                req,
                "invalid_request",
                "prompt is not one of none, login, consent",
            ));
        }
    }
    if let Some(m) = form.get("max_age") {
        match m.parse::<i64>() {
            Ok(v) if v >= 0 => req.max_age = Some(v),
            _ => {
                return Err(err(
                    req,
                    "invalid_request",
                    "max_age is not a number of seconds",
                ))
            }
        }
    }
    Ok(())
}
