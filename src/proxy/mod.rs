//! Forwarding to upstreams: the pooled client, header rules and the forward step.

pub mod client;
pub mod echo;
pub mod forward;
pub mod headers;
