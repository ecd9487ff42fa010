//! The user and token store: SQLite (embedded default) or PostgreSQL, one code path.
//!
//! sqlx's `Any` driver runs the same portable SQL (`$N` placeholders, integers for
//! flags and times) on both; the schema lives in `migrations/{sqlite,postgres}/`,
//! embedded in the binary and applied on open (a new SQLite file is created).
//!
//! The pool lives on a small runtime of its own ("portcullis-store"): its connections
//! and housekeeping tasks never run on, or wait for, the proxy's worker threads, and
//! password hashing (`blocking`) runs on that runtime's blocking pool.

use std::future::Future;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};

use super::now_secs;

/// Why a store operation failed. The text never holds a password or token.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("user store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("user store: {0}")]
    Other(String),
}

/// Owns the store's runtime; shuts it down without blocking when dropped (it may be
/// dropped inside another runtime).
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
}

/// A refresh token as stored (by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family_id: String,
    pub subject: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was valid and is now used; issue its successor.
    Rotated(RefreshRecord),
    /// It had been used before: its whole family is now revoked.
    Reused,
    Unknown,
    Expired,
    Revoked,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
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

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
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

fn user_from(row: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    let roles: String = row.try_get("roles")?;
    Ok(UserRecord {
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        roles: roles.split_whitespace().map(str::to_string).collect(),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn refresh_from(row: &AnyRow) -> Result<RefreshRecord, sqlx::Error> {
    Ok(RefreshRecord {
        token_hash: row.try_get("token_hash")?,
        family_id: row.try_get("family_id")?,
        subject: row.try_get("subject")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        expires_at: row.try_get("expires_at")?,
    })
}

const USER_COLUMNS: &str = "username, password_hash, roles, disabled, created_at";

impl Store {
    /// Connects (creating a new SQLite file and its directory) and migrates.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of(url).ok_or_else(|| {
            StoreError::Other("the URL must start with sqlite:// or postgres://".into())
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("portcullis-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Other(format!("cannot start its runtime: {e}")))?;
        let rt = Arc::new(Background(Some(rt)));
        let handle =
            rt.0.as_ref()
                .map(|r| r.handle().clone())
                .ok_or_else(|| StoreError::Other("runtime gone".into()))?;
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
        self.rt
            .0
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| StoreError::Other("runtime gone".into()))
    }

    /// Runs a query future on the store's runtime.
    async fn on_rt<T, F>(&self, f: impl FnOnce(AnyPool) -> F) -> Result<T, StoreError>
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
        hasher: &super::password::Hasher,
        password: &str,
    ) -> Result<Result<String, super::password::HashError>, StoreError> {
        let (hasher, password) = (hasher.clone(), password.to_string());
        self.blocking(move || hasher.hash(&password)).await
    }

    pub async fn find_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let username = username.to_string();
        self.on_rt(|pool| async move {
            let row = sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
            ))
            .bind(username)
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(user_from).transpose()
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.on_rt(|pool| async move {
            let rows = sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))
            .fetch_all(&pool)
            .await?;
            rows.iter().map(user_from).collect()
        })
        .await
    }

    /// Adds a user; `false` when the username is taken.
    pub async fn add_user(
        &self,
        username: &str,
        password_hash: &str,
        roles: &[String],
    ) -> Result<bool, StoreError> {
        let (u, h, r, now) = (
            username.to_string(),
            password_hash.to_string(),
            roles.join(" "),
            now_secs(),
        );
        self.on_rt(|pool| async move {
            let done = sqlx::query(
                "INSERT INTO users (username, password_hash, roles, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (username) DO NOTHING",
            )
            .bind(u)
            .bind(h)
            .bind(r)
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// Runs `UPDATE users SET <set> WHERE username = $1`; `false` for an unknown user.
    async fn update_user(
        &self,
        username: &str,
        set: &'static str,
        value: Option<String>,
        flag: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (u, now) = (username.to_string(), now_secs());
        self.on_rt(|pool| async move {
            let sql = format!("UPDATE users SET {set}, updated_at = $2 WHERE username = $1");
            let mut q = sqlx::query(&sql).bind(u).bind(now);
            if let Some(v) = value {
                q = q.bind(v);
            }
            if let Some(f) = flag {
                q = q.bind(f);
            }
            Ok(q.execute(&pool).await?.rows_affected() == 1)
        })
        .await
    }

    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        self.update_user(username, "password_hash = $3", Some(hash.into()), None)
            .await
    }

    /// Replaces a stored hash only if it is still `old` (a concurrent change wins).
    pub async fn upgrade_password_hash(
        &self,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let (u, o, n, now) = (
            username.to_string(),
            old.to_string(),
            new.to_string(),
            now_secs(),
        );
        self.on_rt(|pool| async move {
            let done = sqlx::query(
                "UPDATE users SET password_hash = $3, updated_at = $2 \
                 WHERE username = $1 AND password_hash = $4",
            )
            .bind(u)
            .bind(now)
            .bind(n)
            .bind(o)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    pub async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.update_user(username, "roles = $3", Some(roles.join(" ")), None)
            .await
    }

    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, StoreError> {
        self.update_user(username, "disabled = $3", None, Some(i64::from(disabled)))
            .await
    }

    /// Removes a user and revokes every refresh token issued to them.
    pub async fn remove_user(&self, username: &str) -> Result<bool, StoreError> {
        let u = username.to_string();
        self.on_rt(|pool| async move {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM users WHERE username = $1")
                .bind(u.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE subject = $1")
                .bind(u)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    pub async fn insert_refresh(&self, r: RefreshRecord) -> Result<(), StoreError> {
        let now = now_secs();
        self.on_rt(|pool| async move {
            sqlx::query(
                "INSERT INTO refresh_tokens \
                 (token_hash, family_id, subject, client_id, scope, expires_at, created_at, revoked) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
            )
            .bind(r.token_hash)
            .bind(r.family_id)
            .bind(r.subject)
            .bind(r.client_id)
            .bind(r.scope)
            .bind(r.expires_at)
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks a refresh token used, atomically: of two concurrent uses one rotates and
    /// the other counts as reuse. Reuse revokes the whole family.
    pub async fn rotate_refresh(&self, token_hash: &str) -> Result<Rotation, StoreError> {
        let (h, now) = (token_hash.to_string(), now_secs());
        self.on_rt(|pool| async move {
            let claimed = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL AND revoked = 0 AND expires_at > $2",
            )
            .bind(h.clone())
            .bind(now)
            .execute(&pool)
            .await?
            .rows_affected()
                == 1;
            let row = sqlx::query(
                "SELECT token_hash, family_id, subject, client_id, scope, expires_at, used_at, revoked \
                 FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind(h)
            .fetch_optional(&pool)
            .await?;
            let Some(row) = row else {
                return Ok(Rotation::Unknown);
            };
            let record = refresh_from(&row)?;
            if claimed {
                return Ok(Rotation::Rotated(record));
            }
            let revoked = row.try_get::<i64, _>("revoked")? != 0;
            let used = row.try_get::<Option<i64>, _>("used_at")?.is_some();
            if revoked {
                Ok(Rotation::Revoked)
            } else if used {
                sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = $1")
                    .bind(record.family_id)
                    .execute(&pool)
                    .await?;
                Ok(Rotation::Reused)
            } else {
                Ok(Rotation::Expired)
            }
        })
        .await
    }

    /// The refresh token with this digest, whatever its state.
    pub async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let h = token_hash.to_string();
        self.on_rt(|pool| async move {
            let row = sqlx::query(
                "SELECT token_hash, family_id, subject, client_id, scope, expires_at \
                 FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind(h)
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(refresh_from).transpose()
        })
        .await
    }

    pub async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        let f = family_id.to_string();
        self.on_rt(|pool| async move {
            sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = $1")
                .bind(f)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// Records a revoked access token until its expiry.
    pub async fn revoke_jti(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let (j, now) = (jti.to_string(), now_secs());
        self.on_rt(|pool| async move {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(j)
            .bind(expires_at)
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Every revoked access token not yet expired; expired entries and refresh tokens
    /// long past their expiry are deleted on the way.
    pub async fn revoked_jtis(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let now = now_secs();
        self.on_rt(|pool| async move {
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&pool)
                .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(now - 86_400)
                .execute(&pool)
                .await?;
            let rows = sqlx::query("SELECT jti, expires_at FROM revoked_tokens")
                .fetch_all(&pool)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("jti")?, r.try_get("expires_at")?)))
                .collect()
        })
        .await
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
