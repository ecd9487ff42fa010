//! `GET/POST {prefix}/authorize`: the authorization endpoint and the steps of a
//! browser sign-in — the login form (`action=login`), the consent form
//! (`action=consent`), and the code sent back to the client.
//!
//! The login form runs exactly the password grant's check (`verify_login`): the same
//! login limiter and failed-attempt accounting, the same hashing gate, and one text
//! for every failure (no user enumeration).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use super::pages::{consent_form, login_form, Page};
use super::request::{parse, AuthzRequest, Redirect, Refusal};
use super::session::Browser;
use crate::auth::api_key;
use crate::body::Body;
use crate::error::GatewayError;
use crate::token::endpoint::{Form, OAuthError};
use crate::token::grants::credentials::{find_user, User};
use crate::token::grants::issue::random_b64;
use crate::token::grants::password::verify_login;
use crate::token::grants::scope::{grant_scopes, is_identity_scope, within_client};
use crate::token::grants::Ctx;
use crate::token::store::{CodeRecord, SessionRecord};
use crate::token::{now_secs, TokenService};

/// The method checked against `allowed` (else `405`), then the parameters read; an
/// unreadable request is answered with an error page (the inner `Err`).
pub(super) async fn read<B>(
    svc: &TokenService,
    req: Request<B>,
    allowed: &[Method],
) -> Result<Result<(HeaderMap, Form), Response<Body>>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !allowed.contains(req.method()) {
        return Err(GatewayError::MethodNotAllowed(allowed.to_vec()));
    }
    Ok(params(req)
        .await
        .map_err(|page| page.render(&svc.login, &svc.endpoint_prefix)))
}

/// Reads the request's parameters: the query of a GET, the form of a POST.
async fn params<B>(req: Request<B>) -> Result<(HeaderMap, Form), Page>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bad = |t: &str| Page::error(StatusCode::BAD_REQUEST, "This request is not valid", t);
    if req.method() == Method::POST {
        crate::token::endpoint::read_form(req)
            .await
            .map_err(|e| bad(e.description))
    } else {
        let form = Form::parse(req.uri().query().unwrap_or("").as_bytes())
            .map_err(|e| bad(e.description))?;
        Ok((req.headers().clone(), form))
    }
}

/// The endpoint.
pub(crate) async fn authorize<B>(
    ctx: &Ctx<'_>,
    secure: bool,
    req: Request<B>,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let svc = ctx.svc;
    let l = &svc.login;
    let prefix = svc.endpoint_prefix.as_str();
    // The forms are posted; an `action` in a GET (a password in a URL) is ignored.
    let posted = req.method() == Method::POST;
    let (headers, form) = match read(svc, req, &[Method::GET, Method::POST]).await? {
        Ok(p) => p,
        Err(page) => return Ok(page),
    };
    if svc.signing.alg == jsonwebtoken::Algorithm::HS256 {
        return Ok(Page::error(
            StatusCode::BAD_REQUEST,
            "Sign-in is not available",
            "Browser sign-in needs an RS256, ES256 or EdDSA signing key ([tokens] signing_key).",
        )
        .render(l, prefix));
    }
    let areq = match parse(svc, ctx.rt, &form).await {
        Ok(r) => r,
        Err(Refusal::Page(p)) => return Ok(p.render(l, prefix)),
        Err(Refusal::Redirect(r)) => return Ok(r.response(Some(&svc.issuer), Vec::new())),
        Err(Refusal::Internal(_)) => return Ok(failure().render(l, prefix)),
    };
    let mut flow = Flow {
        ctx,
        areq,
        browser: Browser::from_headers(&headers, secure),
        set_cookie: Vec::new(),
    };
    let out = match form.get("action").filter(|_| posted) {
        Some("login") => flow.login(&form).await,
        Some("consent") => flow.consent(&form).await,
        _ => flow.start().await,
    };
    Ok(answer(flow, out))
}

/// The response for what a step of the flow decided.
pub(super) fn answer(mut flow: Flow<'_, '_>, out: Result<Step, OAuthError>) -> Response<Body> {
    let svc = flow.ctx.svc;
    let (l, prefix) = (&svc.login, svc.endpoint_prefix.as_str());
    match out {
        Ok(Step::Page(mut p)) => {
            p.set_cookie.append(&mut flow.set_cookie);
            p.form_origin = origin(&flow.areq.redirect_uri);
            p.render(l, prefix)
        }
        Ok(Step::Redirect(r)) => r.response(Some(&svc.issuer), flow.set_cookie),
        Err(e) => {
            tracing::error!(code = e.code, "authorization failed");
            failure().render(l, prefix)
        }
    }
}

fn failure() -> Page {
    Page::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Signing in failed on our side. Try again in a moment.",
    )
}

/// `scheme://host[:port]` of a URI (for CSP `form-action`).
fn origin(uri: &str) -> Option<String> {
    let u: http::Uri = uri.parse().ok()?;
    let o = format!("{}://{}", u.scheme_str()?, u.authority()?.as_str());
    o.bytes()
        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'\'')
        .then_some(o)
}

/// What a step answers.
pub(super) enum Step {
    Page(Page),
    Redirect(Redirect),
}

/// One authorization request in one browser.
pub(super) struct Flow<'a, 'c> {
    pub(super) ctx: &'a Ctx<'c>,
    pub(super) areq: AuthzRequest,
    pub(super) browser: Browser,
    pub(super) set_cookie: Vec<HeaderValue>,
}

impl Flow<'_, '_> {
    fn svc(&self) -> &TokenService {
        self.ctx.svc
    }

    /// Whether a session is recent enough for this request: within `max_age`, and
    /// for `prompt=login` a sign-in of the last [`PROMPT_LOGIN_WINDOW`] seconds (the
    /// one this request's login form just made: the consent form that follows it
    /// cannot be posted with an older session).
    fn fresh(&self, s: &SessionRecord, after_login: bool) -> bool {
        let now = now_secs();
        let within_max_age = self
            .areq
            .max_age
            .is_none_or(|m| s.auth_time.saturating_add(m) >= now);
        let login_asked = self.areq.prompt.iter().any(|p| p == "login");
        let login_ok =
            !login_asked || (after_login && s.auth_time.saturating_add(PROMPT_LOGIN_WINDOW) >= now);
        within_max_age && login_ok
    }

    /// A fresh request: signed in already (and recently enough), or the login page.
    async fn start(&mut self) -> Result<Step, OAuthError> {
        let session = self.browser.session(self.ctx.rt).await?;
        let fresh = session.filter(|s| self.fresh(s, false));
        match fresh {
            Some(s) => self.signed_in(s).await,
            None if self.areq.prompt.iter().any(|p| p == "none") => Ok(Step::Redirect(
                Redirect::error(&self.areq, "login_required", "the user is not signed in"),
            )),
            None => self.login_page(StatusCode::OK, None, ""),
        }
    }

    pub(super) fn login_page(
        &mut self,
        status: StatusCode,
        error: Option<&str>,
        username: &str,
    ) -> Result<Step, OAuthError> {
        if let Some(c) = self.browser.ensure_id()? {
            self.set_cookie.push(c);
        }
        let prefix = &self.svc().endpoint_prefix;
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.areq.fields {
                q.append_pair(k, v);
            }
            q.finish()
        };
        let providers: Vec<(String, String)> = self
            .svc()
            .login
            .providers
            .iter()
            .map(|p| {
                (
                    p.display_name.clone(),
                    format!("{prefix}/login/{}?{query}", p.name),
                )
            })
            .collect();
        let csrf = self.browser.csrf(&self.ctx.rt.csrf_key);
        let body = login_form(
            prefix,
            &self.areq.fields,
            &csrf,
            error,
            username,
            &providers,
        );
        let mut page = Page::new(status, "Sign in", body);
        if status == StatusCode::TOO_MANY_REQUESTS {
            page.heading = "Too many attempts".into();
        }
        Ok(Step::Page(page))
    }

    /// The login form was posted.
    async fn login(&mut self, form: &Form) -> Result<Step, OAuthError> {
        if !self
            .browser
            .csrf_ok(&self.ctx.rt.csrf_key, form.get("csrf"))
        {
            return Ok(Step::Page(csrf_refused()));
        }
        let username = form.get("username").unwrap_or("");
        let password = form.get("password").unwrap_or("");
        match verify_login(self.ctx, username, password).await {
            Ok(user) => {
                let session = SessionRecord {
                    subject: user.username.clone(),
                    auth_time: now_secs(),
                };
                let ttl = self.svc().login.session_ttl.as_secs();
                let set = self.browser.sign_in(self.ctx.rt, &session, ttl).await?;
                self.set_cookie.push(set);
                tracing::info!(user = %user.username, client = %self.areq.client.client_id, "signed in (login page)");
                self.signed_in(session).await
            }
            Err(e) if e.code == "invalid_grant" || e.code == "invalid_request" => self.login_page(
                StatusCode::BAD_REQUEST,
                Some("The username or password is incorrect."),
                username,
            ),
            Err(e) if e.code == "rate_limited" => {
                let wait = e.retry_after.unwrap_or(1);
                self.login_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(&format!(
                        "Too many attempts. Wait {wait} seconds, then try again."
                    )),
                    username,
                )
            }
            Err(e) if e.code == "temporarily_unavailable" => self.login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Signing in is busy right now. Try again in a moment."),
                username,
            ),
            Err(e) => Err(e),
        }
    }

    /// The consent form was posted.
    async fn consent(&mut self, form: &Form) -> Result<Step, OAuthError> {
        if !self
            .browser
            .csrf_ok(&self.ctx.rt.csrf_key, form.get("csrf"))
        {
            return Ok(Step::Page(csrf_refused()));
        }
        let session = self.browser.session(self.ctx.rt).await?;
        let Some(session) = session.filter(|s| self.fresh(s, true)) else {
            return self.login_page(StatusCode::OK, None, "");
        };
        let Some(user) = self.user(&session).await? else {
            return self.login_page(StatusCode::OK, None, "");
        };
        if form.get("decision") != Some("allow") {
            tracing::info!(user = %user.username, client = %self.areq.client.client_id, "consent denied");
            return Ok(Step::Redirect(Redirect::error(
                &self.areq,
                "access_denied",
                "the user denied the request",
            )));
        }
        let scopes = match self.scopes(&user) {
            Ok(s) => s,
            Err(r) => return Ok(Step::Redirect(r)),
        };
        self.ctx
            .rt
            .store
            .save_consent(&user.username, &self.areq.client.client_id, &scopes)
            .await
            .map_err(crate::token::grants::server_error)?;
        self.issue_code(&session, &scopes).await
    }

    async fn user(&mut self, session: &SessionRecord) -> Result<Option<User>, OAuthError> {
        match find_user(self.ctx, &session.subject).await? {
            Some(u) if !u.disabled => Ok(Some(u)),
            _ => {
                let set = self.browser.sign_out(self.ctx.rt).await?;
                self.set_cookie.push(set);
                Ok(None)
            }
        }
    }

    /// Signed in: consent if needed, else the code.
    pub(super) async fn signed_in(&mut self, session: SessionRecord) -> Result<Step, OAuthError> {
        let Some(user) = self.user(&session).await? else {
            if self.areq.prompt.iter().any(|p| p == "none") {
                return Ok(Step::Redirect(Redirect::error(
                    &self.areq,
                    "login_required",
                    "the user is not signed in",
                )));
            }
            return self.login_page(StatusCode::OK, None, "");
        };
        let scopes = match self.scopes(&user) {
            Ok(s) => s,
            Err(r) => return Ok(Step::Redirect(r)),
        };
        let client = &self.areq.client;
        let asked = self.areq.prompt.iter().any(|p| p == "consent");
        // A public client whose redirect URI any local program could claim (loopback,
        // private-use scheme) is never approved without the user at least once
        // (RFC 8252 §8.6), whatever `require_consent` says.
        let native =
            client.secret_sha256.is_none() && super::is_native_redirect(&self.areq.redirect_uri);
        let needed = asked
            || ((client.require_consent || native) && {
                let given = self
                    .ctx
                    .rt
                    .store
                    .consent(&user.username, &client.client_id)
                    .await
                    .map_err(crate::token::grants::server_error)?;
                !scopes.iter().all(|s| given.contains(s))
            });
        if needed {
            if self.areq.prompt.iter().any(|p| p == "none") {
                return Ok(Step::Redirect(Redirect::error(
                    &self.areq,
                    "consent_required",
                    "the user has not consented to this client",
                )));
            }
            let csrf = self.browser.csrf(&self.ctx.rt.csrf_key);
            let body = consent_form(
                &self.svc().endpoint_prefix,
                &self.areq.fields,
                &csrf,
                &user.username,
                &client.client_id,
                &scopes,
            );
            return Ok(Step::Page(Page::new(
                StatusCode::OK,
                &format!("Allow {}?", client.client_id),
                body,
            )));
        }
        self.issue_code(&session, &scopes).await
    }

    /// The scopes to grant: OpenID scopes as asked; the rest within the user's roles
    /// and the client's list, by `scope_policy` (all allowed when `scope` is absent).
    fn scopes(&self, user: &User) -> Result<Vec<String>, Redirect> {
        let c = &self.areq.client;
        let allowed = within_client(TokenService::role_scopes(&user.roles, self.ctx.roles), c);
        let (identity, api): (Vec<String>, Vec<String>) = self
            .areq
            .scope
            .iter()
            .cloned()
            .partition(|s| is_identity_scope(s));
        // A client's `scopes` list, when set, bounds the OpenID scopes too.
        let identity: Vec<String> = identity
            .into_iter()
            .filter(|s| c.scopes.is_empty() || c.scopes.contains(s))
            .collect();
        let api = if self.areq.scope.is_empty() {
            allowed
        } else if api.is_empty() {
            Vec::new()
        } else {
            grant_scopes(self.svc().scope_policy, &api, &allowed)
                .map_err(|e| Redirect::error(&self.areq, "invalid_scope", e.description))?
        };
        Ok(identity.into_iter().chain(api).collect())
    }

    /// Stores a code and sends it to the client.
    async fn issue_code(
        &mut self,
        s: &SessionRecord,
        scopes: &[String],
    ) -> Result<Step, OAuthError> {
        let code = random_b64(32)?;
        let ttl = i64::try_from(self.svc().login.code_ttl.as_secs()).unwrap_or(60);
        let a = &self.areq;
        self.ctx
            .rt
            .store
            .insert_code(CodeRecord {
                code_hash: api_key::hash(&code),
                client_id: a.client.client_id.clone(),
                redirect_uri: a.redirect_uri.clone(),
                redirect_given: a.redirect_given,
                code_challenge: a.code_challenge.clone().unwrap_or_default(),
                nonce: a.nonce.clone().unwrap_or_default(),
                scope: scopes.join(" "),
                subject: s.subject.clone(),
                auth_time: s.auth_time,
                family_id: random_b64(16)?,
                expires_at: now_secs() + ttl,
            })
            .await
            .map_err(crate::token::grants::server_error)?;
        let mut params = vec![("code", code)];
        if let Some(st) = &a.state {
            params.push(("state", st.clone()));
        }
        tracing::info!(user = %s.subject, client = %a.client.client_id, "authorization code issued");
        Ok(Step::Redirect(Redirect {
            uri: a.redirect_uri.clone(),
            params,
        }))
    }
}

/// How recent a sign-in must be for a `prompt=login` request's consent form.
const PROMPT_LOGIN_WINDOW: i64 = 600;

/// A form without this browser's CSRF token: refused, nothing redirected.
pub(super) fn csrf_refused() -> Page {
    Page::error(
        StatusCode::BAD_REQUEST,
        "This form has expired",
        "The form was not sent from this browser's sign-in page (or cookies are off). Go back to the application and sign in again.",
    )
}
