//! The optional per-client rate limit of login start and callback (GCRA, from `governor`): a
//! client is an IPv4 address or an IPv6 /64.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rocket::request::Request;

use crate::client_ip::ClientAddress;
use crate::config::RateLimitConfig;

/// One instance's limiter.
pub(crate) struct RateLimit {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
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
        let key = ClientKey::from(self.client.of(request));
        self.limiter.check_key(&key).map_err(|not_until| {
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

/// Whom the limit counts: an IPv4 address, or the /64 network of an IPv6 address (one host
/// commonly holds a whole /64, so counting addresses would let it pick new ones at will). An
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => ClientKey(v4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let key = |s: &str| ClientKey::from(ip(s));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }
}
