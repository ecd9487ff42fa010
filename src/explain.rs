//! `portcullis explain`: what the gateway would do with a request, and why.
//!
//! It runs the real stack (`stack::assemble`), in-process, on a snapshot of the
//! configuration, with recording terminal services instead of the upstream and the
//! token service: every verdict below comes from the layers that serve traffic, read
//! back from the facts they attach to the answer — the canonical path, the target
//! (own endpoint, forward-auth, preflight or route), authentication (own keys, an
//! issuer, an API key; the revocation deny-list when the store is there), authorization,
//! the rate-limit policy and key, and the identity headers the upstream would get.
//! The only code of its own is the table of routes, for the operator's eye.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::header::{ALLOW, HOST, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{Method, Request, Response};
use tower::ServiceExt as _;

use crate::auth::principal::Principal;
use crate::body::{Body, RequestBody};
use crate::config::{AuthMode, Config};
use crate::layer::auth::AuthLayer;
use crate::layer::context::ContextLayer;
use crate::layer::error_boundary::Cause;
use crate::layer::facts::{Answered, Caller as CallerFact, Canonical, Outcome, Rejection, Target};
use crate::policy::matcher::{method_allowed, normalize_host, split_path, Routable};
use crate::ratelimit::KeyInput;
use crate::stack::{assemble, Peer};
use crate::state::{Shared, Snapshot};
use crate::token::TokenRuntime;

/// Who the request comes from, as far as `explain` is told.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No token.
    Anonymous,
    /// A bearer token, verified as the gateway would.
    Token(String),
    /// A hypothetical principal with these scopes and roles (no token checked).
    Grants {
        scopes: Vec<String>,
        roles: Vec<String>,
    },
}

/// The outcome, as the HTTP status the client would get from Portcullis (`None` when
/// the request would be forwarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub status: Option<u16>,
    pub report: String,
}

/// A terminal service that keeps the request head it was given and answers `200`.
#[derive(Clone, Default)]
struct Record(Arc<Mutex<Option<Parts>>>);

impl tower::Service<Request<RequestBody>> for Record {
    type Response = Response<Body>;
    type Error = Rejection;
    type Future = std::future::Ready<Outcome>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Rejection>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let (parts, _body) = req.into_parts();
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(parts);
        }
        std::future::ready(Ok(Response::new(Body::Empty)))
    }
}

/// Explains how `method target` (with an optional `host`) would be handled, with the
/// token service's store (for revocations) when one is given.
pub fn explain(
    config: Config,
    method: &str,
    target: &str,
    host: Option<&str>,
    caller: &Caller,
) -> Decision {
    explain_with(config, false, method, target, host, caller)
}

/// [`explain`]; with `read_store`, an existing token-service store is opened to read
/// its revoked tokens (`portcullis explain --token`): never created, never seeded.
pub fn explain_with(
    config: Config,
    read_store: bool,
    method: &str,
    target: &str,
    host: Option<&str>,
    caller: &Caller,
) -> Decision {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request:   {method} {target}{}",
        host.map(|h| format!(" (host {h})")).unwrap_or_default()
    );
    let deny = |mut out: String, why: &str| {
        let _ = writeln!(out, "decision:  DENY 400 — {why}");
        Decision {
            status: Some(400),
            report: out,
        }
    };
    let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return deny(out, "not an HTTP method");
    };
    // A request always has a Host (the gateway refuses one without): the one given,
    // else the listen address, which no host-specific route names.
    let listen = config.server.listen.to_string();
    let mut req = Request::builder()
        .method(method.clone())
        .uri(target)
        .header(HOST, host.unwrap_or(&listen));
    if let Caller::Token(t) = caller {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let Ok(req) = req.body(RequestBody::empty()) else {
        return deny(out, "not a valid request target or header");
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(out, "decision:  cannot run the stack: {e}");
            return Decision {
                status: Some(500),
                report: out,
            };
        }
    };
    rt.block_on(run(config, read_store, req, method, caller, out))
}

/// The token service's revocations, when its store exists.
async fn revocations(config: &Config, out: &mut String) -> Option<Arc<TokenRuntime>> {
    let svc = config.token_service.as_ref()?;
    if !crate::token::store::exists(&svc.store_url) {
        let _ = writeln!(out, "store:     none yet (no token has been revoked)");
        return None;
    }
    match TokenRuntime::reader(svc, &tokio::runtime::Handle::current()).await {
        Ok(rt) => Some(rt),
        Err(e) => {
            let _ = writeln!(out, "store:     cannot read the revoked tokens: {e}");
            None
        }
    }
}

async fn run(
    config: Config,
    read_store: bool,
    req: Request<RequestBody>,
    method: Method,
    caller: &Caller,
    mut out: String,
) -> Decision {
    let query = req.uri().query().map(str::to_string);
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(normalize_host);
    let token_runtime = if read_store {
        revocations(&config, &mut out).await
    } else {
        None
    };
    let snapshot = Snapshot::standalone(config, token_runtime, &tokio::runtime::Handle::current());
    let shared = Shared::new(None, snapshot, 1);
    let snap = shared.snapshot.load_full();
    let auth = match caller {
        Caller::Grants { scopes, roles } => AuthLayer::assuming(Principal {
            subject: "(explain)".into(),
            scopes: scopes.clone(),
            roles: roles.clone(),
            client_id: None,
            issuer: String::new(),
            expires_at: 0,
            claims: Default::default(),
            expand_roles: true,
        }),
        Caller::Anonymous | Caller::Token(_) => AuthLayer::default(),
    };
    let (upstream, endpoint) = (Record::default(), Record::default());
    let peer: SocketAddr = ([127, 0, 0, 1], 0).into();
    let context = ContextLayer::new(shared, Arc::new(Peer::new(peer)), 0).recording();
    let stack = assemble(context, auth, endpoint.clone(), upstream.clone());
    let headers = req.headers().clone();
    let Ok(resp) = stack.oneshot(req).await;
    report(
        &mut out,
        &snap,
        &resp,
        &method,
        host.as_deref(),
        query.as_deref(),
    );
    let forwarded = upstream.0.lock().ok().and_then(|mut p| p.take());
    if let Some(parts) = &forwarded {
        rate_limit(&mut out, &snap, &resp, &headers);
        let prefix = &snap.config.server.identity_header_prefix;
        let _ = writeln!(out, "identity headers the upstream gets:");
        let mut any = false;
        for (k, v) in &parts.headers {
            if k.as_str().starts_with(prefix.as_str()) {
                any = true;
                let _ = writeln!(out, "  {k}: {}", v.to_str().unwrap_or("(binary)"));
            }
        }
        if !any {
            let _ = writeln!(out, "  (none: anonymous)");
        }
        let _ = writeln!(out, "decision:  ALLOW — forwarded");
        return Decision {
            status: None,
            report: out,
        };
    }
    if endpoint.0.lock().ok().is_some_and(|p| p.is_some()) {
        let _ = writeln!(out, "decision:  ANSWERED by Portcullis' own endpoint");
        return Decision {
            status: None,
            report: out,
        };
    }
    let status = resp.status().as_u16();
    let ext = resp.extensions();
    let why = match (ext.get::<Answered>(), ext.get::<Cause>()) {
        (Some(a), Some(c)) => format!("{}: {}", a.0, c.0),
        (Some(a), None) => a.0.to_string(),
        _ => "answered by the gateway".into(),
    };
    if status < 400 {
        let _ = writeln!(out, "decision:  ANSWERED {status} at the edge — {why}");
        return Decision {
            status: Some(status),
            report: out,
        };
    }
    let _ = writeln!(out, "decision:  DENY {status} — {why}");
    for name in [WWW_AUTHENTICATE, ALLOW, http::header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            let _ = writeln!(out, "           {name}: {}", v.to_str().unwrap_or(""));
        }
    }
    Decision {
        status: Some(status),
        report: out,
    }
}

/// The verdicts read off the answer's facts, and the routes table.
fn report(
    out: &mut String,
    snap: &Snapshot,
    resp: &Response<Body>,
    method: &Method,
    host: Option<&str>,
    query: Option<&str>,
) {
    let ext = resp.extensions();
    let Some(canonical) = ext.get::<Canonical>().map(|c| c.0.clone()) else {
        return;
    };
    let _ = writeln!(
        out,
        "canonical: {canonical}{}",
        query
            .map(|q| format!("  (query {q:?} passed on untouched)"))
            .unwrap_or_default()
    );
    let target = ext.get::<Target>().copied();
    let routes = snap.config.router.routes();
    let chosen = match target {
        Some(Target::Route(i) | Target::ForwardAuth(i) | Target::Preflight(Some(i))) => Some(i),
        _ => None,
    };
    if !matches!(target, Some(Target::Endpoint(_))) {
        let segs = split_path(&canonical);
        let _ = writeln!(out, "routes, most specific first:");
        for (i, r) in routes.iter().enumerate() {
            let verdict = if r.host().is_some_and(|h| host != Some(h)) {
                format!("host is not {}", r.host().unwrap_or_default())
            } else if !r.pattern().matches_segments(&segs) {
                "path does not match".to_string()
            } else if !method_allowed(r.methods(), method) {
                format!(
                    "path matches, method {method} not in {:?}",
                    r.methods().unwrap_or_default()
                )
            } else if Some(i) == chosen {
                "MATCH (chosen)".to_string()
            } else {
                "matches, but a more specific route came first".to_string()
            };
            let _ = writeln!(
                out,
                "  {:<28} {:<24} {verdict}",
                r.pattern().as_str(),
                format!("[{}]", r.name)
            );
        }
    }
    match target {
        Some(Target::Endpoint(ep)) => {
            let _ = writeln!(out, "target:    Portcullis' own endpoint ({})", ep.name());
        }
        Some(Target::Preflight(r)) => {
            let by = r
                .and_then(|i| routes.get(i))
                .map_or("[cors]".to_string(), |r| format!("route {}", r.name));
            let _ = writeln!(
                out,
                "target:    CORS preflight, answered by the policy of {by}"
            );
        }
        Some(Target::Route(i) | Target::ForwardAuth(i)) => {
            if let Some(route) = routes.get(i) {
                let fa = if matches!(target, Some(Target::ForwardAuth(_))) {
                    " (forward-auth: answered, not forwarded)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "route:     {} → upstream {} (auth {:?}){fa}",
                    route.name, route.upstream.name, route.auth
                );
                let needs = [
                    ("all of", &route.scopes),
                    ("one of", &route.any_scopes),
                    ("role, one of", &route.roles),
                ]
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(k, l)| format!("{k} [{}]", l.join(" ")))
                .collect::<Vec<_>>();
                if !needs.is_empty() {
                    let _ = writeln!(out, "requires:  {}", needs.join("; "));
                }
                if route.auth == AuthMode::None {
                    let _ = writeln!(out, "auth:      public route, no credential checked");
                }
            }
        }
        None => {}
    }
    if let Some(CallerFact(p)) = ext.get::<CallerFact>() {
        let _ = writeln!(
            out,
            "caller:    {} (issuer {}) scopes [{}] roles [{}]",
            p.subject,
            if p.issuer.is_empty() { "-" } else { &p.issuer },
            p.scopes.join(" "),
            p.roles.join(" ")
        );
    }
}

/// The rate-limit policy the route counts the request on, and its key.
fn rate_limit(out: &mut String, snap: &Snapshot, resp: &Response<Body>, headers: &http::HeaderMap) {
    let Some(Target::Route(i)) = resp.extensions().get::<Target>().copied() else {
        return;
    };
    let Some(route) = snap.config.router.routes().get(i) else {
        return;
    };
    let Some(policy) = snap.rate_limit(route.rate_limit.as_deref()) else {
        let _ = writeln!(out, "rate limit: none");
        return;
    };
    let caller = resp.extensions().get::<CallerFact>().map(|c| c.0.clone());
    let p = caller.as_deref();
    let key = policy.key_of(&KeyInput {
        ip: std::net::Ipv4Addr::LOCALHOST.into(),
        issuer: p.map(|p| p.issuer.as_str()),
        subject: p.map(|p| p.subject.as_str()),
        client_id: p.and_then(|p| p.client_id.as_deref()),
        route: &route.name,
        headers,
        username: None,
    });
    let _ = writeln!(
        out,
        "rate limit: policy {} ({}), key {key:?}",
        policy.name,
        policy.policy_header()
    );
}

#[cfg(test)]
mod tests;
