//! An identity's provider tokens: read (decrypted), written after a refresh, forgotten, and
//! the short refresh lease that coordinates refreshes across instances.

use crate::clock::now;
use crate::provider::TokenSet;
use crate::secret::Secret;
use crate::vault::{Column, RowId};

use super::{Store, StoreError};

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

impl Store {
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
}
