//! One pooled HTTP/1.1 client per upstream.
//!
//! The pool gets a timer so that `pool_idle_timeout` really closes idle connections
//! (hyper-util ignores the timeout without one); the connector carries the upstream's
//! connect timeout and disables Nagle.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::LimitedBody;
use crate::config::Upstream;

/// The client type used for every HTTP upstream.
pub type HttpClient = Client<HttpConnector, LimitedBody>;

/// Builds the client for one upstream.
pub fn build(u: &Upstream) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(u.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(u.pool_idle_timeout)
        .pool_max_idle_per_host(u.pool_max_idle_per_host)
        .set_host(false)
        .build(connector)
}
