//! The shape of `gateway.toml`, exactly as written by operators.
//!
//! Every struct denies unknown keys so that a typo (`lisen = ...`) is an error rather
//! than a silently ignored setting. Values stay strings here (`"15s"`, `"10MiB"`);
//! `validate.rs` turns them into the typed [`crate::config::Config`].
//!
//! One file per group of sections: `server`, `routes` (upstreams, routes and what a
//! route carries), `auth` (`[tokens]`, keys, issuers, identity, API keys) and
//! `users` (the token service's users, clients and registration).

mod auth;
mod routes;
mod server;
mod users;

pub(crate) use auth::{ApiKeyFile, IdentityFile, IssuerFile, KeyFile, OneOrMany, TokensFile};
pub(crate) use routes::{CorsFile, HeaderTransformFile, RateLimitFile, RouteFile, UpstreamFile};
pub(crate) use server::{ServerFile, TelemetryFile, TlsFile};
pub(crate) use users::{
    ClientFile, LoginFile, ProviderFile, RegistrationFile, UserFile, UsersFile,
};

fn default_true() -> bool {
    true
}
