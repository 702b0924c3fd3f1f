//! Policy on the server: which version applies to a device, signing it, and pushing a new
//! version (shared by the admin API and `tandem-server policy push`).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tandem_proto::policy::PolicyError;
use tandem_proto::v1::SignedPolicy;
use tandem_proto::Policy;

use crate::hub::PolicyHub;
use crate::keys::{policy_etag, PolicySigner};
use crate::store::{NewPolicy, PutPolicyOutcome, Store, StoreError, StoredPolicy, DEFAULT_GROUP};

/// What a device gets when neither its group nor the default group has a policy: the
/// built-in defaults, spelled out, as version 0 of the default group.
static BUILTIN: LazyLock<StoredPolicy> = LazyLock::new(|| {
    // Serializing plain data cannot fail; an empty object would mean "the agent's own
    // defaults", which is the same policy, so it is a safe fallback regardless.
    let body = serde_json::to_value(Policy::default())
        .unwrap_or_else(|_| Value::Object(serde_json::Map::new()));
    StoredPolicy {
        group: DEFAULT_GROUP.to_owned(),
        version: 0,
        etag: policy_etag(DEFAULT_GROUP, 0, &body),
        body,
    }
});

/// The built-in defaults as version 0 of the default group.
pub fn builtin() -> &'static StoredPolicy {
    &BUILTIN
}

/// The policy a device in `group` follows: its group's latest version, else the default
/// group's, else the built-in defaults.
pub async fn effective(store: &dyn Store, group: &str) -> Result<StoredPolicy, StoreError> {
    Ok(store
        .effective_policy(group)
        .await?
        .unwrap_or_else(|| BUILTIN.clone()))
}

/// Effective policies by group, shared by every request of this process until the hub
/// hears of any new version. After a push, ten thousand woken long-polls (and every report
/// acknowledgement) share one database read per group instead of making one each.
///
/// Correct because the hub counts a publication before it wakes anyone, and a policy is
/// published only after it is committed: an entry is tagged with the generation read
/// *before* its store read, so a version committed during that read makes the entry stale
/// at once rather than hiding the version.
#[derive(Debug, Default)]
pub struct EffectiveCache(std::sync::Mutex<std::collections::HashMap<String, CacheSlot>>);

/// One group's policy as read at `generation`; the cell lets concurrent readers of the same
/// generation wait for one store read instead of each making their own.
#[derive(Debug, Clone)]
struct CacheSlot {
    generation: u64,
    cell: std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<StoredPolicy>>>,
}

impl EffectiveCache {
    /// The policy a device in `group` follows (as [`effective`]), from the cache when no
    /// version was published since it was read.
    pub async fn get(
        &self,
        store: &dyn Store,
        hub: &PolicyHub,
        group: &str,
    ) -> Result<std::sync::Arc<StoredPolicy>, StoreError> {
        let generation = hub.generation();
        let cell = {
            let mut map = match self.0.lock() {
                Ok(map) => map,
                // The map holds no invariant a panic could break.
                Err(poisoned) => poisoned.into_inner(),
            };
            match map.get(group) {
                Some(slot) if slot.generation == generation => std::sync::Arc::clone(&slot.cell),
                _ => {
                    // Groups are few and named by IT; a map this big means something else is
                    // wrong, and starting over is always correct.
                    if map.len() >= SIGNED_CACHE_MAX {
                        map.clear();
                    }
                    let slot = CacheSlot {
                        generation,
                        cell: std::sync::Arc::new(tokio::sync::OnceCell::new()),
                    };
                    let cell = std::sync::Arc::clone(&slot.cell);
                    map.insert(group.to_owned(), slot);
                    cell
                }
            }
        };
        // A failed read leaves the cell empty, so the next caller tries the store again.
        cell.get_or_try_init(|| async { effective(store, group).await.map(std::sync::Arc::new) })
            .await
            .map(std::sync::Arc::clone)
    }
}

/// Signed policies by etag, as the JSON body the long-poll answers with. An etag names
/// exactly the bytes a signature covers, so an entry can never go stale; after a push, ten
/// thousand woken long-polls share one signing and one serialization.
#[derive(Debug, Default)]
pub struct SignedCache(std::sync::Mutex<std::collections::HashMap<String, axum::body::Bytes>>);

/// Versions in flight at once are few (one per group); more than this is a reason to start over.
const SIGNED_CACHE_MAX: usize = 256;

impl SignedCache {
    /// The JSON of `policy`'s [`SignedPolicy`].
    pub fn json(
        &self,
        signer: &PolicySigner,
        policy: &StoredPolicy,
    ) -> Result<axum::body::Bytes, serde_json::Error> {
        if let Some(hit) = self.lock().get(&policy.etag) {
            return Ok(hit.clone());
        }
        // Signed outside the lock: two first callers may both sign, which is harmless.
        let body = axum::body::Bytes::from(serde_json::to_vec(&sign(signer, policy))?);
        let mut map = self.lock();
        if map.len() >= SIGNED_CACHE_MAX {
            map.clear();
        }
        map.insert(policy.etag.clone(), body.clone());
        Ok(body)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, axum::body::Bytes>> {
        // A panic while holding the lock left a map that is still a valid cache.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The signed form an agent verifies against the key it pinned at enrolment.
pub fn sign(signer: &PolicySigner, policy: &StoredPolicy) -> SignedPolicy {
    SignedPolicy {
        signature: signer.sign_policy(policy.version, &policy.group, &policy.body),
        policy: policy.body.clone(),
        version: policy.version,
        group: policy.group.clone(),
        etag: policy.etag.clone(),
    }
}

pub const MAX_GROUP_NAME: usize = 64;

/// Group names appear in URLs, signatures and file names, so they are kept to a plain
/// alphabet: ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn check_group_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let starts_well = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if name.len() > MAX_GROUP_NAME || !valid_chars || !starts_well {
        return Err(format!(
            "group name `{}` must be 1 to {MAX_GROUP_NAME} ASCII letters, digits, `-`, `_` or `.`, \
             starting with a letter or digit",
            name.escape_debug()
        ));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PushPolicyError {
    #[error("{0}")]
    InvalidGroup(String),
    #[error("invalid policy: {0}")]
    InvalidPolicy(PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates `body` strictly, stores it as the group's next version (unless it equals the
/// current one) and wakes this process's long-polls of that group at once.
pub async fn push(
    store: &dyn Store,
    hub: &PolicyHub,
    group: &str,
    body: Value,
    actor: String,
    now: DateTime<Utc>,
) -> Result<PutPolicyOutcome, PushPolicyError> {
    check_group_name(group).map_err(PushPolicyError::InvalidGroup)?;
    Policy::parse_strict(&body).map_err(PushPolicyError::InvalidPolicy)?;
    let outcome = store
        .put_policy(&NewPolicy {
            group: group.to_owned(),
            body,
            created_at: now,
            created_by: actor,
        })
        .await?;
    if let PutPolicyOutcome::Created(p) = &outcome {
        hub.publish(&p.group, p.version);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        for ok in ["default", "eng", "Sales-EU", "a.b_c", "0"] {
            assert!(check_group_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_group_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_builtin_policy_is_version_0_of_the_default_group_and_parses_strictly() {
        assert_eq!(BUILTIN.version, 0);
        assert_eq!(BUILTIN.group, DEFAULT_GROUP);
        assert_eq!(
            Policy::parse_strict(&BUILTIN.body).unwrap(),
            Policy::default()
        );
    }
}
