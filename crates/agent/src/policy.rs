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
