//! The `auth_codes` table: authorization codes by SHA-256 digest, single use. A code
//! is claimed atomically (of two concurrent redemptions one wins); presenting a used
//! code again reports what the first redemption issued, so that it can be revoked.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::{Store, StoreError};
use crate::token::now_secs;

/// An authorization code as stored (by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// SHA-256 of the code (hex).
    pub code_hash: String,
    pub client_id: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri` (then `/token` must too).
    pub redirect_given: bool,
    /// The PKCE S256 challenge; empty when the request had none.
    pub code_challenge: String,
    /// The OIDC `nonce`; empty when none was sent.
    pub nonce: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The user.
    pub subject: String,
    /// When the user authenticated (seconds since the epoch).
    pub auth_time: i64,
    /// The refresh-token family tokens from this code belong to.
    pub family_id: String,
    pub expires_at: i64,
}

/// What presenting a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// Valid and now used: issue tokens.
    Claimed(CodeRecord),
    /// Used before: here is what the first use issued (family, access jti and expiry).
    Reused {
        family_id: String,
        access: Option<(String, i64)>,
    },
    /// Unknown or past its expiry.
    Invalid,
    /// Issued to another client (left as it was).
    OtherClient,
}

fn code_from(row: &AnyRow) -> Result<CodeRecord, sqlx::Error> {
    Ok(CodeRecord {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        redirect_given: row.try_get::<i64, _>("redirect_given")? != 0,
        code_challenge: row.try_get("code_challenge")?,
        nonce: row.try_get("nonce")?,
        scope: row.try_get("scope")?,
        subject: row.try_get("subject")?,
        auth_time: row.try_get("auth_time")?,
        family_id: row.try_get("family_id")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl Store {
    /// Stores a new code (expired ones are deleted on the way).
    pub async fn insert_code(&self, c: CodeRecord) -> Result<(), StoreError> {
        let now = now_secs();
        self.on_rt(|pool| async move {
            // Keep used codes a while past expiry so a late replay still revokes.
            sqlx::query("DELETE FROM auth_codes WHERE expires_at <= $1")
                .bind(now - 3600)
                .execute(&pool)
                .await?;
            sqlx::query(
                "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, redirect_given, \
                 code_challenge, nonce, scope, subject, auth_time, family_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(c.code_hash)
            .bind(c.client_id)
            .bind(c.redirect_uri)
            .bind(i64::from(c.redirect_given))
            .bind(c.code_challenge)
            .bind(c.nonce)
            .bind(c.scope)
            .bind(c.subject)
            .bind(c.auth_time)
            .bind(c.family_id)
            .bind(c.expires_at)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks a code used, atomically, and returns it; or says why it cannot be. Only
    /// the client the code was issued to can use it up, or set off the revocation of
    /// a replay: another client's attempt changes nothing.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        client_id: &str,
    ) -> Result<Redemption, StoreError> {
        let (h, c, now) = (code_hash.to_string(), client_id.to_string(), now_secs());
        self.on_rt(|pool| async move {
            let claimed = sqlx::query(
                "UPDATE auth_codes SET used_at = $2 \
                 WHERE code_hash = $1 AND client_id = $3 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(h.clone())
            .bind(now)
            .bind(c.clone())
            .execute(&pool)
            .await?
            .rows_affected()
                == 1;
            let row = sqlx::query("SELECT * FROM auth_codes WHERE code_hash = $1")
                .bind(h)
                .fetch_optional(&pool)
                .await?;
            let Some(row) = row else {
                return Ok(Redemption::Invalid);
            };
            if row.try_get::<String, _>("client_id")? != c {
                return Ok(Redemption::OtherClient);
            }
            if claimed {
                return Ok(Redemption::Claimed(code_from(&row)?));
            }
            if row.try_get::<Option<i64>, _>("used_at")?.is_none() {
                return Ok(Redemption::Invalid);
            }
            let jti: Option<String> = row.try_get("access_jti")?;
            let exp: Option<i64> = row.try_get("access_exp")?;
            Ok(Redemption::Reused {
                family_id: row.try_get("family_id")?,
                access: jti.zip(exp),
            })
        })
        .await
    }

    /// Records the access token a redeemed code issued (revoked if the code is replayed).
    pub async fn code_issued(
        &self,
        code_hash: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (h, j) = (code_hash.to_string(), jti.to_string());
        self.on_rt(|pool| async move {
            sqlx::query(
                "UPDATE auth_codes SET access_jti = $2, access_exp = $3 WHERE code_hash = $1",
            )
            .bind(h)
            .bind(j)
            .bind(expires_at)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }
}
