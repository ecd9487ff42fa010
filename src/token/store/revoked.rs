//! The `revoked_tokens` table: access tokens revoked by `jti`, kept until they
//! expire; reading them is also the store's housekeeping (expired revocations and
//! long-expired refresh tokens are deleted on the way).

use sqlx::Row as _;

use super::{Store, StoreError};
use crate::token::now_secs;

impl Store {
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
