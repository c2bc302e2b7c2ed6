//! The optional per-client-IP rate limit of login start and callback (GCRA, from `governor`).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rocket::request::Request;

use crate::client_ip::ClientAddress;
use crate::config::RateLimitConfig;

/// One instance's limiter.
pub(crate) struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    client: ClientAddress,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    pub(crate) fn new(config: &RateLimitConfig, client: ClientAddress) -> Self {
        let per_minute = NonZeroU32::new(config.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = config.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
        RateLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            client,
        }
    }

    /// `Ok` when the request may go on, else the seconds to wait.
    pub(crate) fn check(&self, request: &Request<'_>) -> Result<(), u64> {
        let ip = self.client.of(request);
        self.limiter.check_key(&ip).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// Forgets clients that are back to a full allowance (bounded memory).
    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
