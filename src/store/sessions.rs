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
        sqlx::query(&format!(
            "UPDATE sessions SET revoked_at = {} WHERE jti = $1 AND revoked_at IS NULL",
            self.db_now()
        ))
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
            "UPDATE sessions SET revoked_at = {} WHERE sub = $2 AND {namespace} \
             AND revoked_at IS NULL AND expires_at > $1 RETURNING jti, expires_at",
            self.db_now()
        ))
        .bind(now)
        .bind(sub)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The database's clock in unix seconds, as SQL: `revoked_at` is stamped and the reload's
    /// cursor read with one clock for every instance, however theirs drift.
    pub(crate) fn db_now(&self) -> &'static str {
        if self.postgres {
            "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)"
        } else {
            "CAST(strftime('%s', 'now') AS INTEGER)"
        }
    }

    /// Reads revoked sessions that have not expired, `(jti, expiry)` in chunks to `sink`: all of
    /// them (`since: None`, at start) or those revoked at or after `since`, a cursor this
    /// returned. The cursor is the database's clock before the read, less
    /// [`REVOCATION_OVERLAP_SECS`]: a revocation stamped before the read but committed after it
    /// is read next time (rows read twice are harmless).
    pub(crate) async fn revoked_sessions(
        &self,
        since: Option<i64>,
        mut sink: impl FnMut(&mut dyn Iterator<Item = (&str, i64)>),
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let clock: i64 = sqlx::query_scalar(&format!("SELECT {}", self.db_now()))
            .fetch_one(&mut *conn)
            .await?;
        match since {
            None => self.load_revoked(&mut conn, &mut sink).await?,
            Some(since) => {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT jti, expires_at FROM sessions \
                     WHERE revoked_at >= $1 AND expires_at > $2",
                )
                .bind(since)
                .bind(now())
                .fetch_all(&mut *conn)
                .await?;
                sink(&mut rows.iter().map(|(jti, exp)| (jti.as_str(), *exp)));
            }
        }
        Ok(clock - REVOCATION_OVERLAP_SECS)
    }

    /// Every revoked unexpired session, at start: from the index `sessions_revoked_live` alone,
    /// one statement per [`LOAD_WINDOW_SECS`] of expiry, each aggregated by the database into
    /// two strings (the `jti`s, the expiries). Row by row through the driver cost ~2 µs a session
    /// (373 ms for 200,000 before the first answer); this well under 1 µs.
    async fn load_revoked(
        &self,
        conn: &mut sqlx::AnyConnection,
        sink: &mut impl FnMut(&mut dyn Iterator<Item = (&str, i64)>),
    ) -> Result<(), StoreError> {
        let agg = |column: &str, sep: &str| {
            if self.postgres {
                format!("string_agg(CAST({column} AS TEXT), '{sep}')")
            } else {
                format!("group_concat({column}, '{sep}')")
            }
        };
        let sql = format!(
            "SELECT {}, {}, COUNT(*) FROM sessions \
             WHERE revoked_at IS NOT NULL AND expires_at > $1 AND expires_at <= $2",
            agg("jti", " "),
            agg("expires_at", ",")
        );
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(expires_at) FROM sessions WHERE revoked_at IS NOT NULL")
                .fetch_one(&mut *conn)
                .await?;
        let mut from = now();
        while let Some(last) = last.filter(|last| *last > from) {
            let to = from.saturating_add(LOAD_WINDOW_SECS).min(last);
            let (jtis, expiries, count): (Option<String>, Option<String>, i64) =
                sqlx::query_as(&sql)
                    .bind(from)
                    .bind(to)
                    .fetch_one(&mut *conn)
                    .await?;
            from = to;
            let (Some(jtis), Some(expiries)) = (jtis, expiries) else {
                continue;
            };
            // Our jtis are base64url: never a space.
            let mut read = 0;
            sink(
                &mut jtis
                    .split(' ')
                    .zip(expiries.split(','))
                    .map(|(jti, exp)| (jti, exp.parse().unwrap_or(i64::MAX)))
                    .inspect(|_| read += 1),
            );
            if read != count {
                return Err(StoreError::Query(sqlx::Error::Protocol(
                    "revoked sessions: a jti with a space".into(),
                )));
            }
        }
        Ok(())
    }

    /// Deletes one batch of the sessions that expired more than `grace_secs` ago: those that
    /// expired within `span_secs` of the oldest, an index range. Returns how many, and whether
    /// older-than-grace sessions remain beyond the batch. Small batches keep SQLite's single
    /// writer free for logins.
    pub(crate) async fn purge_sessions(
        &self,
        grace_secs: i64,
        span_secs: i64,
    ) -> Result<(u64, bool), StoreError> {
        let cutoff = now() - grace_secs;
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(expires_at) FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        let Some(oldest) = oldest.filter(|oldest| *oldest < cutoff) else {
            return Ok((0, false));
        };
        let upto = oldest.saturating_add(span_secs.max(1)).min(cutoff);
        let _turn = self.write_turn().await?;
        let deleted = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(upto)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok((deleted, upto < cutoff))
    }
}

/// How long a revocation may take from its stamp (the database's clock) to its commit and still
/// reach every instance's periodic reload: each reload reads again what was revoked in this
/// many seconds before the previous one. Our revoking statements commit within milliseconds.
pub(crate) const REVOCATION_OVERLAP_SECS: i64 = 60;

/// The start-up load reads the revoked sessions that expire within this many seconds at a time
/// (all of them with the default hour-long tokens): it bounds the text a statement returns.
const LOAD_WINDOW_SECS: i64 = 3600;
