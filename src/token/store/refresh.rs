//! The `refresh_tokens` table: refresh tokens stored by SHA-256 digest, grouped in
//! families; rotation is atomic and a reused token revokes its whole family.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{Store, StoreError};
use crate::token::now_secs;

/// A refresh token as stored (by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token (hex); the token itself is never stored.
    pub token_hash: String,
    /// The family: every successor of one grant shares it.
    pub family_id: String,
    /// The user it was issued to.
    pub subject: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Space-separated scopes of the original grant.
    pub scope: String,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was valid and is now used; issue its successor.
    Rotated(RefreshRecord),
    /// It had been used before: its whole family is now revoked.
    Reused,
    /// No token with this digest.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Revoked: by `/revoke`, a reuse in its family, or its user's removal.
    Revoked,
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

impl Store {
    /// Stores a newly issued refresh token.
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

    /// Revokes every token of a family.
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
}
