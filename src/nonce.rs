//! The replay cache for `/nc` signatures: each `(keyid, nonce)` is accepted once while its signature
//! could still pass the time check. Bounded: when full of live entries it refuses (503) rather than
//! skip the check. A restart does not reopen the window because the verifier also refuses signatures
//! created before the process started (see `auth::signature`).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplayError {
    /// Seen before within its lifetime.
    #[error("nonce replayed")]
    Replayed,
    /// The cache is full of live entries.
    #[error("replay cache full")]
    Full,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<(String, String)>,
    /// Insertion order with expiry; TTL is constant, so expiries are monotonic.
    order: VecDeque<(u64, (String, String))>,
}

/// A bounded, time-limited set of `(keyid, nonce)`.
#[derive(Debug)]
pub(crate) struct ReplayCache {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl_secs: u64,
}

impl ReplayCache {
    /// A cache holding at most `capacity` live entries for `ttl_secs` each.
    pub(crate) fn new(capacity: usize, ttl_secs: u64) -> Self {
        Self { inner: Mutex::new(Inner::default()), capacity, ttl_secs }
    }

    /// Records `(keyid, nonce)` at `now`, or refuses it.
    pub(crate) fn check_and_insert(&self, keyid: &str, nonce: &str, now: u64) -> Result<(), ReplayError> {
        let mut inner = self.inner.lock().expect("replay cache lock");
        while inner.order.front().is_some_and(|(expiry, _)| *expiry <= now) {
            if let Some((_, key)) = inner.order.pop_front() {
                inner.seen.remove(&key);
            }
        }
        let key = (keyid.to_owned(), nonce.to_owned());
        if inner.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if inner.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        inner.seen.insert(key.clone());
        inner.order.push_back((now + self.ttl_secs, key));
        Ok(())
    }

    /// Live entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("replay cache lock").seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_key() {
        let c = ReplayCache::new(10, 100);
        assert_eq!(c.check_and_insert("k1", "n1", 1000), Ok(()));
        assert_eq!(c.check_and_insert("k1", "n1", 1001), Err(ReplayError::Replayed));
        assert_eq!(c.check_and_insert("k2", "n1", 1001), Ok(()), "independent per key id");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = ReplayCache::new(10, 100);
        c.check_and_insert("k", "n", 1000).unwrap();
        assert_eq!(c.check_and_insert("k", "n", 1099), Err(ReplayError::Replayed));
        assert_eq!(c.check_and_insert("k", "n", 1100), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_instead_of_skipping_the_check() {
        let c = ReplayCache::new(2, 100);
        c.check_and_insert("k", "a", 1000).unwrap();
        c.check_and_insert("k", "b", 1000).unwrap();
        assert_eq!(c.check_and_insert("k", "c", 1001), Err(ReplayError::Full));
        assert_eq!(c.check_and_insert("k", "c", 1100), Ok(()), "room again once entries expire");
        assert_eq!(c.len(), 1);
    }
}
