//! Users and their social accounts in the database: the queries, on SQLite and PostgreSQL alike.

use std::sync::Arc;

use rocket::tokio::sync::{Mutex, MutexGuard};
use serde::Serialize;

use crate::jwt::now;
use crate::provider::{Profile, TokenSet};
use crate::secret::Secret;

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct User {
    /// `users.id`; the JWT's `sub`.
    pub id: i64,
    /// Display name from the provider.
    pub name: Option<String>,
    /// Email from the provider (GitHub: the primary, verified one), if any.
    pub email: Option<String>,
    /// Avatar URL from the provider.
    pub avatar_url: Option<String>,
}

/// The tokens stored for one social account.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredTokens {
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
}

/// Why the database could not do its part.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// No connection: down, unreachable, or the pool timed out.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A query failed.
    #[error("database error: {0}")]
    Query(sqlx::Error),
    /// Concurrent first logins kept colliding.
    #[error("concurrent login conflict")]
    Conflict,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|c| {
                    // PostgreSQL: admin shutdown, cannot connect now; SQLite: busy, locked.
                    matches!(&*c, "57P01" | "57P02" | "57P03" | "5" | "6" | "517")
                }) =>
            {
                StoreError::Unavailable(e)
            }
            e => StoreError::Query(e),
        }
    }
}

/// The queries. Cheap to clone (a pool handle).
#[derive(Clone)]
pub(crate) struct Store {
    pool: sqlx::AnyPool,
    /// SQLite only: our writes queue here, one at a time. SQLite has a single writer; without
    /// the queue, concurrent writers on the pool's connections wait in SQLite's busy handler,
    /// which sleeps in steps of up to 100 ms (a login's p99 went from ~40 ms to ~200 ms at
    /// 32 concurrent logins). `busy_timeout` still covers other processes' writes.
    writer: Option<Arc<Mutex<()>>>,
    /// PostgreSQL (rather than SQLite): a returning user's login is one statement.
    postgres: bool,
}

type UserRow = (i64, Option<String>, Option<String>, Option<String>);

impl Store {
    pub(crate) fn new(pool: sqlx::AnyPool) -> Self {
        let scheme = pool.connect_options().database_url.scheme().to_owned();
        Store {
            pool,
            writer: (scheme == "sqlite").then(Arc::default),
            postgres: matches!(scheme.as_str(), "postgres" | "postgresql"),
        }
    }

    /// Waits for the turn to write (SQLite), or at once (PostgreSQL).
    async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.writer {
            Some(writer) => Some(writer.lock().await),
            None => None,
        }
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        Ok(crate::db::ping(&self.pool).await?)
    }

    /// Records a login: creates the user and social account the first time an identity is seen,
    /// else updates tokens (keeping a stored refresh token the provider did not resend) and
    /// profile. Concurrent first logins of one identity make one user.
    pub(crate) async fn upsert_login(
        &self,
        provider: &str,
        profile: &Profile,
        tokens: &TokenSet,
    ) -> Result<User, StoreError> {
        let refresh = tokens.refresh_token.as_ref().map(|t| t.expose());
        if self.postgres {
            // A returning user (most logins) in one statement: two round trips (the pool's
            // ping, the statement) where the transaction below takes five (the ping, BEGIN,
            // two UPDATEs, COMMIT). Atomic all the same. No row: a first login, for the
            // transaction below.
            let row: Option<UserRow> = sqlx::query_as(
                "WITH account AS (UPDATE social_users SET token = $1, \
                 refresh_token = COALESCE($2, refresh_token), token_expires_at = $3, \
                 updated_at = $4 WHERE provider = $5 AND social_id = $6 RETURNING user_id) \
                 UPDATE users SET name = $7, email = $8, avatar_url = $9, updated_at = $4 \
                 FROM account WHERE users.id = account.user_id \
                 RETURNING users.id, users.name, users.email, users.avatar_url",
            )
            .bind(tokens.access_token.expose())
            .bind(refresh)
            .bind(tokens.expires_at)
            .bind(now())
            .bind(provider)
            .bind(&profile.social_id)
            .bind(&profile.name)
            .bind(&profile.email)
            .bind(&profile.avatar_url)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((id, name, email, avatar_url)) = row {
                return Ok(User {
                    id,
                    name,
                    email,
                    avatar_url,
                });
            }
        }
        let _turn = self.write_turn().await;
        for _ in 0..5 {
            let now = now();
            let mut tx = self.pool.begin().await?;
            let existing: Option<(i64,)> = sqlx::query_as(
                "UPDATE social_users SET token = $1, refresh_token = COALESCE($2, refresh_token), \
                 token_expires_at = $3, updated_at = $4 \
                 WHERE provider = $5 AND social_id = $6 RETURNING user_id",
            )
            .bind(tokens.access_token.expose())
            .bind(refresh)
            .bind(tokens.expires_at)
            .bind(now)
            .bind(provider)
            .bind(&profile.social_id)
            .fetch_optional(&mut *tx)
            .await?;
            let row: UserRow = match existing {
                Some((user_id,)) => {
                    sqlx::query_as(
                        "UPDATE users SET name = $1, email = $2, avatar_url = $3, updated_at = $4 \
                         WHERE id = $5 RETURNING id, name, email, avatar_url",
                    )
                    .bind(&profile.name)
                    .bind(&profile.email)
                    .bind(&profile.avatar_url)
                    .bind(now)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?
                }
                None => {
                    let row: UserRow = sqlx::query_as(
                        "INSERT INTO users (name, email, avatar_url, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $4) RETURNING id, name, email, avatar_url",
                    )
                    .bind(&profile.name)
                    .bind(&profile.email)
                    .bind(&profile.avatar_url)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let linked: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO social_users (user_id, provider, social_id, token, refresh_token, \
                         token_expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                         ON CONFLICT (provider, social_id) DO NOTHING RETURNING user_id",
                    )
                    .bind(row.0)
                    .bind(provider)
                    .bind(&profile.social_id)
                    .bind(tokens.access_token.expose())
                    .bind(refresh)
                    .bind(tokens.expires_at)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if linked.is_none() {
                        // Another login of this identity committed first: use its user.
                        tx.rollback().await?;
                        continue;
                    }
                    row
                }
            };
            tx.commit().await?;
            let (id, name, email, avatar_url) = row;
            return Ok(User {
                id,
                name,
                email,
                avatar_url,
            });
        }
        Err(StoreError::Conflict)
    }

    /// The tokens of `user_id`'s account with `provider`, if it has one.
    pub(crate) async fn tokens(
        &self,
        user_id: i64,
        provider: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT token, refresh_token FROM social_users WHERE user_id = $1 AND provider = $2",
        )
        .bind(user_id)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(access, refresh)| StoredTokens {
            access_token: access.map(Secret::from),
            refresh_token: refresh.map(Secret::from),
        }))
    }

    /// Forgets the access token (logout); the refresh token stays.
    pub(crate) async fn clear_access_token(
        &self,
        user_id: i64,
        provider: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE social_users SET token = NULL, token_expires_at = NULL, updated_at = $1 \
             WHERE user_id = $2 AND provider = $3",
        )
        .bind(now())
        .bind(user_id)
        .bind(provider)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores the answer of a refresh; a provider that sent no new refresh token keeps the old.
    pub(crate) async fn store_refreshed(
        &self,
        user_id: i64,
        provider: &str,
        tokens: &TokenSet,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE social_users SET token = $1, refresh_token = COALESCE($2, refresh_token), \
             token_expires_at = $3, updated_at = $4 WHERE user_id = $5 AND provider = $6",
        )
        .bind(tokens.access_token.expose())
        .bind(tokens.refresh_token.as_ref().map(|t| t.expose()))
        .bind(tokens.expires_at)
        .bind(now())
        .bind(user_id)
        .bind(provider)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a refresh token the provider refused.
    pub(crate) async fn clear_refresh_token(
        &self,
        user_id: i64,
        provider: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE social_users SET refresh_token = NULL, updated_at = $1 \
             WHERE user_id = $2 AND provider = $3",
        )
        .bind(now())
        .bind(user_id)
        .bind(provider)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
