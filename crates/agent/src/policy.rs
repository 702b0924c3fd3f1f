//! The policy in force: verification of signed server policy and resolution of sources.

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use tandem_proto::canonical::policy_signing_bytes;
use tandem_proto::v1::SignedPolicy;
use tandem_proto::Policy;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyRejected {
    #[error("the pinned policy signing key is malformed")]
    BadKey,
    #[error("the policy signature is malformed")]
    BadSignatureEncoding,
    #[error("the policy signature does not match the pinned server key")]
    SignatureMismatch,
    #[error("the policy document is not valid: {0}")]
    Invalid(String),
}

/// Checks a server policy against the key pinned at enrolment and parses it (leniently, so a
/// newer server's extra settings do not break an older agent).
pub fn verify(signed: &SignedPolicy, pinned_key_b64: &str) -> Result<Policy, PolicyRejected> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_bytes: [u8; 32] = b64
        .decode(pinned_key_b64)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(PolicyRejected::BadKey)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| PolicyRejected::BadKey)?;
    let sig_bytes: [u8; 64] = b64
        .decode(&signed.signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(PolicyRejected::BadSignatureEncoding)?;
    let signature = Signature::from_bytes(&sig_bytes);
    let message = policy_signing_bytes(signed.version, &signed.group, &signed.policy);
    key.verify(&message, &signature)
        .map_err(|_| PolicyRejected::SignatureMismatch)?;
    let policy: Policy = serde_json::from_value(signed.policy.clone())
        .map_err(|e| PolicyRejected::Invalid(e.to_string()))?;
    policy
        .validate()
        .map_err(|e| PolicyRejected::Invalid(e.to_string()))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    fn signed(key: &SigningKey, policy: serde_json::Value, version: i64) -> SignedPolicy {
        let sig = key.sign(&policy_signing_bytes(version, "default", &policy));
        SignedPolicy {
            policy,
            version,
            group: "default".into(),
            etag: "e".into(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        }
    }

    fn pinned(key: &SigningKey) -> String {
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())
    }

    #[test]
    fn a_correctly_signed_policy_is_accepted() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let p = verify(
            &signed(&key, json!({"intervals": {"check_minutes": 5}}), 2),
            &pinned(&key),
        )
        .unwrap();
        assert_eq!(p.intervals.check_minutes, 5);
    }

    #[test]
    fn tampering_or_another_key_is_rejected() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut s = signed(&key, json!({"intervals": {"check_minutes": 5}}), 2);
        s.policy = json!({"intervals": {"check_minutes": 500}});
        assert_eq!(
            verify(&s, &pinned(&key)),
            Err(PolicyRejected::SignatureMismatch)
        );
        let mut s = signed(&key, json!({}), 2);
        s.version = 3;
        assert_eq!(
            verify(&s, &pinned(&key)),
            Err(PolicyRejected::SignatureMismatch)
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            verify(&signed(&other, json!({}), 1), &pinned(&key)),
            Err(PolicyRejected::SignatureMismatch)
        );
    }

    #[test]
    fn a_signed_but_invalid_policy_is_rejected() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let s = signed(&key, json!({"intervals": {"check_minutes": 0}}), 2);
        assert!(matches!(
            verify(&s, &pinned(&key)),
            Err(PolicyRejected::Invalid(_))
        ));
    }
}

/// Lays `overlay` over `base`: objects merge key by key, anything else replaces.
pub fn merge(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn mark_leaves(
    value: &serde_json::Value,
    at: String,
    source: tandem_proto::state::PolicySource,
    origins: &mut std::collections::BTreeMap<String, tandem_proto::state::PolicySource>,
) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                mark_leaves(v, format!("{at}/{k}"), source, origins);
            }
        }
        _ => {
            // A leaf set by a higher source hides everything the lower sources said below it.
            origins.retain(|k, _| !(k.starts_with(&at) && k[at.len()..].starts_with('/')));
            origins.insert(at, source);
        }
    }
}

/// Resolves the policy in force: built-in defaults < the server's policy < the locally
/// managed policy, with the source of every setting.
pub fn resolve(
    server: Option<&serde_json::Value>,
    managed: Option<&serde_json::Value>,
) -> Result<
    (
        Policy,
        std::collections::BTreeMap<String, tandem_proto::state::PolicySource>,
    ),
    PolicyRejected,
> {
    use tandem_proto::state::PolicySource;
    let defaults = serde_json::to_value(Policy::default())
        .map_err(|e| PolicyRejected::Invalid(e.to_string()))?;
    let mut merged = defaults.clone();
    let mut origins = std::collections::BTreeMap::new();
    mark_leaves(
        &defaults,
        String::new(),
        PolicySource::BuiltIn,
        &mut origins,
    );
    for (layer, source) in [
        (server, PolicySource::Server),
        (managed, PolicySource::Managed),
    ] {
        if let Some(layer) = layer {
            merge(&mut merged, layer);
            mark_leaves(layer, String::new(), source, &mut origins);
        }
    }
    let policy: Policy =
        serde_json::from_value(merged).map_err(|e| PolicyRejected::Invalid(e.to_string()))?;
    policy
        .validate()
        .map_err(|e| PolicyRejected::Invalid(e.to_string()))?;
    Ok((policy, origins))
}

#[cfg(test)]
mod resolve_tests {
    use super::*;
    use serde_json::json;
    use tandem_proto::state::PolicySource;

    #[test]
    fn managed_beats_server_beats_defaults_and_each_setting_knows_its_source() {
        let server = json!({"checks": {"os_updates": {"grace_days": 7}, "screen_lock": {"max_idle_minutes": 15}}});
        let managed = json!({"checks": {"screen_lock": {"max_idle_minutes": 5}}});
        let (p, origins) = resolve(Some(&server), Some(&managed)).unwrap();
        assert_eq!(p.checks.os_updates.common.grace_days, 7);
        assert_eq!(p.checks.screen_lock.max_idle_minutes, 5);
        assert_eq!(p.intervals.check_minutes, 60);
        assert_eq!(
            origins["/checks/os_updates/grace_days"],
            PolicySource::Server
        );
        assert_eq!(
            origins["/checks/screen_lock/max_idle_minutes"],
            PolicySource::Managed
        );
        assert_eq!(origins["/intervals/check_minutes"], PolicySource::BuiltIn);
    }

    #[test]
    fn a_layer_that_breaks_the_rules_is_refused() {
        let managed = json!({"intervals": {"check_minutes": 0}});
        assert!(resolve(None, Some(&managed)).is_err());
    }
}
