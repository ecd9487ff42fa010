//! The small plain HTTP/1.1 listeners — admin (`server/admin.rs`) and the HTTPS
//! redirect (`server/redirect.rs`): the public listener's head deadline
//! (`server.header_read_timeout`, for every request head), connection cap
//! (`server.max_connections_per_worker`, each) and accept backoff, so a port left
//! open cannot be held by idle or trickling connections or spin on accept errors
//! (EMFILE); every answer carries `x-request-id` (the caller's if sane, else
//! a new one), as the public listener's do.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::Body;
use crate::middleware::request_id;
use crate::runtime::Shared;

/// Serves `answer` on `listener` until `stop`; `what` names the listener in logs.
pub(super) async fn serve_plain<F>(
    what: &'static str,
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    answer: F,
) where
    F: Fn(&Request<Incoming>) -> Response<Body> + Clone + Send + Sync + 'static,
{
    // The public listener's per-worker cap bounds these too: a flood on an exposed
    // redirect port must not take the descriptors the public listener needs.
    let cap = shared
        .snapshot
        .load()
        .config
        .server
        .bounds
        .max_connections_per_worker;
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let stream = tokio::select! {
            res = listener.accept() => match res {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let head_deadline = shared.snapshot.load().config.server.header_read_timeout;
        let answer = answer.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let id = request_id::ensure(req.headers_mut());
            let mut resp = answer(&req);
            resp.headers_mut()
                .insert(request_id::X_REQUEST_ID.clone(), id);
            std::future::ready(Ok::<_, Infallible>(resp))
        });
        tokio::spawn(async move {
            let _slot = slot;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(head_deadline)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
