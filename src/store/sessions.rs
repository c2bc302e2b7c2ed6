//! Sessions: one row per issued JWT, revoked by logout, logout everywhere and unlink, loaded
//! by every instance's revocation list, purged after expiry.

use crate::clock::now;

use super::{Store, StoreError};

/// The session of a JWT a login is about to issue, recorded with the login itself.
#[derive(Debug, Clone)]
pub(crate) struct NewSession {
    pub jti: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The one session insert: `sub` is a user id for a social session, the app's own subject
/// with no provider for a Local one.
pub(super) async fn insert_session(
    conn: &mut sqlx::AnyConnection,
    session: &NewSession,
    sub: &str,
    provider: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (jti, sub, provider, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&session.jti)
    .bind(sub)
    .bind(provider)
    .bind(session.created_at)
    .bind(session.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records an issued token's session.
    pub(crate) async fn record_session(
        &self,
        jti: &str,
        sub: &str,
        provider: Option<&str>,
        created_at: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        let session = NewSession {
            jti: jti.to_owned(),
            created_at,
            expires_at,
        };
        let mut conn = self.pool.acquire().await?;
        insert_session(&mut conn, &session, sub, provider).await
    }

    /// Revokes one session.
    pub(crate) async fn revoke_session(&self, jti: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(jti)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes every live session of `sub` in one namespace: social sessions (those with a
    /// provider: `sub` is a user id) or the app's own Local ones (no provider), never both — a
    /// Local user named `"7"` is not social user 7. Returns them (jti, expiry).
    pub(crate) async fn revoke_all_sessions(
        &self,
        sub: &str,
        social: bool,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let _turn = self.write_turn().await?;
        let now = now();
        let namespace = if social {
            "provider IS NOT NULL"
        } else {
            "provider IS NULL"
        };
        Ok(sqlx::query_as(&format!(
            "UPDATE sessions SET revoked_at = $1 WHERE sub = $2 AND {namespace} \
             AND revoked_at IS NULL AND expires_at > $1 RETURNING jti, expires_at"
        ))
        .bind(now)
        .bind(sub)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The revoked sessions that have not expired.
    pub(crate) async fn revoked_sessions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT jti, expires_at FROM sessions WHERE revoked_at IS NOT NULL AND expires_at > $1",
        )
        .bind(now())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes sessions that expired more than `grace_secs` ago.
    pub(crate) async fn purge_sessions(&self, grace_secs: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await?;
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now() - grace_secs)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
