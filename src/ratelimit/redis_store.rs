//! The rate limit in Redis, shared by every instance on it: one GCRA decision per request in
//! one atomic Lua script, one key per client that expires once its allowance is full again.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::ClientKey;
use crate::config::{OnStoreError, RateLimitConfig};

/// The decision, atomic in Redis (see the script for its arguments and answer).
const GCRA: &str = include_str!("gcra.lua");

/// How often at most an outage is logged: the failures in between are counted, not logged.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// The allowances of every instance on one Redis.
pub(super) struct RedisLimit {
    /// Reconnects by itself. `None` only if the client could not be built from a URL that
    /// the configuration's check accepted (then every request is an outage).
    connection: Option<ConnectionManager>,
    /// Sent by its SHA1 (`EVALSHA`), in full when Redis does not know it (a restarted Redis).
    script: Script,
    prefix: String,
    /// One request's worth of allowance, in microseconds.
    interval_us: u64,
    burst: u32,
    /// The budget of one decision, connecting included.
    timeout: Duration,
    on_error: OnStoreError,
    /// `Retry-After` when `deny` refuses for an outage: one request's allowance, in seconds.
    deny_wait: u64,
    outage: Outage,
    /// Where an outage's event goes (with its warning).
    audit: Option<std::sync::Arc<crate::audit::Audit>>,
}

impl fmt::Debug for RedisLimit {
    /// Without the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimit")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_store_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

impl RedisLimit {
    /// The limiter of `config` (with its `redis_url`); it connects on the first request, so a
    /// Redis that is down at launch does not stop the app. Called inside Rocket's runtime.
    pub(super) fn new(
        config: &RateLimitConfig,
        per_minute: NonZeroU32,
        burst: NonZeroU32,
        audit: Option<std::sync::Arc<crate::audit::Audit>>,
    ) -> Self {
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        let connection = config.redis_url.as_ref().and_then(|url| {
            let manager = redis::Client::open(url.expose()).and_then(|client| {
                ConnectionManager::new_lazy_with_config(client, manager_config(timeout))
            });
            match manager {
                Ok(manager) => Some(manager),
                Err(e) => {
                    log::error!("social_auth: the rate limit's Redis client cannot be built: {e}");
                    None
                }
            }
        });
        let per_minute = u64::from(per_minute.get());
        RedisLimit {
            connection,
            script: Script::new(GCRA),
            prefix: config.redis_key_prefix.clone(),
            interval_us: (60_000_000 / per_minute).max(1),
            burst: burst.get(),
            timeout,
            on_error: config.on_store_error,
            deny_wait: 60_u64.div_ceil(per_minute).max(1),
            outage: Outage::default(),
            audit,
        }
    }

    /// `Ok` when a request from `client` may go on, else the seconds to wait; when Redis does
    /// not decide in time, what `on_store_error` says.
    pub(super) async fn check(&self, client: ClientKey, ip: std::net::IpAddr) -> Result<(), u64> {
        match self.decide(client).await {
            Ok((allowed, wait_us)) => {
                self.store_reachable();
                if allowed == 1 {
                    Ok(())
                } else {
                    Err(wait_us.max(0).unsigned_abs().div_ceil(1_000_000).max(1))
                }
            }
            Err(failure) => {
                self.store_unavailable(&failure, ip);
                match self.on_error {
                    OnStoreError::Allow => Ok(()),
                    OnStoreError::Deny => Err(self.deny_wait),
                }
            }
        }
    }

    /// Redis's answer: (1, 0) allowed, (0, microseconds to wait) refused.
    async fn decide(&self, client: ClientKey) -> Result<(i64, i64), Failure> {
        // A clone shares the connection (and its reconnection); `invoke_async` needs `&mut`.
        let mut connection = self.connection.clone().ok_or(Failure::NoClient)?;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}{client}", self.prefix))
            .arg(self.interval_us)
            .arg(self.burst);
        let answer = invocation.invoke_async(&mut connection);
        match rocket::tokio::time::timeout(self.timeout, answer).await {
            Ok(answer) => answer.map_err(Failure::Redis),
            Err(_) => Err(Failure::Timeout(self.timeout)),
        }
    }

    /// Redis could not decide (down, unreachable, too slow, or answering an error): the one
    /// place an outage is reported. A warning is logged at most every `WARN_EVERY`, with the
    /// count of the failures it did not log. Audit events and metrics of an outage hook in
    /// here.
    fn store_unavailable(&self, failure: &Failure, ip: std::net::IpAddr) {
        crate::measure::rate_limit_store_unavailable();
        let Some(unlogged) = self.outage.failed(Instant::now()) else {
            return;
        };
        if let Some(audit) = &self.audit {
            let client = crate::audit::ClientInfo {
                ip: Some(ip),
                user_agent: None,
            };
            audit.emit_detached(crate::audit::AuthEvent::new(
                crate::audit::AuthEventKind::RateLimitStoreUnavailable,
                &client,
            ));
        }
        let outcome = match self.on_error {
            OnStoreError::Allow => "let through without a limit (on_store_error = \"allow\")",
            OnStoreError::Deny => "refused with 429 (on_store_error = \"deny\")",
        };
        let since = if unlogged > 0 {
            format!("; {unlogged} more since the last warning")
        } else {
            String::new()
        };
        log::warn!(
            "social_auth: the rate limit's Redis did not decide ({failure}): login, callback and refresh requests are {outcome} until it answers{since}"
        );
    }

    /// Redis decided: the end of an outage, if one was reported, is logged once.
    fn store_reachable(&self) {
        if let Some(unlogged) = self.outage.over() {
            log::info!(
                "social_auth: the rate limit's Redis answers again: requests are limited again ({unlogged} more failures since the last warning)"
            );
        }
    }
}

/// How the connection waits and reconnects: each attempt and each answer within the decision's
/// budget, and one connection attempt per reconnection, without back-off: while Redis refuses
/// connections a request learns it at once (and the next request tries again), rather than
/// waiting out retries it could not use.
fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0)
}

/// Why Redis did not decide.
enum Failure {
    Redis(redis::RedisError),
    Timeout(Duration),
    NoClient,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Redis(e) => write!(f, "{e}"),
            Failure::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
            Failure::NoClient => f.write_str("its client could not be built"),
        }
    }
}

/// The log's view of an outage: warnings at most every `WARN_EVERY`, and one line when it ends.
#[derive(Default)]
struct Outage {
    /// A warning was logged and Redis has not answered since.
    reported: AtomicBool,
    warnings: Mutex<Warnings>,
}

#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    unlogged: u64,
}

impl Outage {
    fn lock(&self) -> MutexGuard<'_, Warnings> {
        // Two plain numbers: nothing half-made to recover from after a panic elsewhere.
        self.warnings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A failure at `now`: `Some(failures not logged since the last warning)` when a warning
    /// is due, else `None` (and this one is counted).
    fn failed(&self, now: Instant) -> Option<u64> {
        let mut warnings = self.lock();
        if warnings
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < WARN_EVERY)
        {
            warnings.unlogged += 1;
            return None;
        }
        warnings.last = Some(now);
        self.reported.store(true, Ordering::Relaxed);
        Some(std::mem::take(&mut warnings.unlogged))
    }

    /// An answer: `Some(failures not logged since the last warning)` when it ends a reported
    /// outage. (One atomic load on the way of every decision.)
    fn over(&self) -> Option<u64> {
        if !self.reported.load(Ordering::Relaxed) || !self.reported.swap(false, Ordering::Relaxed) {
            return None;
        }
        Some(std::mem::take(&mut self.lock().unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_once_every_few_seconds() {
        let outage = Outage::default();
        let start = Instant::now();
        assert_eq!(outage.failed(start), Some(0), "the first failure is logged");
        for ms in 1..1_000 {
            assert_eq!(outage.failed(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(
            outage.failed(start + WARN_EVERY),
            Some(999),
            "with the count"
        );
        assert_eq!(outage.failed(start + WARN_EVERY), None);
        assert_eq!(outage.over(), Some(1), "the end is logged once");
        assert_eq!(outage.over(), None);
        // A failure soon after the end is counted, not logged: the log stays quiet however
        // often Redis flaps.
        assert_eq!(outage.failed(start + WARN_EVERY * 3 / 2), None);
        assert_eq!(outage.over(), None, "nothing was reported");
        assert_eq!(outage.failed(start + WARN_EVERY * 2), Some(1));
    }
}
