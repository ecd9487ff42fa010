//! The user and token store: SQLite (embedded default) or PostgreSQL, one code path.
//!
//! sqlx's `Any` driver runs the same portable SQL (`$N` placeholders, integers for
//! flags and times) on both; the schema lives in `migrations/{sqlite,postgres}/`,
//! embedded in the binary and applied on open (a new SQLite file is created).
//!
//! The pool lives off the request path: on the gateway's background runtime
//! (`crate::runtime`), or for the admin commands on a small runtime of its own
//! ("portcullis-store"). Its connections and housekeeping tasks never run on, or wait
//! for, the proxy's worker threads, and password hashing (`blocking`) runs on that
//! runtime's blocking pool.
//!
//! `runtime` opens the pool on that runtime and runs every query there; `users`,
//! `refresh` and `revoked` hold the queries of their table (`users`,
//! `refresh_tokens`, `revoked_tokens`); `codes`, `sessions` and `clients` those of
//! browser sign-in (authorization codes; sessions, consents, pending external
//! sign-ins and shared secrets; stored clients and external identities). The [`Store`] API is the same whichever
//! backend is in use.

mod clients;
mod codes;
mod refresh;
mod revoked;
mod runtime;
mod sessions;
mod users;

use std::sync::Arc;

use sqlx::AnyPool;

pub use clients::ClientRecord;
pub use codes::{CodeRecord, Redemption};
pub use refresh::{RefreshRecord, Rotation};
use runtime::Background;
pub use sessions::{LoginState, SessionRecord};
pub use users::UserRecord;

/// Why a store operation failed. The text never holds a password or token.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query or connection failed.
    #[error("user store: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("user store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Anything else (the URL, the store's runtime).
    #[error("user store: {0}")]
    Other(String),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs: an embedded file (the default).
    Sqlite,
    /// `postgres://` and `postgresql://` URLs: shared by a fleet.
    Postgres,
}

impl Backend {
    /// The backend a store URL names, if any.
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Which database this store runs on.
    pub backend: Backend,
    rt: Arc<Background>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Whether the store at `url` exists already: a SQLite file that is there, or any
/// PostgreSQL URL (a server is never created by connecting).
pub fn exists(url: &str) -> bool {
    match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(rest) => {
            let path = rest.split_once('?').map_or(rest, |(p, _)| p);
            path != ":memory:" && std::path::Path::new(path).is_file()
        }
        None => url.starts_with("postgres://") || url.starts_with("postgresql://"),
    }
}
