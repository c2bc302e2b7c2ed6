//! The optional per-client rate limit of login start, callback and refresh (GCRA, from
//! `governor`): a client is an IPv4 address or an IPv6 /64, and at most `max_clients` of them
//! are remembered, the least recently seen forgotten first.

use std::hash::RandomState;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use hashlink::LruCache;
use rocket::request::Request;

use crate::client_ip::ClientAddress;
use crate::config::RateLimitConfig;

/// One instance's limiter.
pub(crate) struct RateLimit {
    limiter: RateLimiter<ClientKey, RecentClients, DefaultClock>,
    client: ClientAddress,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("client", &self.client)
            .field("tracked", &self.tracked())
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    pub(crate) fn new(config: &RateLimitConfig, client: ClientAddress) -> Self {
        let per_minute = NonZeroU32::new(config.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = config.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
        let max_clients = usize::try_from(config.max_clients)
            .unwrap_or(usize::MAX)
            .max(1);
        RateLimit {
            limiter: RateLimiter::new(
                Quota::per_minute(per_minute).allow_burst(burst),
                RecentClients::new(max_clients),
                DefaultClock::default(),
            ),
            client,
        }
    }

    /// `Ok` when the request may go on, else the seconds to wait.
    pub(crate) fn check(&self, request: &Request<'_>) -> Result<(), u64> {
        self.check_ip(self.client.of(request))
    }

    /// `Ok` when a request from `ip` may go on, else the seconds to wait.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter
            .check_key(&ClientKey::from(ip))
            .map_err(|not_until| {
                not_until
                    .wait_time_from(self.limiter.clock().now())
                    .as_secs()
                    .max(1)
            })
    }

    /// How many clients are remembered now (at most `max_clients`).
    pub(crate) fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets clients that are back to a full allowance.
    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
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

/// The GCRA state (the theoretical arrival time) of the most recently seen clients, at most
/// `capacity` of them: a new client beyond it makes the least recently seen one forgotten. A
/// client is "seen" on every check, allowed or not, so one that keeps knocking while limited
/// stays remembered (and limited). Hashed with SipHash under a random key, as the keys are
/// chosen by clients.
struct RecentClients {
    clients: Mutex<LruCache<ClientKey, Nanos, RandomState>>,
}

impl RecentClients {
    fn new(capacity: usize) -> Self {
        RecentClients {
            clients: Mutex::new(LruCache::with_hasher(capacity, RandomState::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<ClientKey, Nanos, RandomState>> {
        // The map is consistent between any two calls of ours: a panic elsewhere leaves no
        // half-made change to recover from.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StateStore for RecentClients {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut clients = self.lock();
        let (result, next) = f(clients.get(key).copied())?;
        clients.insert(*key, next);
        Ok(result)
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for RecentClients {
    /// Keeps the clients whose state is later than `drop_below`, in their order, in a map sized
    /// for them (so that the memory of a past flood is given back).
    fn retain_recent(&self, drop_below: Nanos) {
        let mut clients = self.lock();
        let capacity = clients.capacity();
        let old = std::mem::replace(
            &mut *clients,
            LruCache::with_hasher(capacity, RandomState::new()),
        );
        for (key, tat) in old {
            if tat > drop_below {
                clients.insert(key, tat);
            }
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn limit(per_minute: u32, burst: u32, max_clients: u32) -> RateLimit {
        let config: RateLimitConfig = rocket::figment::Figment::from(("per_minute", per_minute))
            .merge(("burst", burst))
            .merge(("max_clients", max_clients))
            .extract()
            .unwrap();
        RateLimit::new(&config, ClientAddress::new(None, None))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The `n`-th of many distinct clients: IPv4 addresses and IPv6 /64s, alternately.
    fn distinct(n: u32) -> IpAddr {
        if n % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) | (u128::from(n) << 64) | 1,
            ))
        }
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

    #[test]
    fn one_64_shares_one_allowance() {
        let limit = limit(1, 1, 100);
        assert_eq!(limit.check_ip(ip("2001:db8:1:2::1")), Ok(()));
        assert!(limit.check_ip(ip("2001:db8:1:2::2")).is_err());
        assert_eq!(limit.check_ip(ip("2001:db8:1:3::1")), Ok(()));
        assert_eq!(limit.tracked(), 2);
    }

    #[test]
    fn a_hundred_thousand_addresses_stay_under_the_cap() {
        const CAP: usize = 1_000;
        let limit = limit(1, 2, CAP as u32);
        let pest = ip("192.0.2.66");
        assert_eq!(limit.check_ip(pest), Ok(()));
        assert_eq!(limit.check_ip(pest), Ok(()));
        assert!(limit.check_ip(pest).is_err());
        for n in 0..100_000 {
            assert_eq!(limit.check_ip(distinct(n)), Ok(()), "client {n}");
            assert!(
                limit.tracked() <= CAP,
                "{} clients after {n}",
                limit.tracked()
            );
            if n % 100 == 0 {
                // Knocking again keeps it among the recent clients: still limited.
                assert!(limit.check_ip(pest).is_err(), "still limited at {n}");
            }
        }
        assert_eq!(limit.tracked(), CAP);
        // The most recent clients are remembered (over their burst of 2 on the third try)...
        let last = distinct(99_999);
        assert_eq!(limit.check_ip(last), Ok(()));
        assert!(limit.check_ip(last).is_err());
        // ...and the oldest were forgotten: they start again with a full allowance.
        assert_eq!(limit.check_ip(distinct(0)), Ok(()));
        assert_eq!(limit.check_ip(distinct(0)), Ok(()));
        assert!(limit.tracked() <= CAP);
    }

    #[test]
    fn forgetting_idle_clients_keeps_the_recent_ones() {
        // One request every 500 ms; governor forgets a state one interval after it is full again.
        let limit = limit(120, 1, 100);
        let busy = ip("192.0.2.1");
        assert_eq!(limit.check_ip(busy), Ok(()));
        assert!(limit.check_ip(busy).is_err());
        limit.forget_idle();
        assert_eq!(limit.tracked(), 1);
        assert!(limit.check_ip(busy).is_err());
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        limit.forget_idle();
        assert_eq!(limit.tracked(), 0);
        assert_eq!(limit.check_ip(busy), Ok(()));
    }
}
