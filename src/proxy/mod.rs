//! Forwarding to upstreams: connection pools, header rules and the forward step.

pub mod connect;
pub mod cookies;
pub mod echo;
pub mod forward;
pub mod headers;
pub mod pool;
pub mod tunnels;
pub mod upgrade;
