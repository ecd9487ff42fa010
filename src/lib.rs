//! Portcullis: an auth gateway.
//!
//! A reverse proxy that sits in front of arbitrary upstream HTTP APIs and decides, for
//! every request, from the policy in `gateway.toml`, whether it may reach its upstream.
//! The pipeline is ordered in one place, [`stack`]; read its docs first.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | `gateway.toml` → validated, typed [`config::Config`] (every error listed) |
//! | [`policy`] | canonical paths (`policy::path`), the router ([`policy::matcher`]), authorization (`policy::scope`) |
//! | [`middleware`] | request ids, header hygiene, access log, CORS, header transforms |
//! | `proxy` | upstream clients, hop-by-hop and forwarded headers, the forward step, the echo upstream |
//! | [`error`] | every failure → its JSON answer, in one match |
//! | [`auth`] | Bearer extraction, JWT verification (own keys, external issuers' JWKS), API keys, the verified-token cache |
//! | [`explain`] | `portcullis explain`: the pipeline's decision for one request, step by step |
//! | [`token`] | the token service: `/token` grants, user store, password hashing, signing keys, JWKS and discovery, revocation |
//! | [`ratelimit`] | `[rate_limits]` policies: keys, GCRA in memory with bounded memory, or in Redis |
//! | [`runtime`] | process-lifetime state kept across reloads by configuration: limiters, Redis, JWKS clients, upstream pools, token caches, the store; the background runtime |
//! | [`server`] | listeners, admin endpoints, graceful shutdown, reload |
//! | [`metrics`] | Prometheus metrics (`/metrics` on the admin listener): OpenTelemetry HTTP names, bounded labels |
//! | [`telemetry`] | W3C trace context (continued from trusted peers, else started; propagated upstream) and OTLP/HTTP span export |
//! | [`tls`] | TLS termination: the listener's rustls configuration, swapped on reload and file change; client certificates |
//! | [`embed`] | the verification and route policy as a tower layer for axum / tonic services (feature `layer`) |
//!
//! ## Public API
//!
//! Items are `pub(crate)` unless something outside the library uses them; what stays
//! public, and for whom:
//!
//! - [`Gateway`], [`Config`] and [`config`] ([`config::parse_str`],
//!   [`config::ConfigErrors`]): the `portcullis` binary, the integration tests
//!   (`tests/gateway`) and the fuzz targets start gateways from configuration text.
//! - [`token::admin`], [`token::password`], [`token::store`]: the `users`, `keys` and
//!   `hash-password` commands, and tests that read the store and hashes directly.
//! - [`auth::api_key`] (`hash`, `generate`): the `api-key` command and tests.
//! - [`policy::matcher::Routable`]: `portcullis check` lists the routes.
//! - [`explain`] and [`middleware::access_log::set_sink`]: the `explain` command and
//!   the binary's log setup.
//! - [`fuzzing`]: the entry points of `fuzz/` (a separate crate).
//! - [`embed`]: the verification and route policy as a tower layer for Rust services
//!   (`AuthLayer`, `RequireScopes`, `Principal`; docs/embedding.md). It builds alone with
//!   `default-features = false, features = ["layer"]`: every other module is the
//!   gateway, behind the default feature `server`.
//! - [`stack`], [`state`] and [`body`] (`RequestBody`): `benches/stack.rs` drives the
//!   whole stack in-process.
//! - [`token::endpoint`] and the modules issue 10 is reshaping ([`layer`],
//!   [`runtime`], [`server`], [`error`], [`ratelimit`], [`middleware`]): their public
//!   docs link to each other; their visibility is settled with that work.
//!
//! Crate-private: `proxy`, `policy::path`, `policy::scope` and the token service's
//! `keys`, `hashing` and `denylist`.

// Feature `layer` (always on) is the embeddable verification and policy: `auth`,
// `policy` and `embed`. Feature `server` (default) is the gateway around them.
pub mod auth;
#[cfg(feature = "server")]
pub mod body;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "layer")]
pub mod embed;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod explain;
#[cfg(feature = "server")]
pub mod fuzzing;
#[cfg(feature = "server")]
pub mod layer;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod middleware;
pub mod policy;
#[cfg(feature = "server")]
pub(crate) mod proxy;
#[cfg(feature = "server")]
pub mod ratelimit;
#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod stack;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod token;

#[cfg(feature = "server")]
pub use config::Config;
#[cfg(feature = "server")]
pub use server::Gateway;
