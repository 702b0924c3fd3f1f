//! Where the device token lives: the OS keyring by default (Secret Service, Keychain,
//! Credential Manager), or a 0600 file in the data dir for headless machines and services.
//!
//! The token is wrapped in [`DeviceToken`], whose `Debug` and `Display` never show it, so it
//! cannot reach a log line, a support bundle or a report by accident.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const KEYRING_SERVICE: &str = "dev.tandem.agent";
const TOKEN_FILE: &str = "device-token";

/// A device token. Only [`DeviceToken::expose`] reveals it, for the Authorization header.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl DeviceToken {
    pub fn new(token: String) -> DeviceToken {
        DeviceToken(token)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceToken(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStoreKind {
    #[default]
    Keyring,
    File,
}

impl std::str::FromStr for CredentialStoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keyring" => Ok(CredentialStoreKind::Keyring),
            "file" => Ok(CredentialStoreKind::File),
            other => Err(format!(
                "unknown credential store `{other}` (expected `keyring` or `file`)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "no OS keyring is available ({detail}); start a Secret Service provider such as \
         gnome-keyring, or keep the token in a file with `--credential-store file`"
    )]
    NoKeyring { detail: String },
    #[error("the OS keyring refused access to the device token: {0}")]
    Keyring(String),
    #[error("device token file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no device token is stored; enrol this device with `tandem enroll`")]
    Missing,
}

/// The chosen store, bound to one data dir and one account name.
#[derive(Debug, Clone)]
pub struct Credentials {
    kind: CredentialStoreKind,
    data_dir: PathBuf,
    /// The keyring account name: one entry per data dir, so test and real agents never mix.
    account: String,
}

impl Credentials {
    pub fn new(kind: CredentialStoreKind, data_dir: &Path) -> Credentials {
        let account = format!("device-token:{}", data_dir.display());
        Credentials {
            kind,
            data_dir: data_dir.to_owned(),
            account,
        }
    }

    pub fn kind(&self) -> CredentialStoreKind {
        self.kind
    }

    pub async fn store(&self, token: &DeviceToken) -> Result<(), CredentialError> {
        match self.kind {
            CredentialStoreKind::File => write_token_file(&self.data_dir.join(TOKEN_FILE), token),
            CredentialStoreKind::Keyring => {
                let (account, secret) = (self.account.clone(), token.expose().to_owned());
                blocking(move || {
                    keyring_entry(&account)?
                        .set_password(&secret)
                        .map_err(keyring_error)
                })
                .await
            }
        }
    }

    pub async fn load(&self) -> Result<DeviceToken, CredentialError> {
        match self.kind {
            CredentialStoreKind::File => {
                let path = self.data_dir.join(TOKEN_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(s) if !s.trim().is_empty() => Ok(DeviceToken(s.trim().to_owned())),
                    Ok(_) => Err(CredentialError::Missing),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(CredentialError::Missing)
                    }
                    Err(source) => Err(CredentialError::File { path, source }),
                }
            }
            CredentialStoreKind::Keyring => {
                let account = self.account.clone();
                blocking(move || match keyring_entry(&account)?.get_password() {
                    Ok(s) => Ok(DeviceToken(s)),
                    Err(keyring::Error::NoEntry) => Err(CredentialError::Missing),
                    Err(e) => Err(keyring_error(e)),
                })
                .await
            }
        }
    }

    pub async fn delete(&self) -> Result<(), CredentialError> {
        match self.kind {
            CredentialStoreKind::File => match std::fs::remove_file(self.data_dir.join(TOKEN_FILE))
            {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CredentialError::File {
                    path: self.data_dir.join(TOKEN_FILE),
                    source: e,
                }),
                _ => Ok(()),
            },
            CredentialStoreKind::Keyring => {
                let account = self.account.clone();
                blocking(move || match keyring_entry(&account)?.delete_credential() {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(keyring_error(e)),
                })
                .await
            }
        }
    }
}

/// The keyring crate's platform calls block (D-Bus round trips, Keychain prompts): keep
/// them off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CredentialError> + Send + 'static,
) -> Result<T, CredentialError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(CredentialError::Keyring(format!(
            "keyring call aborted: {e}"
        )))
    })
}

fn keyring_entry(account: &str) -> Result<keyring::Entry, CredentialError> {
    keyring::Entry::new(KEYRING_SERVICE, account).map_err(keyring_error)
}

fn keyring_error(e: keyring::Error) -> CredentialError {
    match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            CredentialError::NoKeyring {
                detail: inner.to_string(),
            }
        }
        other => CredentialError::Keyring(other.to_string()),
    }
}

fn write_token_file(path: &Path, token: &DeviceToken) -> Result<(), CredentialError> {
    use std::io::Write;
    let err = |source| CredentialError::File {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(token.expose().as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_prints() {
        let t = DeviceToken::new("s3cr3t-token".into());
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn file_store_round_trips_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credentials::new(CredentialStoreKind::File, dir.path());
        assert!(matches!(c.load().await, Err(CredentialError::Missing)));
        c.store(&DeviceToken::new("abc".into())).await.unwrap();
        assert_eq!(c.load().await.unwrap().expose(), "abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        c.delete().await.unwrap();
        assert!(matches!(c.load().await, Err(CredentialError::Missing)));
    }
}
