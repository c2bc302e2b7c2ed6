//! Users and their identities: a sign-in's upsert (with opt-in linking by email), an explicit
//! link, an unlink.

use std::sync::Arc;

use unicode_normalization::UnicodeNormalization;

use crate::clock::now;
use crate::model::{SignIn, User};
use crate::policy::Policy;
use crate::provider::{Profile, TokenSet};

use super::sessions::{insert_session, NewSession};
use super::{Store, StoreError};

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

/// Writes an identity's new (sealed) tokens; returns its user, `None` when the identity is
/// not stored yet.
async fn update_identity_tokens(
    conn: &mut sqlx::AnyConnection,
    provider: &str,
    social_id: &str,
    (access, refresh): (&String, &Option<String>),
    expires_at: Option<i64>,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(concat!(
        "UPDATE social_users SET ",
        set_new_tokens!(),
        " WHERE provider = $5 AND social_id = $6 RETURNING user_id"
    ))
    .bind(access)
    .bind(refresh)
    .bind(expires_at)
    .bind(now)
    .bind(provider)
    .bind(social_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(user_id,)| user_id))
}

/// Stores a new identity of `user_id` with its (sealed) tokens; `false` when the identity is
/// taken already (by anyone) or the user is gone. The one insert of an identity, for a
/// sign-in and a link alike.
async fn insert_identity(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    provider: &str,
    social_id: &str,
    (access, refresh): (&String, &Option<String>),
    expires_at: Option<i64>,
    now: i64,
) -> Result<bool, StoreError> {
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO social_users (user_id, provider, social_id, token, refresh_token, \
         token_expires_at, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $7 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
         ON CONFLICT DO NOTHING RETURNING user_id",
    )
    .bind(user_id)
    .bind(provider)
    .bind(social_id)
    .bind(access)
    .bind(refresh)
    .bind(expires_at)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

impl Store {
    /// Records a login: creates the user and social account the first time an identity is seen
    /// (or, when the provider allows it, links it to the user with the same verified email),
    /// else updates tokens (keeping a stored refresh token the provider did not resend) and
    /// profile (keeping a stored name the provider did not resend: Apple sends it once). Concurrent first logins of one identity make one user. Returns the user and
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
                 person AS (UPDATE users SET name = COALESCE($7, users.name), email = $8, email_key = $9, \
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
            let existing = update_identity_tokens(
                &mut tx,
                provider,
                &profile.social_id,
                (&access, &refresh),
                tokens.expires_at,
                now,
            )
            .await?;
            if let Some(user_id) = existing {
                let row: UserRow = sqlx::query_as(
                    "UPDATE users SET name = COALESCE($1, name), email = $2, email_key = $3, avatar_url = $4, \
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
            let inserted = insert_identity(
                &mut tx,
                row.0,
                provider,
                &profile.social_id,
                (&access, &refresh),
                tokens.expires_at,
                now,
            )
            .await?;
            if !inserted {
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
                update_identity_tokens(
                    &mut tx,
                    provider,
                    &profile.social_id,
                    (&access, &refresh),
                    tokens.expires_at,
                    now,
                )
                .await?;
                LinkOutcome::Linked
            }
            None => {
                let inserted = insert_identity(
                    &mut tx,
                    user_id,
                    provider,
                    &profile.social_id,
                    (&access, &refresh),
                    tokens.expires_at,
                    now,
                )
                .await?;
                match inserted {
                    true => LinkOutcome::Linked,
                    false => {
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
            let revoked: Vec<(String, i64)> = sqlx::query_as(&format!(
                "UPDATE sessions SET revoked_at = {} WHERE sub = $2 AND provider = $3 \
                 AND revoked_at IS NULL AND expires_at > $1 RETURNING jti, expires_at",
                self.db_now()
            ))
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
