//! The `clients` table (store-backed clients, `portcullis clients add|list|remove`)
//! and `external_identities` (which local user an external sign-in maps to).
//!
//! A stored client's secret is kept as its SHA-256 digest; lists are space-separated.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{Store, StoreError};
use crate::token::now_secs;

/// A client as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientRecord {
    pub client_id: String,
    /// SHA-256 of the secret (hex); `None` for a public client.
    pub secret_sha256: Option<String>,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub require_consent: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn client_from(row: &AnyRow) -> Result<ClientRecord, sqlx::Error> {
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        secret_sha256: row.try_get("secret_sha256")?,
        grants: words(&row.try_get::<String, _>("grants")?),
        scopes: words(&row.try_get::<String, _>("scopes")?),
        redirect_uris: words(&row.try_get::<String, _>("redirect_uris")?),
        post_logout_redirect_uris: words(&row.try_get::<String, _>("post_logout_redirect_uris")?),
        require_consent: row.try_get::<i64, _>("require_consent")? != 0,
    })
}

const CLIENT_COLUMNS: &str = "client_id, secret_sha256, grants, scopes, redirect_uris, \
                              post_logout_redirect_uris, require_consent";

impl Store {
    /// The stored client with this id, if any.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let id = client_id.to_string();
        self.on_rt(|pool| async move {
            let row = sqlx::query(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
            ))
            .bind(id)
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(client_from).transpose()
        })
        .await
    }

    /// Every stored client, by id.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.on_rt(|pool| async move {
            let rows = sqlx::query(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id"
            ))
            .fetch_all(&pool)
            .await?;
            rows.iter().map(client_from).collect()
        })
        .await
    }

    /// Adds a client; `false` when the id is taken.
    pub async fn add_client(&self, c: ClientRecord) -> Result<bool, StoreError> {
        let now = now_secs();
        self.on_rt(|pool| async move {
            let done = sqlx::query(
                "INSERT INTO clients (client_id, secret_sha256, grants, scopes, redirect_uris, \
                 post_logout_redirect_uris, require_consent, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (client_id) DO NOTHING",
            )
            .bind(c.client_id)
            .bind(c.secret_sha256)
            .bind(c.grants.join(" "))
            .bind(c.scopes.join(" "))
            .bind(c.redirect_uris.join(" "))
            .bind(c.post_logout_redirect_uris.join(" "))
            .bind(i64::from(c.require_consent))
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// Removes a client, its consents and its refresh tokens; `false` when unknown.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_string();
        self.on_rt(|pool| async move {
            let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                .bind(id.clone())
                .execute(&pool)
                .await?;
            sqlx::query("DELETE FROM consents WHERE client_id = $1")
                .bind(id.clone())
                .execute(&pool)
                .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE client_id = $1")
                .bind(id)
                .execute(&pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// The local user an external identity maps to, if linked.
    pub async fn external_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        let (p, s) = (provider.to_string(), subject.to_string());
        self.on_rt(|pool| async move {
            let row = sqlx::query(
                "SELECT username FROM external_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(p)
            .bind(s)
            .fetch_optional(&pool)
            .await?;
            row.map(|r| r.try_get("username")).transpose()
        })
        .await
    }

    /// Links an external identity to a local user (first link wins).
    pub async fn link_external(
        &self,
        provider: &str,
        subject: &str,
        username: &str,
    ) -> Result<(), StoreError> {
        let (p, s, u, now) = (
            provider.to_string(),
            subject.to_string(),
            username.to_string(),
            now_secs(),
        );
        self.on_rt(|pool| async move {
            sqlx::query(
                "INSERT INTO external_identities (provider, subject, username, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (provider, subject) DO NOTHING",
            )
            .bind(p)
            .bind(s)
            .bind(u)
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// The local user (one no external sign-in made or linked) whose verified email
    /// this is (set with `portcullis users set-email`), if exactly one.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<String>, StoreError> {
        let e = email.to_ascii_lowercase();
        self.on_rt(|pool| async move {
            let rows = sqlx::query(
                "SELECT username FROM users WHERE email = $1 \
                 AND username NOT IN (SELECT username FROM external_identities) LIMIT 2",
            )
            .bind(e)
            .fetch_all(&pool)
            .await?;
            match rows.as_slice() {
                [one] => Ok(Some(one.try_get("username")?)),
                _ => Ok(None),
            }
        })
        .await
    }

    /// Sets a user's verified email address.
    pub async fn set_email(&self, username: &str, email: &str) -> Result<(), StoreError> {
        let (u, e) = (username.to_string(), email.to_ascii_lowercase());
        self.on_rt(|pool| async move {
            sqlx::query("UPDATE users SET email = $2 WHERE username = $1")
                .bind(u)
                .bind(e)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }
}
