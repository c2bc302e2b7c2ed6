//! A provider refresh coordinated across instances and tabs by a short lease on the account's
//! row (compare-and-set, no lock held across the provider call).

use crate::provider::{Provider, ProviderError, RefreshWith, TokenSet};
use crate::reply::RefreshReply;
use crate::secret::Secret;
use crate::store::StoreError;
use crate::vault::Column;

use super::AuthService;

impl AuthService {
    /// Uses the stored refresh token of `user_id`'s `provider` account (for Facebook, which has
    /// none, exchanges the access token for a long-lived one) and stores what the provider
    /// answers (a provider that sends no new refresh token keeps the old one).
    ///
    /// Concurrent refreshes of one account (several instances, several tabs) make one provider
    /// call: the first takes a short lease on the row (compare-and-set, no lock held across the
    /// call), the others wait for its result and answer with it. This matters for providers that
    /// rotate refresh tokens (GitHub Apps): a second call with the old token would fail and sign
    /// the user out.
    pub async fn refresh(&self, user_id: i64, provider: &str) -> RefreshReply {
        let reply = self.refresh_coordinated(user_id, provider).await;
        if let Some(outcome) = crate::audit::RefreshOutcome::of(&reply) {
            crate::measure::refresh(provider, outcome.as_str());
        }
        reply
    }

    async fn refresh_coordinated(&self, user_id: i64, provider: &str) -> RefreshReply {
        let Some(client) = self.provider(provider) else {
            return RefreshReply::NoRefreshToken;
        };
        let with = client.refresh_with();
        let timeout = self.config.http_timeout_secs as i64;
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(self.config.http_timeout_secs.saturating_mul(2) + 5);
        let owner = crate::clock::random_token(12);
        let mut first_version = None;
        loop {
            let state = match self.store.refresh_state(user_id, provider).await {
                Ok(Some(state)) => state,
                Ok(None) => return RefreshReply::NoRefreshToken,
                Err(e) => return refresh_store_error(e),
            };
            let token = match with {
                RefreshWith::RefreshToken => state.tokens.refresh_token.as_ref(),
                RefreshWith::AccessToken => state.tokens.access_token.as_ref(),
            };
            match (first_version, token) {
                // Another caller finished while we waited: its result is ours.
                (Some(v), Some(_)) if v != state.version => return RefreshReply::Refreshed,
                (Some(v), None) if v != state.version => return RefreshReply::Reauthenticate,
                _ => {}
            }
            let Some(token) = token else {
                return RefreshReply::NoRefreshToken;
            };
            first_version.get_or_insert(state.version);
            if !state.leased {
                match self
                    .store
                    .take_refresh_lease(user_id, provider, state.version, &owner, timeout + 5)
                    .await
                {
                    Ok(true) => {
                        return self
                            .refresh_leased(client, with, token, user_id, provider, &state, &owner)
                            .await
                    }
                    Ok(false) => {}
                    Err(e) => return refresh_store_error(e),
                }
            }
            if std::time::Instant::now() > deadline {
                return RefreshReply::ProviderTimeout;
            }
            rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The provider call of a refresh, under the lease.
    #[allow(clippy::too_many_arguments)]
    async fn refresh_leased(
        &self,
        client: &dyn Provider,
        with: RefreshWith,
        token: &Secret,
        user_id: i64,
        provider: &str,
        state: &crate::store::RefreshState,
        owner: &str,
    ) -> RefreshReply {
        let outcome = client.refresh(token).await;
        let release = || async {
            if let Err(e) = self
                .store
                .release_refresh_lease(user_id, provider, owner)
                .await
            {
                log::warn!("social_auth: refresh lease not released (it expires): {e}");
            }
        };
        match outcome.and_then(TokenSet::storable) {
            Ok(tokens) => match self
                .store
                .store_refreshed(user_id, provider, &state.tokens.social_id, &tokens)
                .await
            {
                Ok(()) => RefreshReply::Refreshed,
                Err(e) => refresh_store_error(e),
            },
            Err(e) if e.needs_reauthentication() => {
                log::info!("social_auth: {provider} refused a refresh: {e}");
                let column = match with {
                    RefreshWith::RefreshToken => Column::RefreshToken,
                    RefreshWith::AccessToken => Column::Token,
                };
                match self.store.clear_token(user_id, provider, column).await {
                    Ok(()) => RefreshReply::Reauthenticate,
                    Err(e) => refresh_store_error(e),
                }
            }
            Err(ProviderError::Timeout) => {
                release().await;
                RefreshReply::ProviderTimeout
            }
            Err(e) => {
                log::warn!("social_auth: {provider} refresh failed: {e}");
                release().await;
                RefreshReply::ProviderFailed
            }
        }
    }
}

fn refresh_store_error(e: StoreError) -> RefreshReply {
    log::error!("social_auth: {e}");
    if e.is_unavailable() {
        RefreshReply::DatabaseUnavailable
    } else {
        RefreshReply::StorageError
    }
}
