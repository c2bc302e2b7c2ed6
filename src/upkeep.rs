//! The background work of an instance: reloading the revoked sessions, purging expired ones
//! and old audit events, forgetting idle rate-limit entries, and writing the logouts the
//! database refused.

use std::sync::Arc;

use crate::clock::now;
use crate::ratelimit::RateLimit;
use crate::sessions::{RevocationList, UnwrittenLogout, UnwrittenLogouts};
use crate::store::{Store, StoreError};
use crate::vault::Column;

/// Loads the revoked sessions at start, then every `revocation_cache_secs` those revoked since
/// (the set is kept while the database is down); about once a minute purges long-expired
/// sessions, in small batches, and forgets idle rate-limit entries.
pub(crate) struct Upkeep {
    pub(crate) store: Store,
    pub(crate) revocations: Arc<RevocationList>,
    pub(crate) unwritten: Arc<UnwrittenLogouts>,
    pub(crate) rate_limit: Option<Arc<RateLimit>>,
    /// With `[social_auth.audit] store = true`: how many days events are kept.
    pub(crate) event_retention_days: Option<u32>,
    pub(crate) every: std::time::Duration,
    /// Where the next reload starts (the database's clock); `None` until a whole load landed.
    pub(crate) since: Option<i64>,
}

/// How long one statement of the purge may hold the database (SQLite's single writer): each
/// batch deletes the sessions that expired within a span of time, and the span adapts so that
/// a batch takes about this long. Deleting a million expired sessions in one statement held the
/// writer for ~30 s, and logins behind it failed.
const PURGE_STATEMENT: std::time::Duration = std::time::Duration::from_millis(5);
/// The pause after a batch, in multiples of the time it took: the purge holds the writer a
/// quarter of the time at most, however many sessions expired (at half, logins' p99 during
/// the purge of a million sessions was 3.6 times that after it).
const PURGE_PAUSE_FACTOR: u32 = 3;
/// A batch of fewer sessions than this never shrinks the span.
const PURGE_FEW: u64 = 100;
/// Sessions are purged this long after they expired.
const PURGE_GRACE_SECS: i64 = 86_400;

impl Upkeep {
    /// One reload: everything the first time (until one succeeds), then what was revoked since
    /// the last.
    pub(crate) async fn reload(&mut self) {
        let revocations = &self.revocations;
        match self
            .store
            .revoked_sessions(self.since, |chunk| revocations.add(chunk))
            .await
        {
            Ok(next) => self.since = Some(next),
            Err(e) => log::warn!("social_auth: revoked sessions not reloaded: {e}"),
        }
    }

    /// One pass of the purge: small batches until none is left (or the database fails), each
    /// followed by a pause [`PURGE_PAUSE_FACTOR`] times as long as it took; then the revocation
    /// list and the rate limiter forget what expired.
    /// Returns the sessions deleted.
    pub(crate) async fn purge(
        store: &Store,
        revocations: &RevocationList,
        rate_limit: Option<&RateLimit>,
    ) -> u64 {
        let mut purged = 0;
        // Seconds of expiry per batch, grown or shrunk towards PURGE_STATEMENT; by halves and
        // doublings at most, so that one slow statement (a WAL checkpoint) moves it little.
        let mut span: i64 = 60;
        loop {
            let begun = std::time::Instant::now();
            let (n, more) = match store.purge_sessions(PURGE_GRACE_SECS, span).await {
                Ok(done) => done,
                Err(e) => {
                    log::warn!("social_auth: expired sessions not purged: {e}");
                    break;
                }
            };
            purged += n;
            if !more {
                break;
            }
            let took = begun.elapsed();
            // A statement that deleted few rows was slow for another reason (a round trip, a
            // busy machine): the span grows all the same.
            let scale = if n < PURGE_FEW {
                2.0
            } else {
                (PURGE_STATEMENT.as_secs_f64() / took.as_secs_f64().max(1e-6)).clamp(0.5, 2.0)
            };
            span = ((span as f64 * scale) as i64).clamp(1, 86_400);
            let pause = took * PURGE_PAUSE_FACTOR;
            rocket::tokio::time::sleep(pause.max(std::time::Duration::from_millis(1))).await;
        }
        revocations.forget_expired(now());
        if let Some(limit) = rate_limit {
            limit.forget_idle();
        }
        purged
    }

    /// Purges about once a minute (the first pass at once), until `shutdown` resolves.
    async fn purge_every_minute(
        store: Store,
        revocations: Arc<RevocationList>,
        rate_limit: Option<Arc<RateLimit>>,
        event_retention_days: Option<u32>,
        shutdown: rocket::Shutdown,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if let Some(days) = event_retention_days {
                if let Err(e) = store.purge_events(days).await {
                    log::warn!("social_auth: old audit events not purged: {e}");
                }
            }
            let pass = Upkeep::purge(&store, &revocations, rate_limit.as_deref());
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = pass => {}
            }
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = rocket::tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
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

    /// Runs until `shutdown` resolves; the first load has been done (at liftoff).
    pub(crate) async fn run(mut self, shutdown: rocket::Shutdown) {
        rocket::tokio::spawn(Upkeep::retry_logouts(
            self.store.clone(),
            self.unwritten.clone(),
            shutdown.clone(),
        ));
        rocket::tokio::spawn(Upkeep::purge_every_minute(
            self.store.clone(),
            self.revocations.clone(),
            self.rate_limit.clone(),
            self.event_retention_days,
            shutdown.clone(),
        ));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            rocket::tokio::select! {
                _ = &mut shutdown => return,
                _ = rocket::tokio::time::sleep(self.every) => {}
            }
            self.reload().await;
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
