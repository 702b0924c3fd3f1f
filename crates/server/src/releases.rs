//! Agent releases for the Tauri updater: checking an uploaded artifact's signature against
//! the organisation's updater key, and the answer the updater expects.
//!
//! The Tauri updater verifies a minisign signature (Ed25519) over the artifact with the
//! public key built into the app, and refuses an update whose signature does not verify.
//! The server runs the same verification, with the same crate, when IT uploads a release:
//! a bad upload is refused at once rather than discovered by a thousand agents.
//!
//! Key and signature are in the Tauri updater's form: base64 of the minisign public key
//! file, and base64 of the `.sig` file that `tauri signer sign` writes.

use base64::Engine as _;
use serde::Serialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseError {
    #[error("the updater public key is not a minisign public key")]
    BadPublicKey,
    #[error("the signature is not a minisign signature")]
    BadSignature,
    #[error("the signature does not match this artifact and key")]
    SignatureMismatch,
    #[error("`{0}` is not a version (MAJOR.MINOR.PATCH)")]
    BadVersion(String),
}

fn decode_text(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Checks that `public_key` is a key the updater can use, so that a typo in the server's
/// configuration stops it at start rather than at the first upload.
pub fn check_public_key(public_key: &str) -> Result<(), ReleaseError> {
    let key_text = decode_text(public_key).ok_or(ReleaseError::BadPublicKey)?;
    minisign_verify::PublicKey::decode(&key_text)
        .map(|_| ())
        .map_err(|_| ReleaseError::BadPublicKey)
}

/// Verifies `signature` over `artifact` with `public_key`, exactly as the Tauri updater
/// does before it installs anything (prehashed signatures allowed, as `tauri signer` makes).
pub fn verify_signature(
    public_key: &str,
    artifact: &[u8],
    signature: &str,
) -> Result<(), ReleaseError> {
    let key_text = decode_text(public_key).ok_or(ReleaseError::BadPublicKey)?;
    let key =
        minisign_verify::PublicKey::decode(&key_text).map_err(|_| ReleaseError::BadPublicKey)?;
    let sig_text = decode_text(signature).ok_or(ReleaseError::BadSignature)?;
    let sig =
        minisign_verify::Signature::decode(&sig_text).map_err(|_| ReleaseError::BadSignature)?;
    key.verify(artifact, &sig, true)
        .map_err(|_| ReleaseError::SignatureMismatch)
}

/// The 8-byte key id minisign writes after its 2-byte algorithm tag, from the base64 line
/// of a `.pub` or `.sig` file (itself in base64, as the Tauri updater keeps them).
fn minisign_key_id(b64_file: &str) -> Option<String> {
    let text = decode_text(b64_file)?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    let id = raw.get(2..10)?;
    // minisign shows key ids as little-endian hex, as in its comment lines.
    Some(id.iter().rev().map(|b| format!("{b:02X}")).collect())
}

/// The id of the key `signature` was made with, as minisign prints it; `None` when it is
/// not a minisign signature.
pub fn signature_key_id(signature: &str) -> Option<String> {
    minisign_key_id(signature)
}

/// The id of `public_key`, as minisign prints it.
pub fn public_key_id(public_key: &str) -> Option<String> {
    minisign_key_id(public_key)
}

/// A `MAJOR.MINOR.PATCH` version; pre-release and build suffixes are not used for agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl std::str::FromStr for Version {
    type Err = ReleaseError;

    fn from_str(s: &str) -> Result<Version, ReleaseError> {
        let bad = || ReleaseError::BadVersion(s.chars().take(40).collect());
        let mut parts = s.trim().trim_start_matches('v').split('.');
        let mut next = || -> Result<u64, ReleaseError> {
            parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())
        };
        let v = Version(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The Tauri updater's answer for one platform (its "dynamic server" format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateAnswer {
    pub version: String,
    pub pub_date: String,
    pub url: String,
    pub signature: String,
    pub notes: String,
}

/// A release offered on a channel for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub version: Version,
    pub pub_date: chrono::DateTime<chrono::Utc>,
    pub url: String,
    pub signature: String,
    pub notes: String,
}

/// What the updater endpoint answers an agent on `current`: the offered release when it is
/// newer (200 with this JSON), else nothing (204). Never a downgrade.
pub fn answer(current: Version, offered: Option<&Offered>) -> Option<UpdateAnswer> {
    let offered = offered.filter(|o| o.version > current)?;
    Some(UpdateAnswer {
        version: offered.version.to_string(),
        pub_date: offered.pub_date.to_rfc3339(),
        url: offered.url.clone(),
        signature: offered.signature.clone(),
        notes: offered.notes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let v: Version = "1.2.10".parse().unwrap();
        assert!(v > "1.2.9".parse().unwrap());
        assert!("1.2".parse::<Version>().is_err());
        assert!("1.2.3.4".parse::<Version>().is_err());
        assert!("1.x.3".parse::<Version>().is_err());
    }

    #[test]
    fn only_a_newer_release_is_offered() {
        let offered = Offered {
            version: Version(0, 2, 0),
            pub_date: chrono::DateTime::UNIX_EPOCH,
            url: "https://t.example/a".into(),
            signature: "sig".into(),
            notes: String::new(),
        };
        assert!(answer(Version(0, 1, 0), Some(&offered)).is_some());
        assert!(answer(Version(0, 2, 0), Some(&offered)).is_none());
        assert!(answer(Version(0, 3, 0), Some(&offered)).is_none());
        assert!(answer(Version(0, 1, 0), None).is_none());
    }

    #[test]
    fn key_ids_come_from_the_key_and_signature_lines() {
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let mut raw = b"Ed".to_vec();
        raw.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        raw.extend_from_slice(&[0; 32]);
        let line = base64::engine::general_purpose::STANDARD.encode(&raw);
        let key = b64(&format!("untrusted comment: minisign public key\n{line}\n"));
        assert_eq!(public_key_id(&key).as_deref(), Some("0807060504030201"));
        assert_eq!(signature_key_id(&b64("untrusted comment: x\n")), None);
        assert_eq!(signature_key_id("not base64!"), None);
    }

    #[test]
    fn garbage_keys_and_signatures_are_refused() {
        assert_eq!(
            verify_signature("not base64!", b"x", "c2ln"),
            Err(ReleaseError::BadPublicKey)
        );
    }
}
