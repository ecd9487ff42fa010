//! One access line per request, denials included: this layer takes the request's own
//! fields going in (id, client IP, method, allow-listed query) and, coming out, the
//! facts the layers below attached to the answer ([`Canonical`] or [`LogPath`],
//! [`Target`], [`Caller`], [`Answered`], [`UpstreamTime`], [`BytesIn`]); the line is
//! written when the body has been sent (`middleware/access_log.rs`). Off
//! (`server.access_log = false`), it costs one branch.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response};
use tower::Service;

use super::facts::{
    Answered, BytesIn, Caller, Canonical, Ctx, LogPath, RequestId, Target, UpstreamTime,
};
use crate::body::Body;
use crate::middleware::access_log::{allowed_query, Fields, Line, Logged};
use crate::state::Snapshot;

unit_layer!(AccessLogLayer => AccessLog);

/// What the line needs from the request.
#[derive(Debug)]
pub struct Pending {
    snap: Arc<Snapshot>,
    started: Instant,
    request_id: String,
    client_ip: IpAddr,
    method: Method,
    query: Option<String>,
    trace_id: Option<[u8; 16]>,
}

impl<S, B> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!();

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let pending = req
            .extensions()
            .get::<Ctx>()
            .filter(|c| c.snap.config.server.access_log)
            .map(|c| {
                let server = &c.snap.config.server;
                let query = if server.access_log_query.is_empty() {
                    None
                } else {
                    req.uri()
                        .query()
                        .and_then(|q| allowed_query(q, &server.access_log_query))
                };
                Box::new(Pending {
                    snap: c.snap.clone(),
                    started: Instant::now(),
                    request_id: req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|r| r.0.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                    client_ip: c.client_ip,
                    method: req.method().clone(),
                    query,
                    trace_id: c.trace.as_ref().map(|t| t.trace_id),
                })
            });
        ResponseFuture {
            inner: self.inner.call(req),
            pending,
        }
    }
}

/// The line's fields from the answer's facts.
fn fields(p: &Pending, resp: &Response<Body>) -> Fields {
    let ext = resp.extensions();
    let routes = p.snap.config.router.routes();
    let target = ext.get::<Target>().copied();
    let route = match target {
        Some(Target::Route(i) | Target::ForwardAuth(i) | Target::Preflight(Some(i))) => {
            routes.get(i)
        }
        _ => None,
    };
    let caller = ext.get::<Caller>();
    Fields {
        path: ext
            .get::<LogPath>()
            .map(|l| l.0.clone())
            .or_else(|| ext.get::<Canonical>().map(|c| c.0.clone())),
        query: p.query.clone(),
        route: match target {
            Some(Target::Endpoint(ep)) => Some(format!("portcullis:{}", ep.name())),
            _ => route.map(|r| r.name.clone()),
        },
        upstream: match target {
            Some(Target::Route(_)) => route.map(|r| r.upstream.name.clone()),
            _ => None,
        },
        subject: caller.map(|c| c.0.subject.clone()),
        client_id: caller.and_then(|c| c.0.client_id.clone()),
        reason: ext.get::<Answered>().map(|a| a.0.as_str()),
        upstream_us: ext.get::<UpstreamTime>().map(|u| u.0),
        bytes_in: ext.get::<BytesIn>().map(|b| b.0.clone()),
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Box<Pending>>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (resp, p) = match (ready!(this.inner.poll(cx)), this.pending.take()) {
            (Ok(resp), Some(p)) => (resp, p),
            (out, _) => return Poll::Ready(out),
        };
        let line = Line {
            info: fields(&p, &resp),
            request_id: p.request_id,
            client_ip: p.client_ip,
            method: p.method,
            status: resp.status().as_u16(),
            started: p.started,
            trace_id: p.trace_id,
        };
        let (parts, body) = resp.into_parts();
        Poll::Ready(Ok(Response::from_parts(
            parts,
            Body::Logged(Box::new(Logged::new(body, line))),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::layer::testing::{route, snapshot};

    #[test]
    fn the_line_is_made_of_the_answers_facts() {
        let s = snapshot("[server]\naccess_log = true\n");
        let pending = Pending {
            snap: s.clone(),
            started: Instant::now(),
            request_id: "r1".into(),
            client_ip: [192, 0, 2, 7].into(),
            method: Method::GET,
            query: None,
            trace_id: None,
        };
        let mut resp = Response::new(Body::Empty);
        let ext = resp.extensions_mut();
        ext.insert(Canonical(Arc::from("/public/x")));
        ext.insert(Target::Route(route(&s, "public")));
        ext.insert(Answered(Reason::UpstreamConnect));
        ext.insert(UpstreamTime(42));
        let f = fields(&pending, &resp);
        assert_eq!(f.path.as_deref(), Some("/public/x"));
        assert_eq!(f.route.as_deref(), Some("public"));
        assert_eq!(f.upstream.as_deref(), Some("echo"));
        assert_eq!(f.reason, Some("upstream_connect"));
        assert_eq!(f.upstream_us, Some(42));
        assert_eq!(f.subject, None);
        // A forward-auth line names the request it decided.
        resp.extensions_mut()
            .insert(LogPath(Arc::from("/auth GET /public/x")));
        resp.extensions_mut()
            .insert(Target::ForwardAuth(route(&s, "public")));
        let f = fields(&pending, &resp);
        assert_eq!(f.path.as_deref(), Some("/auth GET /public/x"));
        assert_eq!(f.upstream, None);
    }
}
