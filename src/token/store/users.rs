//! The `users` table: lookup, listing, creation, updates (password hash, roles,
//! disabled flag) and removal, which also revokes the user's refresh tokens and
//! deletes their sessions, consents, codes and linked external identities.
//!
//! Roles are stored space-separated; a password hash is only replaced by an upgrade
//! if it is still the one that was verified (a concurrent change wins).

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{Store, StoreError};
use crate::token::now_secs;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Unique; see `valid_username`.
    pub username: String,
    /// argon2id (or a legacy bcrypt) PHC string.
    pub password_hash: String,
    /// Role names, mapped to scopes by `[roles]`.
    pub roles: Vec<String>,
    /// A disabled user cannot log in or refresh.
    pub disabled: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// A verified email address (set by external sign-in), lower-case.
    pub email: Option<String>,
}

fn user_from(row: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    let roles: String = row.try_get("roles")?;
    Ok(UserRecord {
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        roles: roles.split_whitespace().map(str::to_string).collect(),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        email: row.try_get("email")?,
    })
}

const USER_COLUMNS: &str = "username, password_hash, roles, disabled, created_at, email";

impl Store {
    /// The user with this name, if any.
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

    /// Every user, by name.
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

    /// Replaces a user's hash; `false` for an unknown user.
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

    /// Replaces a user's roles; `false` for an unknown user.
    pub async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.update_user(username, "roles = $3", Some(roles.join(" ")), None)
            .await
    }

    /// Disables or enables a user; `false` for an unknown user.
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
                .bind(u.clone())
                .execute(&mut *tx)
                .await?;
            // Browser sign-in state: a later user of the same name inherits nothing.
            for (table, col) in [
                ("sessions", "subject"),
                ("consents", "subject"),
                ("auth_codes", "subject"),
                ("external_identities", "username"),
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
                    .bind(u.clone())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}
