//! The rate limit in this instance's memory (GCRA, from `governor`): at most `max_clients`
//! clients are remembered, the least recently seen forgotten first.

use std::hash::RandomState;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use hashlink::LruCache;

use super::ClientKey;

/// One instance's allowances.
pub(super) struct MemoryLimit {
    limiter: RateLimiter<ClientKey, RecentClients, DefaultClock>,
}

impl MemoryLimit {
    pub(super) fn new(per_minute: NonZeroU32, burst: NonZeroU32, max_clients: u32) -> Self {
        let max_clients = usize::try_from(max_clients).unwrap_or(usize::MAX).max(1);
        MemoryLimit {
            limiter: RateLimiter::new(
                Quota::per_minute(per_minute).allow_burst(burst),
                RecentClients::new(max_clients),
                DefaultClock::default(),
            ),
        }
    }

    /// `Ok` when a request from `client` may go on, else the seconds to wait.
    pub(super) fn check(&self, client: ClientKey) -> Result<(), u64> {
        self.limiter.check_key(&client).map_err(|not_until| {
            not_until
                .wait_time_from(self.limiter.clock().now())
                .as_secs()
                .max(1)
        })
    }

    /// How many clients are remembered now (at most `max_clients`).
    pub(super) fn tracked(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets clients that are back to a full allowance.
    pub(super) fn forget_idle(&self) {
        self.limiter.retain_recent();
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
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn limit(per_minute: u32, burst: u32, max_clients: u32) -> MemoryLimit {
        let n = |v| NonZeroU32::new(v).unwrap();
        MemoryLimit::new(n(per_minute), n(burst), max_clients)
    }

    fn ip(s: &str) -> ClientKey {
        ClientKey::from(s.parse::<IpAddr>().unwrap())
    }

    /// The `n`-th of many distinct clients: IPv4 addresses and IPv6 /64s, alternately.
    fn distinct(n: u32) -> ClientKey {
        ClientKey::from(if n % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) | (u128::from(n) << 64) | 1,
            ))
        })
    }

    #[test]
    fn one_64_shares_one_allowance() {
        let limit = limit(1, 1, 100);
        assert_eq!(limit.check(ip("2001:db8:1:2::1")), Ok(()));
        assert!(limit.check(ip("2001:db8:1:2::2")).is_err());
        assert_eq!(limit.check(ip("2001:db8:1:3::1")), Ok(()));
        assert_eq!(limit.tracked(), 2);
    }

    #[test]
    fn a_hundred_thousand_addresses_stay_under_the_cap() {
        const CAP: usize = 1_000;
        let limit = limit(1, 2, CAP as u32);
        let pest = ip("192.0.2.66");
        assert_eq!(limit.check(pest), Ok(()));
        assert_eq!(limit.check(pest), Ok(()));
        assert!(limit.check(pest).is_err());
        for n in 0..100_000 {
            assert_eq!(limit.check(distinct(n)), Ok(()), "client {n}");
            assert!(
                limit.tracked() <= CAP,
                "{} clients after {n}",
                limit.tracked()
            );
            if n % 100 == 0 {
                // Knocking again keeps it among the recent clients: still limited.
                assert!(limit.check(pest).is_err(), "still limited at {n}");
            }
        }
        assert_eq!(limit.tracked(), CAP);
        // The most recent clients are remembered (over their burst of 2 on the third try)...
        let last = distinct(99_999);
        assert_eq!(limit.check(last), Ok(()));
        assert!(limit.check(last).is_err());
        // ...and the oldest were forgotten: they start again with a full allowance.
        assert_eq!(limit.check(distinct(0)), Ok(()));
        assert_eq!(limit.check(distinct(0)), Ok(()));
        assert!(limit.tracked() <= CAP);
    }

    #[test]
    fn forgetting_idle_clients_keeps_the_recent_ones() {
        // One request every 500 ms; governor forgets a state one interval after it is full again.
        let limit = limit(120, 1, 100);
        let busy = ip("192.0.2.1");
        assert_eq!(limit.check(busy), Ok(()));
        assert!(limit.check(busy).is_err());
        limit.forget_idle();
        assert_eq!(limit.tracked(), 1);
        assert!(limit.check(busy).is_err());
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        limit.forget_idle();
        assert_eq!(limit.tracked(), 0);
        assert_eq!(limit.check(busy), Ok(()));
    }
}
