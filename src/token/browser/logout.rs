//! `GET/POST {prefix}/logout`: OpenID Connect RP-initiated logout 1.0.
//!
//! `post_logout_redirect_uri` is followed only when it is registered for the client
//! (exactly, but for the port of a loopback `http` URI, as redirect URIs) (named by `client_id` or by the `id_token_hint`'s audience); otherwise
//! the answer is an error page, never a redirect. With a valid `id_token_hint` for the
//! signed-in user (or nobody signed in), the browser is signed out at once; without
//! one the user confirms on a page whose form carries a CSRF token, so a third-party
//! page cannot sign users out.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use super::authorize::{csrf_refused, read};
use super::pages::{logout_form, Page};
use super::request::Redirect;
use super::session::Browser;
use crate::body::Body;
use crate::error::GatewayError;
use crate::token::endpoint::{find_client, Form};
use crate::token::grants::Ctx;

/// The endpoint.
pub(crate) async fn logout<B>(
    ctx: &Ctx<'_>,
    secure: bool,
    req: Request<B>,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let posted = req.method() == Method::POST;
    let (l, prefix) = (&ctx.svc.login, ctx.svc.endpoint_prefix.as_str());
    let (headers, form) = match read(ctx.svc, req, &[Method::GET, Method::POST]).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    let mut browser = Browser::from_headers(&headers, secure);
    let hint = form.get("id_token_hint").and_then(|t| hint_claims(ctx, t));
    let client_id = form
        .get("client_id")
        .map(str::to_string)
        .or_else(|| hint.as_ref().map(|h| h.1.clone()));
    if let (Some(a), Some(h)) = (form.get("client_id"), &hint) {
        if a != h.1 {
            return Ok(bad("client_id is not the audience of id_token_hint.").render(l, prefix));
        }
    }
    let back = match form.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => find_client(ctx.svc, ctx.rt, id).await?,
                None => None,
            };
            match client {
                Some(c) if super::redirect_matches(&c.post_logout_redirect_uris, uri) => {
                    Some(uri.to_string())
                }
                _ => return Ok(bad(
                    "The address to return to after signing out is not registered for this client.",
                )
                .render(l, prefix)),
            }
        }
    };
    let session = browser.session(ctx.rt).await?;
    let hinted = match (&hint, &session) {
        (Some((sub, _)), Some(s)) => *sub == s.subject,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let confirmed = posted
        && form.get("confirm") == Some("yes")
        && browser.csrf_ok(&ctx.rt.csrf_key, form.get("csrf"));
    if posted && form.get("confirm").is_some() && !confirmed {
        return Ok(csrf_refused().render(l, prefix));
    }
    if !(hinted || confirmed || session.is_none()) {
        let mut set = Vec::new();
        if let Some(c) = browser.ensure_id()? {
            set.push(c);
        }
        let fields = carried(&form);
        let body = logout_form(prefix, &fields, &browser.csrf(&ctx.rt.csrf_key));
        let mut page = Page::new(StatusCode::OK, "Sign out", body);
        page.set_cookie = set;
        page.form_origin = back.as_deref().and_then(origin_of);
        return Ok(page.render(l, prefix));
    }
    let cleared = browser.sign_out(ctx.rt).await?;
    if let Some(s) = &session {
        tracing::info!(user = %s.subject, "signed out");
    }
    Ok(match back {
        Some(uri) => {
            let params = form
                .get("state")
                .map(|s| vec![("state", s.to_string())])
                .unwrap_or_default();
            // RP-initiated logout's answer carries only `state`.
            Redirect { uri, params }.response(None, vec![cleared])
        }
        None => {
            let mut page = Page::new(
                StatusCode::OK,
                "Signed out",
                "<p>You are signed out of this browser.</p>".into(),
            );
            page.set_cookie = vec![cleared];
            page.render(l, prefix)
        }
    })
}

fn bad(text: &str) -> Page {
    Page::error(StatusCode::BAD_REQUEST, "Sign-out link not valid", text)
}

fn carried(form: &Form) -> Vec<(String, String)> {
    [
        "id_token_hint",
        "post_logout_redirect_uri",
        "client_id",
        "state",
    ]
    .iter()
    .filter_map(|k| form.get(k).map(|v| (k.to_string(), v.to_string())))
    .collect()
}

fn origin_of(uri: &str) -> Option<String> {
    let u: http::Uri = uri.parse().ok()?;
    Some(format!("{}://{}", u.scheme_str()?, u.authority()?.as_str()))
}

/// (sub, aud) of an id_token this gateway signed (with one of its signing keys, the
/// ones its JWKS publishes; `typ: JWT`, never an access token); `iss` and `sub` are
/// required, expiry is not checked (a hint may be old).
fn hint_claims(ctx: &Ctx<'_>, token: &str) -> Option<(String, String)> {
    let v = ctx.verifier?;
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("JWT") {
        return None;
    }
    let kid = header.kid.as_deref()?;
    let signs = ctx.svc.jwks["keys"]
        .as_array()
        .is_some_and(|ks| ks.iter().any(|k| k["kid"].as_str() == Some(kid)));
    if !signs {
        return None;
    }
    let key = v
        .keys()
        .iter()
        .find(|k| k.kid == kid && k.alg == header.alg)?;
    let mut val = jsonwebtoken::Validation::new(key.alg);
    val.validate_exp = false;
    val.validate_aud = false;
    val.set_issuer(&[ctx.svc.issuer.as_str()]);
    val.required_spec_claims = ["iss", "sub"].iter().map(|s| s.to_string()).collect();
    let data = jsonwebtoken::decode::<serde_json::Value>(token, key.decoding_key(), &val).ok()?;
    let c = data.claims;
    Some((
        c.get("sub")?.as_str()?.to_string(),
        c.get("aud")?.as_str()?.to_string(),
    ))
}
