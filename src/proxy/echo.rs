//! The built-in `echo` upstream (`[[upstreams]] echo = true`).
//!
//! It answers, in-process, with a JSON description of the request exactly as an HTTP
//! upstream would have received it (after path rewriting, header hygiene, hop-by-hop
//! removal and `X-Forwarded-*`). The bundled `gateway.toml` routes to it so that the
//! gateway works out of the box and operators can see what their upstream will get.
//! The body is read and counted, never kept.

use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::body::{Body, LimitedBody};
use crate::error::GatewayError;

fn headers_json(h: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in h.keys() {
        let values: Vec<Value> = h
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let v = if values.len() == 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        out.insert(name.as_str().to_string(), v);
    }
    Value::Object(out)
}

/// Answers the request with its own description.
pub async fn respond(
    req: Request<LimitedBody>,
    upstream: &str,
    exceeded: &std::sync::atomic::AtomicBool,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_bytes += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) if exceeded.load(std::sync::atomic::Ordering::Relaxed) => {
                return Err(GatewayError::PayloadTooLarge)
            }
            Err(_) => {
                return Err(GatewayError::BadRequest(
                    "the request body could not be read",
                ))
            }
        }
    }
    let v = json!({
        "upstream": upstream,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers_json(&parts.headers),
        "body_bytes": body_bytes,
    });
    // Pretty-printed: it is read by people, with curl.
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    let mut resp = Response::new(Body::full(text));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
