//! Revoked sessions, known to the guard without a database query: each instance keeps the set of
//! revoked, not yet expired `jti`s in memory — loaded whole at start, then every
//! `revocation_cache_secs` only the sessions revoked since, plus its own revocations at once —
//! and keeps it while the database is down.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The in-memory revocation list of one instance: revoked sessions (`jti` → expiry) are added,
/// never removed but when they expire; nothing replaces the set, so a reload that raced with a
/// logout cannot drop it.
///
/// Compact: a `jti` as this crate makes them (16 random bytes, base64url) is kept as its 16
/// bytes, 24 bytes an entry with its expiry (~6.5 MB for 200,000); any other `jti` as text.
#[derive(Debug, Default)]
pub(crate) struct RevocationList {
    revoked: RwLock<Revoked>,
}

#[derive(Debug, Default)]
struct Revoked {
    /// `jti`s of our format, decoded.
    ours: HashMap<[u8; 16], i64>,
    /// Any other `jti` (an app's own, or a test's).
    other: HashMap<Box<str>, i64>,
}

/// The 16 bytes of a `jti` in our format (the canonical base64url of 16 bytes, 22 characters).
fn our_key(jti: &str) -> Option<[u8; 16]> {
    if jti.len() != 22 {
        return None;
    }
    let mut buf = [0u8; 18];
    match URL_SAFE_NO_PAD.decode_slice(jti, &mut buf) {
        Ok(16) => buf[..16].try_into().ok(),
        _ => None,
    }
}

impl Revoked {
    fn insert(&mut self, jti: &str, expires_at: i64) {
        match our_key(jti) {
            Some(key) => self.ours.insert(key, expires_at),
            None => self.other.insert(jti.into(), expires_at),
        };
    }

    fn is_empty(&self) -> bool {
        self.ours.is_empty() && self.other.is_empty()
    }
}

impl RevocationList {
    /// Whether `jti` is revoked.
    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        if revoked.is_empty() {
            return false;
        }
        match our_key(jti) {
            Some(key) => revoked.ours.contains_key(&key),
            None => revoked.other.contains_key(jti),
        }
    }

    /// Adds revoked sessions (`jti`, expiry): this instance's own revocations, or what a load
    /// from the database found. Adding one twice is harmless.
    pub(crate) fn add<S: AsRef<str>>(&self, sessions: impl IntoIterator<Item = (S, i64)>) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        for (jti, expires_at) in sessions {
            revoked.insert(jti.as_ref(), expires_at);
        }
        crate::measure::revoked_sessions(revoked.ours.len() + revoked.other.len());
    }

    /// Forgets the sessions that have expired by `now` (their tokens are refused anyway).
    pub(crate) fn forget_expired(&self, now: i64) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.ours.retain(|_, exp| *exp > now);
        revoked.other.retain(|_, exp| *exp > now);
        crate::measure::revoked_sessions(revoked.ours.len() + revoked.other.len());
    }

    /// How many revoked sessions are known.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.ours.len() + revoked.other.len()
    }
}

/// A logout that the database refused: the session to revoke and, for a social session, the
/// account whose provider access token to forget.
#[derive(Debug, Clone)]
pub(crate) struct UnwrittenLogout {
    pub jti: String,
    pub account: Option<(i64, String)>,
}

/// The logouts waiting to be written (this instance already refuses their sessions).
#[derive(Debug, Default)]
pub(crate) struct UnwrittenLogouts {
    queue: Mutex<Vec<UnwrittenLogout>>,
    pushed: rocket::tokio::sync::Notify,
}

impl UnwrittenLogouts {
    /// Queues a logout for the retry task and wakes it.
    pub(crate) fn push(&self, logout: UnwrittenLogout) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(logout);
        self.pushed.notify_one();
    }

    /// Puts back logouts that failed again, without waking the retry task.
    pub(crate) fn requeue(&self, logouts: Vec<UnwrittenLogout>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(logouts);
    }

    /// Takes every queued logout.
    pub(crate) fn take(&self) -> Vec<UnwrittenLogout> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether none is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Resolves when a logout is queued (at once if one was queued since the last wait).
    pub(crate) async fn pushed(&self) {
        self.pushed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{now, random_token};

    #[test]
    fn revoked_sessions_of_any_jti_are_refused_until_they_expire() {
        let list = RevocationList::default();
        let ours = random_token(16);
        assert!(
            our_key(&ours).is_some(),
            "the crate's jti is kept as 16 bytes"
        );
        assert!(!list.is_revoked(&ours), "nothing is revoked yet");
        list.add([(ours.as_str(), now() + 60), ("local-7", now() + 60)]);
        list.add([("old".to_owned(), now() - 1)]);
        assert!(list.is_revoked(&ours));
        assert!(list.is_revoked("local-7"), "a jti of another format");
        assert!(!list.is_revoked(&random_token(16)), "another session");
        assert_eq!(list.len(), 3);
        list.forget_expired(now());
        assert!(!list.is_revoked("old"), "expired sessions are forgotten");
        assert!(list.is_revoked(&ours) && list.is_revoked("local-7"));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn a_jti_is_never_mistaken_for_another() {
        let list = RevocationList::default();
        let jti = random_token(16);
        list.add([(jti.as_str(), now() + 60)]);
        // The same 16 bytes with a padding bit set in the last character (22 characters carry
        // 132 bits): not canonical, so looked up as text, never decoded to the same key.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET
            .iter()
            .position(|c| *c == jti.as_bytes()[21])
            .unwrap();
        assert_eq!(
            last % 16,
            0,
            "a canonical last character has no padding bit set"
        );
        let neighbour = format!("{}{}", &jti[..21], ALPHABET[last + 1] as char);
        assert!(!list.is_revoked(&neighbour));
        assert!(!list.is_revoked(&jti[..21]));
        assert!(!list.is_revoked(&format!("{jti}A")));
    }
}
