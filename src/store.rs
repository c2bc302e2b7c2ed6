//! Users, their social accounts and their sessions in the database: the queries, on SQLite and
//! PostgreSQL alike. Provider tokens go through the [`TokenVault`] on the way in and out.

use std::sync::Arc;

use rocket::tokio::sync::{Mutex, MutexGuard};

use crate::provider::TokenSet;

use crate::vault::{Column, RowId, TokenVault};

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
    /// The app's `on_user_created` hook failed; nothing was stored.
    #[error("the app's on_user_created hook failed: {0}")]
    Hook(sqlx::Error),
}

impl StoreError {
    /// Whether the database could not be reached (rather than answering with an error): the
    /// one rule every answer follows — 503 `database_unavailable` then, else 500
    /// `storage_error`.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The HTTP status of a route that failed with this error (see
    /// [`is_unavailable`](Self::is_unavailable)).
    pub(crate) fn status(&self) -> rocket::http::Status {
        if self.is_unavailable() {
            rocket::http::Status::ServiceUnavailable
        } else {
            rocket::http::Status::InternalServerError
        }
    }

    /// The machine-readable code that goes with [`status`](Self::status).
    pub(crate) fn code(&self) -> &'static str {
        if self.is_unavailable() {
            "database_unavailable"
        } else {
            "storage_error"
        }
    }
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

/// The `SET` list of every write of an account's new tokens: `$1` access, `$2` refresh (a
/// provider that resent none keeps the stored one), `$3` expiry, `$4` now; the version moves
/// so that a refresh lease taken at the old one fails.
macro_rules! set_new_tokens {
    () => {
        "token = $1, refresh_token = COALESCE($2, refresh_token), token_expires_at = $3, \
         updated_at = $4, token_version = token_version + 1"
    };
}

/// The queries. Cheap to clone (a pool handle and the vault).
#[derive(Clone)]
pub(crate) struct Store {
    pool: sqlx::AnyPool,
    vault: Arc<TokenVault>,
    /// SQLite only: our writes queue here, one at a time. SQLite has a single writer; without
    /// the queue, concurrent writers on the pool's connections wait in SQLite's busy handler,
    /// which sleeps in steps of up to 100 ms (a login's p99 went from ~40 ms to ~200 ms at
    /// 32 concurrent logins). `busy_timeout` still covers other processes' writes.
    writer: Option<Arc<Mutex<()>>>,
    /// PostgreSQL (rather than SQLite): a returning user's login is one statement.
    postgres: bool,
}

mod events;
mod reencrypt;
mod sessions;
mod tokens;
mod users;

pub use reencrypt::ReencryptReport;
pub(crate) use sessions::NewSession;
pub(crate) use tokens::RefreshState;
pub(crate) use users::{sign_in, LinkOutcome, LoginOptions, UnlinkOutcome};

impl Store {
    pub(crate) fn new(pool: sqlx::AnyPool, vault: Arc<TokenVault>) -> Self {
        let scheme = pool.connect_options().database_url.scheme().to_owned();
        Store {
            pool,
            vault,
            writer: (scheme == "sqlite").then(Arc::default),
            postgres: matches!(scheme.as_str(), "postgres" | "postgresql"),
        }
    }

    /// Waits for the turn to write (SQLite; PostgreSQL at once) — no longer than the pool's
    /// acquire timeout, so that a queue of writers behind a database that does not answer gets
    /// 503s in bounded time rather than one after the other.
    async fn write_turn(&self) -> Result<Option<MutexGuard<'_, ()>>, StoreError> {
        let Some(writer) = &self.writer else {
            return Ok(None);
        };
        let wait = self.pool.options().get_acquire_timeout();
        match rocket::tokio::time::timeout(wait, writer.lock()).await {
            Ok(turn) => Ok(Some(turn)),
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        Ok(crate::db::ping(&self.pool).await?)
    }

    fn seal_tokens(
        &self,
        provider: &str,
        social_id: &str,
        tokens: &TokenSet,
    ) -> (String, Option<String>) {
        let row = RowId {
            provider,
            social_id,
        };
        (
            self.vault
                .seal(tokens.access_token.expose(), Column::Token, row),
            tokens
                .refresh_token
                .as_ref()
                .map(|t| self.vault.seal(t.expose(), Column::RefreshToken, row)),
        )
    }
}
