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

/// Signed policies by etag. An etag names exactly the bytes a signature covers, so an entry
/// can never go stale; after a push, ten thousand woken long-polls share one signing.
#[derive(Debug, Default)]
pub struct SignedCache(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<SignedPolicy>>>,
);

/// Versions in flight at once are few (one per group); more than this is a reason to start over.
const SIGNED_CACHE_MAX: usize = 256;

impl SignedCache {
    pub fn get(
        &self,
        signer: &PolicySigner,
        policy: &StoredPolicy,
    ) -> std::sync::Arc<SignedPolicy> {
        let mut map = match self.0.lock() {
            Ok(map) => map,
            // A panic while holding the lock left a map that is still a valid cache.
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(hit) = map.get(&policy.etag) {
            return std::sync::Arc::clone(hit);
        }
        if map.len() >= SIGNED_CACHE_MAX {
            map.clear();
        }
        let signed = std::sync::Arc::new(sign(signer, policy));
        map.insert(policy.etag.clone(), std::sync::Arc::clone(&signed));
        signed
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
