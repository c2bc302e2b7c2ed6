//! Users, their social accounts and their sessions in the database: the queries, on SQLite and
//! PostgreSQL alike. Provider tokens go through the [`TokenVault`] on the way in and out.

use std::sync::Arc;

use rocket::tokio::sync::{Mutex, MutexGuard};
use unicode_normalization::UnicodeNormalization;

use crate::clock::now;
use crate::model::{SignIn, User};
use crate::policy::Policy;
use crate::provider::{Profile, TokenSet};
use crate::secret::Secret;

use crate::vault::{Column, RowId, TokenVault};

/// The tokens stored for one social account, decrypted (a value that does not decrypt is
/// `None`).
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredTokens {
    pub social_id: String,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
}

/// A social account as a refresh sees it.
#[derive(Debug)]
pub(crate) struct RefreshState {
    pub tokens: StoredTokens,
    /// Changes with every token write.
    pub version: i64,
    /// Whether another refresh holds a live lease.
    pub leased: bool,
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

/// What linking an identity to a signed-in user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkOutcome {
    /// Linked now (or it already was, to this user): tokens stored.
    Linked,
    /// The identity belongs to another user.
    TakenByOther,
    /// The user already has an identity with this provider.
    ProviderAlreadyLinked,
}

/// What unlinking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnlinkOutcome {
    /// Removed; the sessions signed in through it (jti, expiry) are revoked.
    Unlinked(Vec<(String, i64)>),
    NotLinked,
    LastIdentity,
}

/// Progress of a re-encryption pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptReport {
    /// Rows looked at.
    pub rows: u64,
    /// Values rewritten under the current key.
    pub rewritten: u64,
    /// Values already under the current key.
    pub current: u64,
    /// Values that decrypt under no configured key (left as they are; they count as absent).
    pub undecryptable: u64,
    /// Values changed by the app while we worked (left to the app, which writes under the
    /// current key).
    pub skipped: u64,
}

/// Options of a login that come from the provider's configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginOptions {
    /// Link a new identity to the user with the same verified email (when trusted, below).
    pub link_by_verified_email: bool,
    /// Whether this provider's `email_verified` is recorded as vouching for the email (never
    /// for the development provider, which signs in anyone under any address).
    pub vouches: bool,
    /// The providers whose vouching is trusted for linking: every provider configured with
    /// `link_by_verified_email = true` that vouches.
    pub trusted_vouchers: Arc<[String]>,
}

/// The session of a JWT a login is about to issue, recorded with the login itself.
#[derive(Debug, Clone)]
pub(crate) struct NewSession {
    pub jti: String,
    pub created_at: i64,
    pub expires_at: i64,
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

/// The one session insert: `sub` is a user id for a social session, the app's own subject
/// with no provider for a Local one.
async fn insert_session(
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

/// Case-insensitive, Unicode-normalised form of an email, for matching only.
pub(crate) fn email_key(email: &str) -> String {
    email
        .trim()
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect()
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

type UserRow = (i64, Option<String>, Option<String>, Option<String>);

fn user((id, name, email, avatar_url): UserRow) -> User {
    User {
        id,
        name,
        email,
        avatar_url,
    }
}

/// The profile as a policy sees it.
pub(crate) fn sign_in<'a>(provider: &'a str, profile: &'a Profile) -> SignIn<'a> {
    SignIn {
        provider,
        social_id: &profile.social_id,
        name: profile.name.as_deref(),
        email: profile.email.as_deref(),
        email_verified: profile.email_verified,
        raw: &profile.raw,
    }
}

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

    /// Records a login: creates the user and social account the first time an identity is seen
    /// (or, when the provider allows it, links it to the user with the same verified email),
    /// else updates tokens (keeping a stored refresh token the provider did not resend) and
    /// profile. Concurrent first logins of one identity make one user. Returns the user and
    /// whether it was created.
    pub(crate) async fn upsert_login(
        &self,
        provider: &str,
        profile: &Profile,
        tokens: &TokenSet,
        options: &LoginOptions,
        policy: &dyn Policy,
        session: &NewSession,
    ) -> Result<(User, bool), StoreError> {
        let (access, refresh) = self.seal_tokens(provider, &profile.social_id, tokens);
        // The key is recorded with the provider that vouched for it: linking trusts it only
        // while that provider is trusted for linking.
        let verified_key = profile
            .email
            .as_deref()
            .filter(|_| profile.email_verified && options.vouches)
            .map(email_key);
        let voucher = verified_key.as_ref().map(|_| provider);
        if self.postgres {
            // A returning user (most logins) in one statement: two round trips (the pool's
            // ping, the statement) where the transaction below takes five (the ping, BEGIN,
            // two UPDATEs, COMMIT). Atomic all the same. No row: a first login, for the
            // transaction below.
            // The session of the JWT about to be issued is recorded by the same statement.
            let row: Option<UserRow> = sqlx::query_as(concat!(
                "WITH account AS (UPDATE social_users SET ",
                set_new_tokens!(),
                " WHERE provider = $5 AND social_id = $6 RETURNING user_id), \
                 person AS (UPDATE users SET name = $7, email = $8, email_key = $9, \
                 email_vouched_by = $14, \
                 avatar_url = $10, updated_at = $4 FROM account WHERE users.id = account.user_id \
                 RETURNING users.id, users.name, users.email, users.avatar_url), \
                 session AS (INSERT INTO sessions (jti, sub, provider, created_at, expires_at) \
                 SELECT $11, CAST(person.id AS TEXT), $5, $12, $13 FROM person) \
                 SELECT id, name, email, avatar_url FROM person"
            ))
            .bind(&access)
            .bind(&refresh)
            .bind(tokens.expires_at)
            .bind(now())
            .bind(provider)
            .bind(&profile.social_id)
            .bind(&profile.name)
            .bind(&profile.email)
            .bind(&verified_key)
            .bind(&profile.avatar_url)
            .bind(&session.jti)
            .bind(session.created_at)
            .bind(session.expires_at)
            .bind(voucher)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return Ok((user(row), false));
            }
        }
        let _turn = self.write_turn().await?;
        for _ in 0..5 {
            let now = now();
            let mut tx = self.pool.begin().await?;
            let existing: Option<(i64,)> = sqlx::query_as(concat!(
                "UPDATE social_users SET ",
                set_new_tokens!(),
                " WHERE provider = $5 AND social_id = $6 RETURNING user_id"
            ))
            .bind(&access)
            .bind(&refresh)
            .bind(tokens.expires_at)
            .bind(now)
            .bind(provider)
            .bind(&profile.social_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((user_id,)) = existing {
                let row: UserRow = sqlx::query_as(
                    "UPDATE users SET name = $1, email = $2, email_key = $3, avatar_url = $4, \
                     updated_at = $5, email_vouched_by = $7 WHERE id = $6 \
                     RETURNING id, name, email, avatar_url",
                )
                .bind(&profile.name)
                .bind(&profile.email)
                .bind(&verified_key)
                .bind(&profile.avatar_url)
                .bind(now)
                .bind(user_id)
                .bind(voucher)
                .fetch_one(&mut *tx)
                .await?;
                insert_session(&mut tx, session, &row.0.to_string(), Some(provider)).await?;
                tx.commit().await?;
                return Ok((user(row), false));
            }
            // A new identity: an existing user by verified email (opt-in), or a new user. Only
            // when both this provider and the one that vouched for the stored key are trusted
            // for linking, and only one user has the address.
            let mut linked_to: Option<UserRow> = None;
            let trusted = |p: &str| options.trusted_vouchers.iter().any(|t| t == p);
            if let (true, Some(key)) = (
                options.link_by_verified_email && trusted(provider),
                &verified_key,
            ) {
                type Candidate = (
                    i64,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                );
                let candidates: Vec<Candidate> = sqlx::query_as(
                    "SELECT id, name, email, avatar_url, email_vouched_by FROM users u WHERE email_key = $1 \
                     AND NOT EXISTS (SELECT 1 FROM social_users s WHERE s.user_id = u.id AND s.provider = $2) \
                     LIMIT 2",
                )
                .bind(key)
                .bind(provider)
                .fetch_all(&mut *tx)
                .await?;
                if let [(id, name, email, avatar, Some(voucher))] = candidates.as_slice() {
                    if trusted(voucher) {
                        linked_to = Some((*id, name.clone(), email.clone(), avatar.clone()));
                    }
                }
            }
            let created = linked_to.is_none();
            let row = match linked_to {
                Some(row) => row,
                None => {
                    sqlx::query_as(
                        "INSERT INTO users (name, email, email_key, avatar_url, created_at, updated_at, \
                         email_vouched_by) VALUES ($1, $2, $3, $4, $5, $5, $6) \
                         RETURNING id, name, email, avatar_url",
                    )
                    .bind(&profile.name)
                    .bind(&profile.email)
                    .bind(&verified_key)
                    .bind(&profile.avatar_url)
                    .bind(now)
                    .bind(voucher)
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO social_users (user_id, provider, social_id, token, refresh_token, \
                 token_expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                 ON CONFLICT DO NOTHING RETURNING user_id",
            )
            .bind(row.0)
            .bind(provider)
            .bind(&profile.social_id)
            .bind(&access)
            .bind(&refresh)
            .bind(tokens.expires_at)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                // Another login of this identity committed first: use its user.
                tx.rollback().await?;
                continue;
            }
            let user = user(row);
            if created {
                if let Err(e) = policy
                    .on_user_created(&mut tx, &user, &sign_in(provider, profile))
                    .await
                {
                    tx.rollback().await?;
                    return Err(StoreError::Hook(e));
                }
            }
            insert_session(&mut tx, session, &user.id.to_string(), Some(provider)).await?;
            tx.commit().await?;
            return Ok((user, created));
        }
        Err(StoreError::Conflict)
    }

    /// Links an identity to `user_id` (an explicit link by a signed-in user).
    pub(crate) async fn link_identity(
        &self,
        user_id: i64,
        provider: &str,
        profile: &Profile,
        tokens: &TokenSet,
    ) -> Result<LinkOutcome, StoreError> {
        let (access, refresh) = self.seal_tokens(provider, &profile.social_id, tokens);
        let _turn = self.write_turn().await?;
        let now = now();
        let mut tx = self.pool.begin().await?;
        // Take the user's row first: concurrent links and unlinks of one user queue here.
        sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let owner: Option<(i64,)> = sqlx::query_as(
            "SELECT user_id FROM social_users WHERE provider = $1 AND social_id = $2",
        )
        .bind(provider)
        .bind(&profile.social_id)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match owner {
            Some((owner,)) if owner != user_id => LinkOutcome::TakenByOther,
            Some(_) => {
                sqlx::query(concat!(
                    "UPDATE social_users SET ",
                    set_new_tokens!(),
                    " WHERE provider = $5 AND social_id = $6"
                ))
                .bind(&access)
                .bind(&refresh)
                .bind(tokens.expires_at)
                .bind(now)
                .bind(provider)
                .bind(&profile.social_id)
                .execute(&mut *tx)
                .await?;
                LinkOutcome::Linked
            }
            None => {
                let inserted: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO social_users (user_id, provider, social_id, token, refresh_token, \
                     token_expires_at, created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $7 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
                     ON CONFLICT DO NOTHING RETURNING user_id",
                )
                .bind(user_id)
                .bind(provider)
                .bind(&profile.social_id)
                .bind(&access)
                .bind(&refresh)
                .bind(tokens.expires_at)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                match inserted {
                    Some(_) => LinkOutcome::Linked,
                    None => {
                        let has: Option<(i64,)> = sqlx::query_as(
                            "SELECT user_id FROM social_users WHERE user_id = $1 AND provider = $2",
                        )
                        .bind(user_id)
                        .bind(provider)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if has.is_some() {
                            LinkOutcome::ProviderAlreadyLinked
                        } else {
                            LinkOutcome::TakenByOther
                        }
                    }
                }
            }
        };
        if outcome == LinkOutcome::Linked {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(outcome)
    }

    /// Removes `user_id`'s identity with `provider`, unless it is the last one, and revokes
    /// every live session signed in through it (in the same transaction).
    pub(crate) async fn unlink(
        &self,
        user_id: i64,
        provider: &str,
    ) -> Result<UnlinkOutcome, StoreError> {
        let _turn = self.write_turn().await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let providers: Vec<(String,)> =
            sqlx::query_as("SELECT provider FROM social_users WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
        let outcome = if !providers.iter().any(|(p,)| p == provider) {
            UnlinkOutcome::NotLinked
        } else if providers.len() == 1 {
            UnlinkOutcome::LastIdentity
        } else {
            sqlx::query("DELETE FROM social_users WHERE user_id = $1 AND provider = $2")
                .bind(user_id)
                .bind(provider)
                .execute(&mut *tx)
                .await?;
            // A user has one identity per provider: its sign-ins are the sessions of this
            // user with this provider.
            let revoked: Vec<(String, i64)> = sqlx::query_as(
                "UPDATE sessions SET revoked_at = $1 WHERE sub = $2 AND provider = $3 \
                 AND revoked_at IS NULL AND expires_at > $1 RETURNING jti, expires_at",
            )
            .bind(now())
            .bind(user_id.to_string())
            .bind(provider)
            .fetch_all(&mut *tx)
            .await?;
            UnlinkOutcome::Unlinked(revoked)
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// The tokens of `user_id`'s account with `provider`, if it has one.
    pub(crate) async fn tokens(
        &self,
        user_id: i64,
        provider: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        Ok(self
            .refresh_state(user_id, provider)
            .await?
            .map(|state| state.tokens))
    }

    /// Decrypts a row's tokens; a value that does not decrypt is `None`.
    fn open_tokens(
        &self,
        provider: &str,
        social_id: String,
        access: Option<String>,
        refresh: Option<String>,
    ) -> StoredTokens {
        let id = RowId {
            provider,
            social_id: &social_id,
        };
        let open = |value: Option<String>, column| {
            let value = value?;
            let plain = self.vault.open(&value, column, id);
            if plain.is_none() {
                log::warn!("social_auth: a stored {provider} token does not decrypt under the configured token_keys; treated as absent");
            }
            plain
        };
        StoredTokens {
            access_token: open(access, Column::Token),
            refresh_token: open(refresh, Column::RefreshToken),
            social_id: social_id.clone(),
        }
    }

    /// Forgets one stored token: the access token (logout, or a Facebook token that can no
    /// longer be exchanged; the refresh token stays) or a refresh token the provider refused.
    /// Any refresh lease is released.
    pub(crate) async fn clear_token(
        &self,
        user_id: i64,
        provider: &str,
        column: Column,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        let set = match column {
            Column::Token => "token = NULL, token_expires_at = NULL",
            Column::RefreshToken => "refresh_token = NULL",
        };
        sqlx::query(&format!(
            "UPDATE social_users SET {set}, updated_at = $1, token_version = token_version + 1, \
             refresh_lease_owner = NULL, refresh_lease_until = NULL WHERE user_id = $2 AND provider = $3"
        ))
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
        social_id: &str,
        tokens: &TokenSet,
    ) -> Result<(), StoreError> {
        let (access, refresh) = self.seal_tokens(provider, social_id, tokens);
        let _turn = self.write_turn().await?;
        sqlx::query(concat!(
            "UPDATE social_users SET ",
            set_new_tokens!(),
            ", refresh_lease_owner = NULL, refresh_lease_until = NULL \
                 WHERE user_id = $5 AND provider = $6"
        ))
        .bind(access)
        .bind(refresh)
        .bind(tokens.expires_at)
        .bind(now())
        .bind(user_id)
        .bind(provider)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What a refresh needs to know about `user_id`'s `provider` account, if it has one.
    pub(crate) async fn refresh_state(
        &self,
        user_id: i64,
        provider: &str,
    ) -> Result<Option<RefreshState>, StoreError> {
        // One read: the tokens and the version they are at must belong together, or a lease
        // taken at a newer version would send an older (rotated-away) refresh token.
        type Row = (String, Option<String>, Option<String>, i64, Option<i64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT social_id, token, refresh_token, token_version, refresh_lease_until \
             FROM social_users WHERE user_id = $1 AND provider = $2",
        )
        .bind(user_id)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(social_id, access, refresh, version, lease_until)| RefreshState {
                tokens: self.open_tokens(provider, social_id, access, refresh),
                version,
                leased: lease_until.is_some_and(|until| until >= now()),
            },
        ))
    }

    /// Takes the refresh lease of the account if nobody holds a live one and its tokens are
    /// still at `version` (compare-and-set; no row lock is held across the provider call).
    pub(crate) async fn take_refresh_lease(
        &self,
        user_id: i64,
        provider: &str,
        version: i64,
        owner: &str,
        seconds: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await?;
        let now = now();
        let taken = sqlx::query(
            "UPDATE social_users SET refresh_lease_owner = $1, refresh_lease_until = $2 \
             WHERE user_id = $3 AND provider = $4 AND token_version = $5 \
             AND (refresh_lease_until IS NULL OR refresh_lease_until < $6)",
        )
        .bind(owner)
        .bind(now + seconds)
        .bind(user_id)
        .bind(provider)
        .bind(version)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives the lease back (after a failed refresh).
    pub(crate) async fn release_refresh_lease(
        &self,
        user_id: i64,
        provider: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE social_users SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
             WHERE user_id = $1 AND provider = $2 AND refresh_lease_owner = $3",
        )
        .bind(user_id)
        .bind(provider)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

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

    /// Rewrites one batch of stored tokens (rows with `id > after`) under the current key;
    /// plain-text values (from before encryption, or imported) are sealed too. Each value is
    /// replaced only if it is still what was read (compare-and-set), so a pass is safe while
    /// the app serves and can be resumed at any time. Returns the last id seen.
    pub(crate) async fn reencrypt_batch(
        &self,
        after: i64,
        limit: i64,
        report: &mut ReencryptReport,
    ) -> Result<Option<i64>, StoreError> {
        type Row = (i64, String, String, Option<String>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, provider, social_id, token, refresh_token FROM social_users \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let current = self.vault.current_kid().to_owned();
        for (id, provider, social_id, token, refresh) in &rows {
            report.rows += 1;
            let row = RowId {
                provider,
                social_id,
            };
            for (column, value, sql) in [
                (Column::Token, token, "UPDATE social_users SET token = $1 WHERE id = $2 AND token = $3"),
                (
                    Column::RefreshToken,
                    refresh,
                    "UPDATE social_users SET refresh_token = $1 WHERE id = $2 AND refresh_token = $3",
                ),
            ] {
                let Some(value) = value else { continue };
                let plain = match TokenVault::kid_of(value) {
                    Some(kid) if kid == current => {
                        report.current += 1;
                        continue;
                    }
                    Some(_) => match self.vault.open(value, column, row) {
                        Some(plain) => plain,
                        None => {
                            report.undecryptable += 1;
                            continue;
                        }
                    },
                    None => Secret::new(value.clone()),
                };
                let sealed = self.vault.seal(plain.expose(), column, row);
                let changed = sqlx::query(sql)
                    .bind(&sealed)
                    .bind(id)
                    .bind(value)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if changed == 1 {
                    report.rewritten += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
        Ok(rows.last().map(|r| r.0))
    }
}

#[cfg(test)]
mod tests {
    use super::email_key;

    #[test]
    fn emails_match_case_insensitively_after_normalisation() {
        assert_eq!(email_key(" Ada@Example.COM "), "ada@example.com");
        // Fullwidth letters and a composed/decomposed é are the same address.
        assert_eq!(email_key("ＡＤＡ@example.com"), "ada@example.com");
        assert_eq!(email_key("jose\u{301}@x.io"), email_key("JOS\u{c9}@x.io"));
    }
}
