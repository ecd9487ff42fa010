//! What the layers tell each other: typed request and response extensions.
//!
//! Going in, a layer that learns something puts it on the request ([`Ctx`] at the
//! entry, [`RequestId`], [`Canonical`], [`Target`], [`Admitted`]). Coming out, the same
//! layer attaches what the access log, CORS and metrics need to the response — or, when
//! the layers below failed, to the [`Rejection`] — so that a `401` or a `502` still says
//! which route it was. There is no shared mutable struct: a fact is written once, by
//! the layer that owns it, and read by whoever needs it.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Extensions, HeaderValue, Response};

use crate::auth::principal::Principal;
use crate::body::Body;
use crate::error::{GatewayError, OrInternal as _, Reason};
use crate::stack::Peer;
use crate::state::Snapshot;
use crate::token::endpoint::Endpoint;

/// Set by the entry for the whole request: one configuration snapshot (a reload never
/// mixes two), the connection, and the client's IP after the trusted-proxy rule.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub snap: Arc<Snapshot>,
    pub peer: Arc<Peer>,
    /// Picks this worker's upstream pools and token cache.
    pub worker: usize,
    pub client_ip: IpAddr,
    /// Whether answers carry facts beyond the target (canonical path, caller): for
    /// the access log, CORS or `explain`; off, the hot path skips those allocations.
    pub facts: bool,
    /// The request's W3C trace (`crate::telemetry`), unless tracing is off. Kept
    /// here rather than as an extension of its own: one map insert less per request.
    pub trace: Option<crate::telemetry::TraceContext>,
}

/// The request's `x-request-id` (the client's if sane, else generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// The canonical path (`policy/path.rs`): what routing, policy and the upstream use.
#[derive(Debug, Clone)]
pub struct Canonical(pub Arc<str>);

/// What the request is for, decided once by the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One of the token service's endpoints.
    Endpoint(Endpoint),
    /// A forward-auth question about the request a trusted proxy describes, which takes
    /// this route (index into the router's routes).
    ForwardAuth(usize),
    /// A CORS preflight answered at the edge, by this route's policy (or `[cors]`).
    Preflight(Option<usize>),
    /// A routed request (index into the router's routes).
    Route(usize),
}

/// The verified caller and its effective scopes (`None`: anonymous and admitted).
#[derive(Debug, Clone)]
pub struct Admitted(pub Option<(Arc<Principal>, Vec<String>)>);

/// Response fact: who the caller was (for a `403` too).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

/// Response fact: microseconds until the upstream's response head.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTime(pub u64);

/// Response fact: the request body bytes read (counted while it streams).
#[derive(Debug, Clone)]
pub struct BytesIn(pub Arc<AtomicU64>);

/// Response fact: the access log's `path` when it is not the canonical path (a
/// forward-auth line names the request it decided).
#[derive(Debug, Clone)]
pub struct LogPath(pub Arc<str>);

/// Response fact: why the gateway answered itself (every rejection, and preflights).
#[derive(Debug, Clone, Copy)]
pub struct Answered(pub Reason);

/// A request the layers below refused or failed: the error and the facts learned on
/// the way, which the error boundary moves onto the rendered response.
#[derive(Debug)]
pub struct Rejection {
    pub error: GatewayError,
    pub facts: Extensions,
}

impl From<GatewayError> for Rejection {
    fn from(error: GatewayError) -> Rejection {
        Rejection {
            error,
            facts: Extensions::new(),
        }
    }
}

/// What every layer below the error boundary answers.
pub type Outcome = Result<Response<Body>, Rejection>;

/// Adds a fact to an answer, whichever way it went.
pub fn attach<T: Clone + Send + Sync + 'static>(out: &mut Outcome, fact: T) {
    match out {
        Ok(resp) => {
            resp.extensions_mut().insert(fact);
        }
        Err(rej) => {
            rej.facts.insert(fact);
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner future's outcome, with a fact attached (when there is one).
    pub struct Attach<F, T> {
        #[pin]
        inner: F,
        fact: Option<T>,
    }
}

impl<F, T> Attach<F, T> {
    pub fn new(inner: F, fact: Option<T>) -> Attach<F, T> {
        Attach { inner, fact }
    }
}

impl<F, T> Future for Attach<F, T>
where
    F: Future<Output = Outcome>,
    T: Clone + Send + Sync + 'static,
{
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.project();
        let mut out = ready!(this.inner.poll(cx));
        if let Some(f) = this.fact.take() {
            attach(&mut out, f);
        }
        Poll::Ready(out)
    }
}

pin_project_lite::pin_project! {
    /// A layer's future: answered (or refused) at once, or the inner service's. The
    /// early outcome is boxed: it is the rare path, and an inline `Outcome` would make
    /// every future above this one (and every move of it) ~200 bytes larger.
    #[project = EarlyProj]
    pub enum Early<F> {
        Ready { out: Option<Box<Outcome>> },
        Inner { #[pin] inner: F },
    }
}

impl<F> Early<F> {
    pub fn refused(e: GatewayError) -> Early<F> {
        Early::ready(Err(e.into()))
    }

    pub fn answered(resp: Response<Body>) -> Early<F> {
        Early::ready(Ok(resp))
    }

    pub fn ready(out: Outcome) -> Early<F> {
        Early::Ready {
            out: Some(Box::new(out)),
        }
    }

    pub fn inner(inner: F) -> Early<F> {
        Early::Inner { inner }
    }
}

impl<F: Future<Output = Outcome>> Future for Early<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self.project() {
            EarlyProj::Ready { out } => Poll::Ready(match out.take() {
                Some(out) => *out,
                None => Err(GatewayError::Internal.into()),
            }),
            EarlyProj::Inner { inner } => inner.poll(cx),
        }
    }
}

/// A boxed outcome: the slow paths that must own the request across an await.
pub type BoxOutcome = Pin<Box<dyn Future<Output = Outcome> + Send>>;

pin_project_lite::pin_project! {
    /// A layer's future when it has a slow path: the inline future, or a boxed one
    /// (a Redis decision, an external issuer's token).
    #[project = OrBoxedProj]
    pub enum OrBoxed<F> {
        Now { #[pin] inner: F },
        Boxed { inner: BoxOutcome },
    }
}

impl<F: Future<Output = Outcome>> Future for OrBoxed<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self.project() {
            OrBoxedProj::Now { inner } => inner.poll(cx),
            OrBoxedProj::Boxed { inner } => inner.as_mut().poll(cx),
        }
    }
}

/// The inner service's future when a check passed, the refusal otherwise.
pub fn proceed<F>(checked: Result<(), GatewayError>, call: impl FnOnce() -> F) -> Early<F> {
    match checked {
        Ok(()) => Early::inner(call()),
        Err(e) => Early::refused(e),
    }
}

/// The request's context; every request that entered the stack has one.
pub fn ctx<B>(req: &http::Request<B>) -> Result<&Ctx, GatewayError> {
    req.extensions().get::<Ctx>().or_internal()
}
