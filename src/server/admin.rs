//! The admin listener: `/healthz`, `/readyz` and `/metrics`, HTTP/1.1 only, with the
//! public listener's head deadline and accept backoff (`server/plain.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::collections::HashMap;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::Body;
use crate::error::json_response;
use crate::metrics::{metrics, Name, UpstreamLabel};
use crate::runtime::Shared;

pub(super) async fn serve_admin(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let state = shared.clone();
    let answer = move |req: &Request<Incoming>| admin(req, &state);
    super::plain::serve_plain("admin", listener, shared, stop, answer).await;
}

fn admin(req: &Request<Incoming>, shared: &Shared) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" if shared.draining.load(Ordering::Relaxed) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining"}),
        ),
        "/readyz" if !shared.is_ready() => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "waiting for issuer keys"}),
        ),
        "/readyz" => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        "/metrics" => scrape(shared),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_found", "error_description": "admin endpoints: /healthz, /readyz, /metrics"}),
        ),
    }
}

/// `/metrics`: the gauges that describe the current snapshot are read now, then every
/// metric is encoded (OpenMetrics text, which Prometheus asks for and accepts).
fn scrape(shared: &Shared) -> Response<Body> {
    let m = metrics();
    let snap = shared.snapshot.load();
    let mut idle: HashMap<&str, i64> = HashMap::new();
    for (upstream, pool) in snap.pools() {
        *idle.entry(upstream).or_default() += i64::try_from(pool.idle_count()).unwrap_or(0);
    }
    m.upstream_idle.clear();
    for (upstream, n) in idle {
        m.upstream_idle
            .get_or_create(&UpstreamLabel {
                upstream: Name::Configured(Arc::from(upstream)),
            })
            .set(n);
    }
    let mut resp = Response::new(Body::full(m.encode()));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
