//! Integration tests: the real gateway, in-process, on loopback, in front of real
//! upstreams. One test crate so that the support code compiles once.

mod access_log;
mod admin;
mod auth;
mod bounds;
mod canonical;
mod cli;
mod clients;
mod corpus;
mod cors;
mod forward_auth;
mod issuers;
mod login_flood;
mod metrics;
mod pool;
mod postgres;
mod proxying;
mod rate_limit;
mod raw_upstream;
mod redis;
mod reload;
mod routing;
mod shutdown;
mod signin;
mod support;
mod tls;
mod token;
mod token_grants;
mod tracing;
mod transforms;
mod upstream_tls;
mod websocket;
mod wire;
