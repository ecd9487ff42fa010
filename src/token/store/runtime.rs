//! Opening the store and the runtime it lives on: the pool is connected and migrated
//! there, every query future is spawned there ([`Store`]'s `on_rt`), and CPU-bound
//! password hashing runs on its blocking pool.
//!
//! The gateway's store lives on its background runtime (`crate::runtime`,
//! [`Store::open_on`]); the admin commands open one on a runtime of its own
//! ("portcullis-store", [`Store::open`]), shut down without blocking when the last
//! clone is dropped. Either way database connections and housekeeping stay off the
//! proxy's worker threads.

use std::future::Future;
use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use super::{Backend, Store, StoreError};

/// The store's runtime: its own (shut down without blocking when dropped: it may be
/// dropped inside another runtime) or a handle to the gateway's background one.
pub(super) struct Background(Option<tokio::runtime::Runtime>, tokio::runtime::Handle);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects (creating a new SQLite file and its directory) and migrates, on a
    /// runtime of the store's own.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("portcullis-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Other(format!("cannot start its runtime: {e}")))?;
        let handle = rt.handle().clone();
        Store::open_in(url, Background(Some(rt), handle)).await
    }

    /// Connects and migrates on `rt` (the gateway's background runtime).
    pub async fn open_on(url: &str, rt: tokio::runtime::Handle) -> Result<Store, StoreError> {
        Store::open_in(url, Background(None, rt)).await
    }

    async fn open_in(url: &str, rt: Background) -> Result<Store, StoreError> {
        let backend = Backend::of(url).ok_or_else(|| {
            StoreError::Other("the URL must start with sqlite:// or postgres://".into())
        })?;
        let handle = rt.1.clone();
        let rt = Arc::new(rt);
        let url = url.to_string();
        let pool = handle
            .spawn(async move {
                sqlx::any::install_default_drivers();
                let url = match backend {
                    Backend::Sqlite => sqlite_url(&url)?,
                    Backend::Postgres => url,
                };
                let pool = AnyPoolOptions::new()
                    .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
                    .acquire_timeout(std::time::Duration::from_secs(5))
                    .connect(&url)
                    .await?;
                match backend {
                    Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
                    Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
                }
                Ok::<_, StoreError>(pool)
            })
            .await
            .map_err(|e| StoreError::Other(format!("store task failed: {e}")))??;
        Ok(Store { pool, backend, rt })
    }

    /// The store runtime (its blocking pool runs password hashing).
    pub fn handle(&self) -> Result<tokio::runtime::Handle, StoreError> {
        Ok(self.rt.1.clone())
    }

    /// Runs a query future on the store's runtime.
    pub(super) async fn on_rt<T, F>(&self, f: impl FnOnce(AnyPool) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.pool.clone());
        self.handle()?
            .spawn(fut)
            .await
            .map_err(|e| StoreError::Other(format!("store task failed: {e}")))?
            .map_err(StoreError::from)
    }

    /// Spawns a background task on the store's runtime.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if let Ok(h) = self.handle() {
            h.spawn(fut);
        }
    }

    /// Runs CPU-bound work (password hashing) on the store runtime's blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        self.handle()?
            .spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Other(format!("hashing task failed: {e}")))
    }

    /// A new password hash, computed on the store runtime's blocking pool (argon2 takes
    /// tens of milliseconds and must not stall an async thread).
    pub async fn hash_password(
        &self,
        hasher: &crate::token::password::Hasher,
        password: &str,
    ) -> Result<Result<String, crate::token::password::HashError>, StoreError> {
        let (hasher, password) = (hasher.clone(), password.to_string());
        self.blocking(move || hasher.hash(&password)).await
    }
}

/// `sqlite://path` (relative to the working directory) with create mode; the
/// directory is created too.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Other(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
    }
    let mut out = format!("sqlite://{path}");
    if !query.contains("mode=") {
        out.push_str(if query.is_empty() {
            "?mode=rwc"
        } else {
            "?mode=rwc&"
        });
    } else {
        out.push('?');
    }
    out.push_str(query);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/x.db");
        let url = format!("sqlite://{}", p.display());
        assert_eq!(
            sqlite_url(&url).expect("url"),
            format!("sqlite://{}?mode=rwc", p.display())
        );
        assert!(p.parent().is_some_and(|d| d.is_dir()), "directory created");
        assert_eq!(
            sqlite_url("sqlite://:memory:?cache=shared").expect("url"),
            "sqlite://:memory:?mode=rwc&cache=shared"
        );
        assert_eq!(
            sqlite_url("sqlite://:memory:?mode=memory").expect("url"),
            "sqlite://:memory:?mode=memory"
        );
    }
}
