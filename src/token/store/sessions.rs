//! Browser sign-in state shared by replicas: sign-in sessions (by the cookie's
//! digest), consents per user and client, pending external sign-ins, and the secret
//! the CSRF tokens are derived from.

use sqlx::Row as _;

use super::{Store, StoreError};
use crate::token::now_secs;

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub subject: String,
    /// When the user authenticated (seconds since the epoch).
    pub auth_time: i64,
}

/// A pending external sign-in, taken once by its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    pub provider: String,
    pub nonce: String,
    /// The PKCE verifier sent to the provider (its challenge went out).
    pub verifier: String,
    /// SHA-256 of the browser's cookie: the callback must come from the same browser.
    pub browser_hash: String,
    /// The authorization request to resume (a query string).
    pub request: String,
}

impl Store {
    /// Starts a session; `replaces` (a digest) is deleted in the same step (rotation).
    pub async fn insert_session(
        &self,
        id_hash: &str,
        s: &SessionRecord,
        ttl_secs: i64,
        replaces: Option<String>,
    ) -> Result<(), StoreError> {
        let (h, s, now) = (id_hash.to_string(), s.clone(), now_secs());
        self.on_rt(|pool| async move {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&pool)
                .await?;
            if let Some(old) = replaces {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(old)
                    .execute(&pool)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO sessions (id_hash, subject, auth_time, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(h)
            .bind(s.subject)
            .bind(s.auth_time)
            .bind(now.saturating_add(ttl_secs))
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// The live session with this digest, if any.
    pub async fn find_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let (h, now) = (id_hash.to_string(), now_secs());
        self.on_rt(|pool| async move {
            let row = sqlx::query(
                "SELECT subject, auth_time FROM sessions WHERE id_hash = $1 AND expires_at > $2",
            )
            .bind(h)
            .bind(now)
            .fetch_optional(&pool)
            .await?;
            row.map(|r| {
                Ok(SessionRecord {
                    subject: r.try_get("subject")?,
                    auth_time: r.try_get("auth_time")?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Ends a session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let h = id_hash.to_string();
        self.on_rt(|pool| async move {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(h)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// The scopes a user has consented to for a client (empty: none).
    pub async fn consent(&self, subject: &str, client_id: &str) -> Result<Vec<String>, StoreError> {
        let (s, c) = (subject.to_string(), client_id.to_string());
        self.on_rt(|pool| async move {
            let row =
                sqlx::query("SELECT scope FROM consents WHERE subject = $1 AND client_id = $2")
                    .bind(s)
                    .bind(c)
                    .fetch_optional(&pool)
                    .await?;
            let scope: String = match row {
                Some(r) => r.try_get("scope")?,
                None => String::new(),
            };
            Ok(scope.split_whitespace().map(str::to_string).collect())
        })
        .await
    }

    /// Records consent (replacing an earlier one for the same user and client).
    pub async fn save_consent(
        &self,
        subject: &str,
        client_id: &str,
        scopes: &[String],
    ) -> Result<(), StoreError> {
        let (s, c, scope, now) = (
            subject.to_string(),
            client_id.to_string(),
            scopes.join(" "),
            now_secs(),
        );
        self.on_rt(|pool| async move {
            sqlx::query(
                "INSERT INTO consents (subject, client_id, scope, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subject, client_id) DO UPDATE SET scope = $3, created_at = $4",
            )
            .bind(s)
            .bind(c)
            .bind(scope)
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Records a pending external sign-in under its state's digest.
    pub async fn insert_login_state(
        &self,
        state_hash: &str,
        l: LoginState,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let (h, now) = (state_hash.to_string(), now_secs());
        self.on_rt(|pool| async move {
            sqlx::query("DELETE FROM login_states WHERE expires_at <= $1")
                .bind(now)
                .execute(&pool)
                .await?;
            sqlx::query(
                "INSERT INTO login_states (state_hash, provider, nonce, verifier, browser_hash, request, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(h)
            .bind(l.provider)
            .bind(l.nonce)
            .bind(l.verifier)
            .bind(l.browser_hash)
            .bind(l.request)
            .bind(now.saturating_add(ttl_secs))
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Takes (deletes and returns) a live pending sign-in.
    pub async fn take_login_state(
        &self,
        state_hash: &str,
    ) -> Result<Option<LoginState>, StoreError> {
        let (h, now) = (state_hash.to_string(), now_secs());
        self.on_rt(|pool| async move {
            let row = sqlx::query(
                "SELECT provider, nonce, verifier, browser_hash, request FROM login_states \
                 WHERE state_hash = $1 AND expires_at > $2",
            )
            .bind(h.clone())
            .bind(now)
            .fetch_optional(&pool)
            .await?;
            let taken = sqlx::query("DELETE FROM login_states WHERE state_hash = $1")
                .bind(h)
                .execute(&pool)
                .await?
                .rows_affected();
            // Two callbacks at once: only the one whose delete removed the row goes on.
            let (Some(r), 1) = (row, taken) else {
                return Ok(None);
            };
            Ok(Some(LoginState {
                provider: r.try_get("provider")?,
                nonce: r.try_get("nonce")?,
                verifier: r.try_get("verifier")?,
                browser_hash: r.try_get("browser_hash")?,
                request: r.try_get("request")?,
            }))
        })
        .await
    }

    /// The named secret, made from `fresh` by whichever replica asks first.
    pub async fn secret(&self, name: &str, fresh: String) -> Result<String, StoreError> {
        let n = name.to_string();
        self.on_rt(|pool| async move {
            sqlx::query(
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(n.clone())
            .bind(fresh)
            .execute(&pool)
            .await?;
            let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
                .bind(n)
                .fetch_one(&pool)
                .await?;
            row.try_get("value")
        })
        .await
    }
}
