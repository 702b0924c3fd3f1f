//! Key material: the Ed25519 policy-signing key, random secrets (device tokens, API tokens,
//! enrolment secrets), their hashes, and policy etags.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use rand::rngs::OsRng;
use rand::RngCore as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tandem_proto::canonical::policy_signing_bytes;

use crate::store::{SecretHash, Store, StoreError};

/// Signs policies with the server's one Ed25519 key, which agents pin at enrolment.
pub struct PolicySigner {
    key: SigningKey,
}

impl std::fmt::Debug for PolicySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half, not even in a debug log.
        f.debug_struct("PolicySigner")
            .field("public_key", &self.public_key_base64())
            .finish()
    }
}

impl PolicySigner {
    /// Loads the server's key from the store, creating it on first start.
    pub async fn load_or_create(store: &dyn Store, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let candidate = SigningKey::generate(&mut OsRng);
        let secret = store
            .signing_key_or_insert(
                &candidate.to_bytes(),
                &candidate.verifying_key().to_bytes(),
                now,
            )
            .await?;
        Ok(PolicySigner {
            key: SigningKey::from_bytes(&secret),
        })
    }

    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        PolicySigner {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The public key as enrolment hands it out: base64, standard alphabet, padded.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().to_bytes())
    }

    /// The signature over `policy_signing_bytes`, base64 standard.
    pub fn sign_policy(&self, version: i64, group: &str, policy: &Value) -> String {
        let signature = self.key.sign(&policy_signing_bytes(version, group, policy));
        STANDARD.encode(signature.to_bytes())
    }
}

/// A fresh secret of 256 random bits, base64url without padding (43 characters).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps instead of a secret.
pub fn hash_secret(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// A stable etag for one policy version: the SHA-256 of exactly the bytes its signature
/// covers (group, version and canonical JSON), so equal policies have equal etags whatever
/// key order or whitespace they were written with. 128 bits, base64url.
pub fn policy_etag(group: &str, version: i64, policy: &Value) -> String {
    let digest = Sha256::digest(policy_signing_bytes(version, group, policy));
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    use serde_json::json;

    #[test]
    fn secrets_are_43_url_safe_characters_and_differ() {
        let a = new_secret();
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, new_secret());
        assert_eq!(hash_secret(&a), hash_secret(&a.clone()));
    }

    #[test]
    fn etags_ignore_formatting_but_not_content() {
        let a: Value = serde_json::from_str(r#"{"org": {"name": "A"}, "intervals": {}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"intervals":{},"org":{"name":"A"}}"#).unwrap();
        assert_eq!(policy_etag("default", 1, &a), policy_etag("default", 1, &b));
        assert_ne!(policy_etag("default", 1, &a), policy_etag("default", 2, &a));
        assert_ne!(policy_etag("default", 1, &a), policy_etag("eng", 1, &a));
    }

    #[test]
    fn signatures_verify_with_the_published_key() {
        let signer = PolicySigner::from_secret_bytes(&[7; 32]);
        let policy = json!({"org": {"name": "Acme"}});
        let sig = STANDARD
            .decode(signer.sign_policy(4, "eng", &policy))
            .unwrap();
        let key: [u8; 32] = STANDARD
            .decode(signer.public_key_base64())
            .unwrap()
            .try_into()
            .unwrap();
        let key = VerifyingKey::from_bytes(&key).unwrap();
        let sig = Signature::from_slice(&sig).unwrap();
        key.verify(&policy_signing_bytes(4, "eng", &policy), &sig)
            .unwrap();
        assert!(key
            .verify(&policy_signing_bytes(5, "eng", &policy), &sig)
            .is_err());
    }
}
