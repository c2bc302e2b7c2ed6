//! The background work of an instance: reloading the revoked sessions, purging expired ones
//! and old audit events, forgetting idle rate-limit entries, and writing the logouts the
//! database refused.

use std::sync::Arc;

use crate::ratelimit::RateLimit;
use crate::sessions::{RevocationList, UnwrittenLogout, UnwrittenLogouts};
use crate::store::{Store, StoreError};
use crate::vault::Column;

/// Reloads the revoked sessions every `revocation_cache_secs` (keeping the last set while the
/// database is down), and about once a minute purges long-expired sessions and idle rate-limit
/// entries.
pub(crate) struct Upkeep {
    pub(crate) store: Store,
    pub(crate) revocations: Arc<RevocationList>,
    pub(crate) unwritten: Arc<UnwrittenLogouts>,
    pub(crate) rate_limit: Option<Arc<RateLimit>>,
    /// With `[social_auth.audit] store = true`: how many days events are kept.
    pub(crate) event_retention_days: Option<u32>,
    pub(crate) every: std::time::Duration,
}

impl Upkeep {
    /// One reload.
    pub(crate) async fn reload(&self) {
        match self.store.revoked_sessions().await {
            Ok(loaded) => self.revocations.replace(loaded),
            Err(e) => log::warn!("social_auth: revoked sessions not reloaded: {e}"),
        }
    }

    /// Writes the logouts the database refused, about every second while it still refuses,
    /// until `shutdown` resolves.
    pub(crate) async fn retry_logouts(
        store: Store,
        unwritten: Arc<UnwrittenLogouts>,
        shutdown: rocket::Shutdown,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut failed = Vec::new();
            for logout in unwritten.take() {
                if let Err(e) = write_logout(&store, &logout).await {
                    log::warn!("social_auth: a logout is still not recorded (retrying): {e}");
                    failed.push(logout);
                }
            }
            unwritten.requeue(failed);
            let wait = if unwritten.is_empty() {
                // Nothing to do until a logout fails.
                std::time::Duration::from_secs(3600)
            } else {
                std::time::Duration::from_secs(1)
            };
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = unwritten.pushed() => {}
                _ = rocket::tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Runs until `shutdown` resolves.
    pub(crate) async fn run(self, shutdown: rocket::Shutdown) {
        rocket::tokio::spawn(Upkeep::retry_logouts(
            self.store.clone(),
            self.unwritten.clone(),
            shutdown.clone(),
        ));
        let purge_every = (60 / self.every.as_secs().max(1)).max(1);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tick: u64 = 0;
        loop {
            self.reload().await;
            if tick % purge_every == 0 {
                if let Err(e) = self.store.purge_sessions(86_400).await {
                    log::warn!("social_auth: expired sessions not purged: {e}");
                }
                if let Some(limit) = &self.rate_limit {
                    limit.forget_idle();
                }
                if let Some(days) = self.event_retention_days {
                    if let Err(e) = self.store.purge_events(days).await {
                        log::warn!("social_auth: old audit events not purged: {e}");
                    }
                }
            }
            tick = tick.wrapping_add(1);
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = rocket::tokio::time::sleep(self.every) => {}
            }
        }
    }
}

/// Records a logout: the session revoked, the provider access token forgotten.
pub(crate) async fn write_logout(
    store: &Store,
    logout: &UnwrittenLogout,
) -> Result<(), StoreError> {
    store.revoke_session(&logout.jti).await?;
    if let Some((user_id, provider)) = &logout.account {
        store.clear_token(*user_id, provider, Column::Token).await?;
    }
    Ok(())
}
