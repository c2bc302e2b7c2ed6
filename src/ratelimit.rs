//! The optional per-client-IP rate limit of login start and callback (GCRA, from `governor`).

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rocket::request::Request;

use crate::config::RateLimitConfig;

/// One instance's limiter.
pub(crate) struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    ip_header: Option<String>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("ip_header", &self.ip_header)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    pub(crate) fn new(config: &RateLimitConfig, ip_header: Option<String>) -> Self {
        let per_minute = NonZeroU32::new(config.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = config.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
        RateLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            ip_header,
        }
    }

    /// The client's address: the configured header when it is set and parses (for
    /// `X-Forwarded-For`, the last address, the one the app's own proxy appended), else the peer
    /// address. Rocket's default `X-Real-IP` is never trusted unless configured.
    pub(crate) fn client_ip(&self, request: &Request<'_>) -> IpAddr {
        let from_header = self.ip_header.as_deref().and_then(|name| {
            let value = request.headers().get(name).last()?;
            value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        });
        from_header
            .or_else(|| request.remote().map(|addr| addr.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// `Ok` when the request may go on, else the seconds to wait.
    pub(crate) fn check(&self, request: &Request<'_>) -> Result<(), u64> {
        let ip = self.client_ip(request);
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
