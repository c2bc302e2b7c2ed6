//! The tokens the guard verified recently, so that a signed-in user's next request costs a
//! lookup rather than a cookie decryption and a signature check.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::now;
use crate::jwt::Claims;

/// Where a request's token came from: the two are never mistaken for one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// The `Authorization: Bearer` header: the key is the JWT itself.
    Bearer,
    /// The private `jwt` cookie: the key is its encrypted value, as sent.
    Cookie,
}

/// A token that passed verification, and its claims.
pub(crate) struct Verified {
    pub token: String,
    pub claims: Claims,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("token", &"[redacted]")
            .field("claims", &self.claims)
            .finish()
    }
}

/// Tokens that passed verification, so that the next request carrying the same bytes (every
/// request of a signed-in user does) costs a lookup instead of a cookie decryption and a JWT
/// check — those were ~20% of the CPU of a request to a guarded route.
///
/// A hit is the answer that full verification gave for the very same bytes from the same
/// source, re-checked for the one thing that depends on time: expiry (`exp` past, leeway 0,
/// as [`JwtCodec::verify`] checks it). Only verified tokens enter, so an attacker cannot fill
/// it; past [`VerifiedCache::CAPACITY`] entries the expired ones go, then half of the rest.
#[derive(Default)]
pub(crate) struct VerifiedCache {
    maps: std::sync::Mutex<Maps>,
}

/// One map per source, keyed by the token's text as sent (looked up without a copy).
#[derive(Default)]
struct Maps {
    bearer: HashMap<Box<str>, Arc<Verified>>,
    cookie: HashMap<Box<str>, Arc<Verified>>,
}

impl Maps {
    fn of(&mut self, source: TokenSource) -> &mut HashMap<Box<str>, Arc<Verified>> {
        match source {
            TokenSource::Bearer => &mut self.bearer,
            TokenSource::Cookie => &mut self.cookie,
        }
    }
}

impl VerifiedCache {
    /// At most this many tokens are remembered per source (about 1 KiB each).
    pub(crate) const CAPACITY: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verified token sent as `raw` from `source`, unless unknown or expired.
    pub(crate) fn get(&self, source: TokenSource, raw: &str) -> Option<Arc<Verified>> {
        let mut maps = self.lock();
        let map = maps.of(source);
        let hit = map.get(raw)?;
        if hit.claims.exp < now() {
            map.remove(raw);
            return None;
        }
        Some(hit.clone())
    }

    /// Remembers a token that [`JwtCodec::verify`] accepted.
    pub(crate) fn insert(&self, source: TokenSource, raw: &str, verified: Arc<Verified>) {
        let mut maps = self.lock();
        let map = maps.of(source);
        if map.len() >= Self::CAPACITY {
            let now = now();
            map.retain(|_, v| v.claims.exp >= now);
            let mut keep = false;
            if map.len() >= Self::CAPACITY / 2 {
                map.retain(|_, _| {
                    keep = !keep;
                    keep
                });
            }
        }
        map.insert(raw.into(), verified);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> Claims {
        serde_json::from_value(serde_json::json!({
            "sub": sub, "role": "web_user", "iat": 0, "exp": 0, "jti": format!("j-{sub}")
        }))
        .unwrap()
    }

    fn verified(sub: &str, exp: i64) -> Arc<Verified> {
        let mut claims = claims(sub);
        claims.exp = exp;
        Arc::new(Verified {
            token: format!("token-{sub}"),
            claims,
        })
    }

    #[test]
    fn verified_cache_rechecks_expiry_and_keeps_sources_apart() {
        let cache = VerifiedCache::default();
        cache.insert(TokenSource::Cookie, "a", verified("1", now() + 60));
        cache.insert(TokenSource::Bearer, "b", verified("2", now() - 1));
        let hit = cache.get(TokenSource::Cookie, "a").expect("a live token");
        assert_eq!(hit.claims.sub, "1");
        assert!(
            cache.get(TokenSource::Bearer, "a").is_none(),
            "another source"
        );
        assert!(cache.get(TokenSource::Bearer, "b").is_none(), "expired");
        assert!(
            cache.get(TokenSource::Cookie, "c").is_none(),
            "never verified"
        );
    }

    #[test]
    fn verified_cache_is_bounded() {
        let cache = VerifiedCache::default();
        for i in 0..VerifiedCache::CAPACITY * 2 {
            cache.insert(
                TokenSource::Bearer,
                &i.to_string(),
                verified("1", now() + 60),
            );
        }
        assert!(cache.lock().bearer.len() <= VerifiedCache::CAPACITY);
        let last = (VerifiedCache::CAPACITY * 2 - 1).to_string();
        assert!(
            cache.get(TokenSource::Bearer, &last).is_some(),
            "the newest stays"
        );
    }
}
