//! An in-memory map from device-token hash to device, so that an agent's request does not
//! read the database to authenticate (at thousands of reports a second the read was a
//! large share of each request's cost).
//!
//! Revocation stays exact within a process: every store operation that revokes a token or
//! moves a device (`revoke_device`, a re-enrolment) invalidates the device here right after
//! its transaction commits, before it returns. A lookup that read the database before such a
//! commit must not put its stale answer back afterwards: each lookup notes the cache's
//! generation before it reads, and its answer is kept only if no invalidation happened in
//! between. Other processes' revocations arrive through the backend's change feed
//! (PostgreSQL NOTIFY); entries also expire after [`TTL`], a safety net for a notification
//! that was lost. Only valid tokens are cached: an unknown or revoked token always reads.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{AuthedDevice, SecretHash};

/// How long an entry is trusted without hearing of a change.
pub const TTL: Duration = Duration::from_secs(30);
/// Entries at most (about 150 bytes each).
pub const CAPACITY: usize = 100_000;

#[derive(Debug)]
struct Entry {
    device: AuthedDevice,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<SecretHash, Entry>,
    /// Counts invalidations; see the module comment.
    generation: u64,
}

#[derive(Debug)]
pub struct TokenCache {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
}

/// The cache's generation when a lookup missed; hand it back with the database's answer.
#[derive(Debug, Clone, Copy)]
pub struct Miss(u64);

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(CAPACITY, TTL)
    }
}

impl TokenCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TokenCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The device of a cached, fresh token, or a [`Miss`] to pass to [`TokenCache::insert`].
    pub fn get(&self, hash: &SecretHash, now: Instant) -> Result<AuthedDevice, Miss> {
        let inner = self.lock();
        match inner.entries.get(hash) {
            Some(entry) if now.saturating_duration_since(entry.at) < self.ttl => {
                Ok(entry.device.clone())
            }
            _ => Err(Miss(inner.generation)),
        }
    }

    /// Remembers what the database said about a token, unless something was invalidated
    /// since the lookup missed (the answer may predate that change).
    pub fn insert(&self, hash: SecretHash, device: AuthedDevice, miss: Miss, now: Instant) {
        let mut inner = self.lock();
        if inner.generation != miss.0 {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&hash) {
            let ttl = self.ttl;
            inner
                .entries
                .retain(|_, e| now.saturating_duration_since(e.at) < ttl);
            // Still full of fresh entries: drop an eighth, whichever the map yields first,
            // so that the scan above runs once per many inserts, not on every one.
            let keep = self.capacity - self.capacity.div_ceil(8);
            if inner.entries.len() > keep {
                let excess = inner.entries.len() - keep;
                let victims: Vec<SecretHash> = inner.entries.keys().take(excess).copied().collect();
                for victim in victims {
                    inner.entries.remove(&victim);
                }
            }
        }
        inner.entries.insert(hash, Entry { device, at: now });
    }

    /// Forgets every token of `device`. Call after the change committed.
    pub fn invalidate_device(&self, device: Uuid) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.retain(|_, e| e.device.id != device);
    }

    /// Forgets everything (a change feed that lost notifications).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> AuthedDevice {
        AuthedDevice {
            id: Uuid::from_bytes([n; 16]),
            group: "eng".into(),
        }
    }

    #[test]
    fn a_hit_until_the_device_is_invalidated() {
        let cache = TokenCache::default();
        let now = Instant::now();
        let miss = cache.get(&[1; 32], now).unwrap_err();
        cache.insert([1; 32], device(1), miss, now);
        let miss = cache.get(&[2; 32], now).unwrap_err();
        cache.insert([2; 32], device(2), miss, now);
        assert_eq!(cache.get(&[1; 32], now).unwrap(), device(1));
        cache.invalidate_device(device(1).id);
        assert!(cache.get(&[1; 32], now).is_err());
        assert_eq!(cache.get(&[2; 32], now).unwrap(), device(2), "others stay");
    }

    #[test]
    fn an_answer_read_before_an_invalidation_is_not_kept() {
        let cache = TokenCache::default();
        let now = Instant::now();
        let miss = cache.get(&[1; 32], now).unwrap_err();
        // The database said "valid"; a revocation committed before the answer came back.
        cache.invalidate_device(device(1).id);
        cache.insert([1; 32], device(1), miss, now);
        assert!(cache.get(&[1; 32], now).is_err());
        // A lookup after the revocation starts afresh.
        let miss = cache.get(&[1; 32], now).unwrap_err();
        cache.insert([1; 32], device(1), miss, now);
        assert!(cache.get(&[1; 32], now).is_ok());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_expire_and_capacity_is_kept() {
        let cache = TokenCache::new(16, Duration::from_secs(30));
        let t0 = Instant::now();
        let miss = cache.get(&[0; 32], t0).unwrap_err();
        cache.insert([0; 32], device(0), miss, t0);
        assert!(cache.get(&[0; 32], t0 + Duration::from_secs(29)).is_ok());
        assert!(cache.get(&[0; 32], t0 + Duration::from_secs(30)).is_err());
        for n in 1..=100u8 {
            let miss = cache.get(&[n; 32], t0).unwrap_err();
            cache.insert([n; 32], device(n), miss, t0);
            assert!(cache.len() <= 16, "{} entries", cache.len());
        }
        assert_eq!(
            cache.get(&[100; 32], t0).unwrap(),
            device(100),
            "newest kept"
        );
    }
}
