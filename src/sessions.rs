//! Revoked sessions, known to the guard without a database query: each instance keeps the set of
//! revoked, not yet expired `jti`s in memory, reloads it from the database every
//! `revocation_cache_secs`, adds its own revocations at once, and keeps its last set while the
//! database is down.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::clock::now;

/// The in-memory revocation list of one instance.
#[derive(Debug, Default)]
pub(crate) struct RevocationList {
    /// What the guard reads: jti → expiry.
    revoked: RwLock<HashMap<String, i64>>,
    /// This instance's own revocations, merged into every reload until they expire, so that a
    /// reload that raced with a logout cannot drop it.
    local: Mutex<HashMap<String, i64>>,
}

impl RevocationList {
    /// Whether `jti` is revoked.
    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        !revoked.is_empty() && revoked.contains_key(jti)
    }

    /// Records revocations made by this instance.
    pub(crate) fn add(&self, sessions: impl IntoIterator<Item = (String, i64)>) {
        let sessions: Vec<_> = sessions.into_iter().collect();
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(sessions.iter().cloned());
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.extend(sessions);
        crate::measure::revoked_sessions(revoked.len());
    }

    /// Replaces the set with a fresh load from the database (plus our own revocations), dropping
    /// what has expired.
    pub(crate) fn replace(&self, loaded: Vec<(String, i64)>) {
        let now = now();
        let mut fresh: HashMap<String, i64> =
            loaded.into_iter().filter(|(_, exp)| *exp > now).collect();
        {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local.retain(|_, exp| *exp > now);
            fresh.extend(local.iter().map(|(k, v)| (k.clone(), *v)));
        }
        crate::measure::revoked_sessions(fresh.len());
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// How many revoked sessions are known.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.revoked.read().unwrap().len()
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

    #[test]
    fn own_revocations_survive_a_stale_reload() {
        let list = RevocationList::default();
        list.add([("a".to_owned(), now() + 60)]);
        assert!(list.is_revoked("a"));
        // A reload that read the database before our logout was written.
        list.replace(vec![
            ("b".to_owned(), now() + 60),
            ("old".to_owned(), now() - 1),
        ]);
        assert!(list.is_revoked("a"));
        assert!(list.is_revoked("b"));
        assert!(!list.is_revoked("old"), "expired sessions are dropped");
        assert_eq!(list.len(), 2);
    }
}
