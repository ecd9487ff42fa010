//! OTLP/HTTP export of request spans (`[telemetry] otlp_endpoint`), in the protocol's
//! JSON encoding (`POST <endpoint>`, `content-type: application/json`; ids in hex,
//! times in nanoseconds as strings), which every OpenTelemetry Collector and most
//! tracing back ends accept.
//!
//! Spans are queued (at most 8192; beyond, they are dropped and counted in the log)
//! and sent as they come, in batches of up to 512 (what queued while the previous
//! batch was in flight), from the background runtime, never from a worker. Written with serde_json rather than the
//! `opentelemetry-otlp` crate, which would bring gRPC, protobuf and a second tracing
//! pipeline for one message shape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{hex, TelemetryConfig};

const QUEUE: usize = 8192;
const BATCH: usize = 512;

/// One finished request, as a server span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// `METHOD route` (OpenTelemetry's span name for HTTP servers).
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .to_string()
}

impl Span {
    fn to_json(&self) -> Value {
        let mut span = json!({
            "traceId": hex(&self.trace_id),
            "spanId": hex(&self.span_id),
            "name": self.name,
            "kind": 2,
            "startTimeUnixNano": nanos(self.start),
            "endTimeUnixNano": nanos(self.end),
            "attributes": [
                {"key": "http.request.method", "value": {"stringValue": self.method}},
                {"key": "http.route", "value": {"stringValue": self.route}},
                {"key": "http.response.status_code", "value": {"intValue": self.status.to_string()}},
            ],
            // OpenTelemetry: a server span is an error for 5xx only.
            "status": {"code": if self.status >= 500 { 2 } else { 0 }},
        });
        if let Some(p) = self.parent {
            span["parentSpanId"] = Value::String(hex(&p));
        }
        span
    }
}

/// The OTLP request body for a batch of spans.
pub fn body(service_name: &str, spans: &[Span]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": service_name}},
            ]},
            "scopeSpans": [{
                "scope": {"name": "portcullis", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans.iter().map(Span::to_json).collect::<Vec<_>>(),
            }],
        }],
    })
}

/// Queues spans for the background sender.
#[derive(Debug)]
pub struct Exporter {
    tx: mpsc::Sender<Span>,
    dropped: AtomicU64,
}

impl Exporter {
    /// Starts the sender on `rt`; it ends when the exporter is dropped (after sending
    /// what is queued).
    pub fn start(config: &TelemetryConfig, rt: &tokio::runtime::Handle) -> Option<Arc<Exporter>> {
        let endpoint = config.otlp_endpoint.clone()?;
        let (tx, mut rx) = mpsc::channel::<Span>(QUEUE);
        let service = config.service_name.clone();
        rt.spawn(async move {
            let http = match crate::auth::http_client::builder()
                .timeout(Duration::from_secs(10))
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e.without_url(), "OTLP exporter not started");
                    return;
                }
            };
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let open = rx.recv_many(&mut batch, BATCH).await > 0;
                if !batch.is_empty() {
                    let sent = http
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .body(body(&service, &batch).to_string())
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status);
                    if let Err(e) = sent {
                        // Without the URL: an endpoint may carry a credential.
                        let e = e.without_url();
                        tracing::warn!(error = %e, spans = batch.len(), "OTLP export failed; spans dropped");
                    }
                    batch.clear();
                }
                if !open {
                    return;
                }
            }
        });
        Some(Arc::new(Exporter {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Queues a span; a full queue drops it.
    pub fn record(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n + 1, "OTLP queue full: spans dropped");
            }
        }
    }
}
