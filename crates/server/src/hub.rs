//! The per-process push hub: wakes policy long-polls the moment a group gets a new version.
//!
//! Each group has a `watch` channel holding the newest version this process has heard of.
//! Anything that learns of a change publishes it here: the admin API right after it stores a
//! version, and each store's change follower for versions written elsewhere (the CLI, other
//! replicas; with PostgreSQL this will be LISTEN/NOTIFY). Publishing the same version twice
//! wakes nobody the second time, so several feeds may report one change.
//!
//! Waiters re-read the effective policy when woken rather than trusting the number they
//! were sent, so a wake-up is only ever a hint and a spurious one costs one query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

#[derive(Debug)]
pub struct PolicyHub {
    groups: Mutex<HashMap<String, watch::Sender<i64>>>,
    /// How many long-polls are parked right now, for metrics and for tests that must not
    /// sleep while waiting for a request to park.
    parked: Arc<watch::Sender<usize>>,
    /// Counts publications of any group, so a cache of effective policies can tell it may
    /// be stale without knowing which groups fall back to which.
    generation: AtomicU64,
}

impl Default for PolicyHub {
    fn default() -> Self {
        PolicyHub {
            groups: Mutex::new(HashMap::new()),
            parked: Arc::new(watch::Sender::new(0)),
            generation: AtomicU64::new(0),
        }
    }
}

impl PolicyHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver that reports the next version published for `group`. Subscribe before
    /// reading the current policy, or a change between the read and the wait is missed.
    pub fn subscribe(&self, group: &str) -> watch::Receiver<i64> {
        // A poisoned lock only means another thread panicked while holding it; the map of
        // senders it guards is still consistent, so carry on.
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups
            .entry(group.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Tells the waiters of `group` that version `version` exists.
    pub fn publish(&self, group: &str, version: i64) {
        // Before the wake-up: a woken waiter must find its cached policy already stale.
        self.generation.fetch_add(1, Ordering::SeqCst);
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        // Nobody has subscribed to this group yet, so there is nobody to wake; a later
        // subscriber reads the current policy itself.
        if let Some(sender) = groups.get(group) {
            sender.send_if_modified(|known| {
                let newer = version > *known;
                if newer {
                    *known = version;
                }
                newer
            });
        }
    }

    /// Changes whenever any version is published (also for repeats: a spare re-read is
    /// cheap, a missed one is not). Read it before reading a policy from the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Marks one long-poll as parked until the guard is dropped.
    pub fn park(&self) -> ParkedGuard {
        self.parked.send_modify(|n| *n += 1);
        ParkedGuard {
            parked: Arc::clone(&self.parked),
        }
    }

    /// The number of parked long-polls, as a channel that reports every change.
    pub fn parked(&self) -> watch::Receiver<usize> {
        self.parked.subscribe()
    }
}

/// Counts one parked long-poll while alive.
#[derive(Debug)]
pub struct ParkedGuard {
    parked: Arc<watch::Sender<usize>>,
}

impl Drop for ParkedGuard {
    fn drop(&mut self) {
        self.parked.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_version_wakes_and_a_repeat_does_not() {
        let hub = PolicyHub::new();
        let mut rx = hub.subscribe("eng");
        hub.publish("eng", 3);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 3);
        let generation = hub.generation();
        hub.publish("eng", 3);
        hub.publish("eng", 2);
        assert_eq!(hub.generation(), generation + 2, "every publication counts");
        assert!(!rx.has_changed().unwrap());
        hub.publish("other", 9);
        assert!(!rx.has_changed().unwrap());
    }

    #[tokio::test]
    async fn parked_counts_live_guards() {
        let hub = PolicyHub::new();
        let rx = hub.parked();
        let a = hub.park();
        let b = hub.park();
        assert_eq!(*rx.borrow(), 2);
        drop(a);
        drop(b);
        assert_eq!(*rx.borrow(), 0);
    }
}
