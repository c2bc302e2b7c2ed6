//! The optional per-client rate limit of login start, callback and refresh (GCRA): a client is
//! an IPv4 address or an IPv6 /64, and its allowance is kept in this instance's memory or, with
//! `store = "redis"`, in Redis, where every instance shares it.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use rocket::request::Request;

use crate::client_ip::ClientAddress;
use crate::config::{RateLimitConfig, RateLimitStore};

mod memory;
mod redis_store;

use memory::MemoryLimit;
use redis_store::RedisLimit;

/// One instance's limiter.
pub(crate) struct RateLimit {
    store: Store,
    client: ClientAddress,
}

/// Where the allowances are.
enum Store {
    Memory(MemoryLimit),
    Redis(RedisLimit),
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RateLimit");
        debug.field("client", &self.client);
        match &self.store {
            Store::Memory(memory) => debug.field("tracked", &memory.tracked()),
            Store::Redis(redis) => debug.field("redis", redis),
        };
        debug.finish_non_exhaustive()
    }
}

impl RateLimit {
    /// The limiter of a configuration that `Config::validate` accepted. With Redis, nothing is
    /// connected yet: the first request connects.
    pub(crate) fn new(
        config: &RateLimitConfig,
        client: ClientAddress,
        audit: Option<std::sync::Arc<crate::audit::Audit>>,
    ) -> Self {
        let per_minute = NonZeroU32::new(config.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = config.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
        let store = match config.store {
            RateLimitStore::Redis => {
                Store::Redis(RedisLimit::new(config, per_minute, burst, audit))
            }
            RateLimitStore::Memory => {
                Store::Memory(MemoryLimit::new(per_minute, burst, config.max_clients))
            }
        };
        RateLimit { store, client }
    }

    /// `Ok` when the request may go on, else the seconds to wait.
    pub(crate) async fn check(&self, request: &Request<'_>) -> Result<(), u64> {
        self.check_ip(self.client.of(request)).await
    }

    /// `Ok` when a request from `ip` may go on, else the seconds to wait.
    pub(crate) async fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        let client = ClientKey::from(ip);
        let verdict = match &self.store {
            Store::Memory(memory) => memory.check(client),
            Store::Redis(redis) => redis.check(client, ip).await,
        };
        if verdict.is_err() {
            crate::measure::rate_limited();
        }
        verdict
    }

    /// Forgets clients that are back to a full allowance (Redis does it by itself: each key
    /// expires then).
    pub(crate) fn forget_idle(&self) {
        if let Store::Memory(memory) = &self.store {
            memory.forget_idle();
        }
    }
}

/// Whom the limit counts: an IPv4 address, or the /64 network of an IPv6 address (one host
/// commonly holds a whole /64, so counting addresses would let it pick new ones at will). An
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
///
/// Displayed as it is named in Redis keys: `192.0.2.1`, `2001:db8:1:2::/64`.
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

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::from(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn a_client_is_named_by_its_address_or_its_64() {
        assert_eq!(key("192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(key("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(
            key("2001:db8:1:2:aaaa:bbbb:cccc:dddd").to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(key("::1").to_string(), "::/64");
    }
}
