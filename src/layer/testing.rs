//! Helpers for the layers' unit tests: a snapshot from a `gateway.toml` fragment and
//! requests carrying the entry's [`Ctx`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http::Request;

use super::facts::Ctx;
use crate::stack::Peer;
use crate::state::Snapshot;

/// An echo upstream `echo` and one public route `/public/**` on it come first, so a
/// fragment adds only what its test is about.
pub fn snapshot(fragment: &str) -> Arc<Snapshot> {
    let text = format!(
        "{fragment}\n[[upstreams]]\nname = \"echo\"\necho = true\n\n\
         [[routes]]\nname = \"public\"\npath = \"/public/**\"\nupstream = \"echo\"\nauth = \"none\"\n"
    );
    let config = crate::config::parse_str(&text, Path::new("layer-test.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}"));
    Arc::new(Snapshot::new(config, 1, None))
}

/// A request for `uri` from 192.0.2.7, with its context.
pub fn request_with_ctx(snap: &Arc<Snapshot>, uri: &str) -> Request<()> {
    let mut req = Request::builder()
        .uri(uri)
        .header("host", "gw.test")
        .body(())
        .unwrap_or_else(|e| panic!("test request: {e}"));
    let addr: SocketAddr = ([192, 0, 2, 7], 40000).into();
    req.extensions_mut().insert(Ctx {
        snap: snap.clone(),
        peer: Arc::new(Peer::new(addr)),
        worker: 0,
        client_ip: addr.ip(),
    });
    req
}
