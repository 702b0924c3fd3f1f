//! Credentials at rest: the identity-source and webhook secrets IT enters in the console are
//! stored encrypted with the server's secrets key, a file of 32 random bytes kept outside
//! the database.
//!
//! Each secret field is sealed on its own with XChaCha20-Poly1305 under a random 192-bit
//! nonce, and the associated data names the row and the field (`identity_source/<name>/
//! api_token`, `webhook/<id>/url`), so a ciphertext copied into another row or field does
//! not open. A sealed value reads `enc:v1:<key id>:<base64 of nonce ‖ ciphertext>`; the key
//! id (the first 8 bytes of a SHA-256 of the key, in hex) tells "this server has another
//! key" apart from "this value was moved or altered", and reveals nothing of the key.
//! Values without the prefix are plaintext written by an older server; they are read as
//! they are and sealed in place on start ([`seal_existing`]).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::store::integrations::{StoredSourceConfig, StoredWebhook, SECRET_FIELDS};
use crate::store::{Store, StoreError};

/// The key file's name next to a SQLite database (or in the data dir).
pub const KEY_FILE: &str = "secrets.key";
/// What every sealed value starts with; the version names the cipher and the layout.
pub const PREFIX: &str = "enc:v1:";
/// A webhook's fields that are credentials: the signing secret, and the URL, whose path is
/// often a credential itself (Slack, Teams).
pub const WEBHOOK_SECRET_FIELDS: &[&str] = &["secret", "url"];

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read the secrets key file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not create the secrets key file {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secrets key file {} holds neither 32 bytes nor their base64", path.display())]
    BadKeyFile { path: PathBuf },
    /// The value was sealed with another key: a replica started with another key file, or
    /// the key file was replaced.
    #[error("cannot decrypt credentials: secrets key does not match")]
    WrongKey,
    /// The key is right but the value does not open: it was moved from another row or
    /// field, or altered.
    #[error("cannot decrypt credentials: the stored {field} does not belong to this record")]
    Tampered { field: String },
    #[error("cannot decrypt credentials: the stored {field} is not a sealed value")]
    Malformed { field: String },
    #[error("could not encrypt a credential")]
    Seal,
}

/// The server's secrets key. Its `Debug` shows only the key id.
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey").field("id", &self.id).finish()
    }
}

/// Which record a value belongs to: the associated data every seal binds it to.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    Source(&'a str),
    Webhook(Uuid),
}

impl Row<'_> {
    fn associated_data(&self, field: &str) -> Vec<u8> {
        match self {
            Row::Source(name) => format!("tandem/identity_source/{name}/{field}"),
            Row::Webhook(id) => format!("tandem/webhook/{id}/{field}"),
        }
        .into_bytes()
    }

    fn fields(&self) -> &'static [&'static str] {
        match self {
            Row::Source(_) => SECRET_FIELDS,
            Row::Webhook(_) => WEBHOOK_SECRET_FIELDS,
        }
    }
}

impl SecretsKey {
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> SecretsKey {
        let digest = Sha256::new_with_prefix(b"tandem secrets key id\0")
            .chain_update(bytes)
            .finalize();
        SecretsKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id: hex::encode(&digest[..8]),
        }
    }

    /// A fresh random key (tests, and the first start).
    pub fn generate() -> SecretsKey {
        SecretsKey::from_bytes(&random_key())
    }

    /// Names the key without revealing it; stored in every sealed value.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the key file at `path`, creating it (mode 0600, 32 random bytes in base64)
    /// when missing. Two servers starting at once on a fresh install agree: the file is
    /// created exclusively, and the one that loses the race reads the winner's.
    pub fn load_or_create(path: &Path) -> Result<(SecretsKey, bool), SecretsError> {
        match std::fs::read(path) {
            Ok(bytes) => return Ok((parse_key_file(path, &bytes)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SecretsError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let key = random_key();
        match create_private(path, format!("{}\n", STANDARD.encode(key)).as_bytes()) {
            Ok(()) => Ok((SecretsKey::from_bytes(&key), true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes = std::fs::read(path).map_err(|source| SecretsError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Ok((parse_key_file(path, &bytes)?, false))
            }
            Err(source) => Err(SecretsError::Create {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Seals one value for `row`'s `field`.
    pub fn seal(&self, row: Row<'_>, field: &str, plaintext: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = row.associated_data(field);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Seal)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", self.id, STANDARD.encode(blob)))
    }

    /// Opens one value of `row`'s `field`; a value without the prefix is plaintext from an
    /// older server and comes back as it is.
    pub fn open(&self, row: Row<'_>, field: &str, stored: &str) -> Result<String, SecretsError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let malformed = || SecretsError::Malformed {
            field: field.to_owned(),
        };
        let (id, body) = rest.split_once(':').ok_or_else(malformed)?;
        if id != self.id {
            return Err(SecretsError::WrongKey);
        }
        let blob = STANDARD.decode(body).map_err(|_| malformed())?;
        if blob.len() < NONCE_LEN {
            return Err(malformed());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let aad = row.associated_data(field);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Tampered {
                field: field.to_owned(),
            })?;
        String::from_utf8(plain).map_err(|_| malformed())
    }

    /// `config` with every secret field of `row` sealed; sealed ones stay as they are.
    pub fn seal_config(&self, row: Row<'_>, config: &Value) -> Result<Value, SecretsError> {
        let mut out = config.clone();
        if let Value::Object(map) = &mut out {
            for field in row.fields() {
                if let Some(Value::String(s)) = map.get_mut(*field) {
                    if !s.starts_with(PREFIX) {
                        *s = self.seal(row, field, s)?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// `config` with every secret field of `row` opened.
    pub fn open_config(&self, row: Row<'_>, config: &Value) -> Result<Value, SecretsError> {
        let mut out = config.clone();
        if let Value::Object(map) = &mut out {
            for field in row.fields() {
                if let Some(Value::String(s)) = map.get_mut(*field) {
                    *s = self.open(row, field, s)?;
                }
            }
        }
        Ok(out)
    }

    /// A stored source as the database should hold it.
    pub fn seal_source(
        &self,
        source: StoredSourceConfig,
    ) -> Result<StoredSourceConfig, SecretsError> {
        let config = self.seal_config(Row::Source(&source.name), &source.config)?;
        Ok(StoredSourceConfig { config, ..source })
    }

    /// A stored source with its secrets in the clear, for polling and for forms.
    pub fn open_source(
        &self,
        source: &StoredSourceConfig,
    ) -> Result<StoredSourceConfig, SecretsError> {
        let config = self.open_config(Row::Source(&source.name), &source.config)?;
        Ok(StoredSourceConfig {
            config,
            ..source.clone()
        })
    }

    pub fn seal_webhook(&self, hook: StoredWebhook) -> Result<StoredWebhook, SecretsError> {
        let config = self.seal_config(Row::Webhook(hook.id), &hook.config)?;
        Ok(StoredWebhook { config, ..hook })
    }

    pub fn open_webhook(&self, hook: &StoredWebhook) -> Result<StoredWebhook, SecretsError> {
        let config = self.open_config(Row::Webhook(hook.id), &hook.config)?;
        Ok(StoredWebhook {
            config,
            ..hook.clone()
        })
    }
}

/// Whether any secret field of `row` in `config` is still plaintext.
pub fn has_plaintext(row: Row<'_>, config: &Value) -> bool {
    row.fields().iter().any(|field| {
        config
            .get(*field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.starts_with(PREFIX))
    })
}

/// Whether `config` holds a value sealed with another key than `key`.
fn other_key(key: &SecretsKey, row: Row<'_>, config: &Value) -> bool {
    matches!(key.open_config(row, config), Err(SecretsError::WrongKey))
}

/// What [`seal_existing`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SealReport {
    /// Records whose plaintext secrets were sealed now.
    pub sealed: usize,
    /// Records sealed with another key than this server's.
    pub unreadable: usize,
}

/// Seals in place the plaintext secrets an older server stored. Each record is replaced
/// only if it is still exactly what was read (another replica or an admin may change it
/// meanwhile), so running it twice, or on several replicas at once, or after a crash half
/// way, loses nothing. When any stored value was sealed with another key, this server's
/// key is not the fleet's: nothing is sealed, so that the records stay readable by the
/// servers that hold the right key.
pub async fn seal_existing(store: &dyn Store, key: &SecretsKey) -> Result<SealReport, StoreError> {
    let sources = store.list_source_configs().await?;
    let hooks = store.list_webhook_configs().await?;
    let mut report = SealReport {
        sealed: 0,
        unreadable: sources
            .iter()
            .filter(|s| other_key(key, Row::Source(&s.name), &s.config))
            .count()
            + hooks
                .iter()
                .filter(|h| other_key(key, Row::Webhook(h.id), &h.config))
                .count(),
    };
    if report.unreadable > 0 {
        tracing::error!(
            records = report.unreadable,
            key_id = key.id(),
            "stored credentials do not open with this server's secrets key: every replica \
             must use the same key file; leaving plaintext credentials unsealed"
        );
        return Ok(report);
    }
    let seal_failed = |e: SecretsError| StoreError::Corrupt(e.to_string());
    for source in sources {
        let row = Row::Source(&source.name);
        if !has_plaintext(row, &source.config) {
            continue;
        }
        let sealed = key.seal_config(row, &source.config).map_err(seal_failed)?;
        if store
            .reseal_source_config(&source.name, &source.config, &sealed)
            .await?
        {
            report.sealed += 1;
        }
    }
    for hook in hooks {
        let row = Row::Webhook(hook.id);
        if !has_plaintext(row, &hook.config) {
            continue;
        }
        let sealed = key.seal_config(row, &hook.config).map_err(seal_failed)?;
        if store
            .reseal_webhook_config(hook.id, &hook.config, &sealed)
            .await?
        {
            report.sealed += 1;
        }
    }
    if report.sealed > 0 {
        tracing::info!(
            records = report.sealed,
            "sealed plaintext credentials with the secrets key"
        );
    }
    Ok(report)
}

/// Where the key file is when none is configured: next to a SQLite database file; for
/// PostgreSQL (or an in-memory SQLite), in the data dir (`$XDG_DATA_HOME/tandem-server`,
/// else the working directory). The flag is `true` in the second case, where every replica
/// must be given the same file.
pub fn default_key_path(database_url: &str) -> (PathBuf, bool) {
    let sqlite_file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|path| !path.is_empty() && !path.contains(":memory:"));
    if let Some(path) = sqlite_file {
        let dir = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return (dir.join(KEY_FILE), false);
    }
    let dir = crate::config::default_data_dir().unwrap_or_else(|| PathBuf::from("."));
    (dir.join(KEY_FILE), true)
}

/// The key `configured` names, else the one at [`default_key_path`], created when missing.
pub fn load_for(configured: Option<&Path>, database_url: &str) -> Result<SecretsKey, SecretsError> {
    let (path, shared) = match configured {
        Some(p) => (p.to_owned(), false),
        None => default_key_path(database_url),
    };
    if shared {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SecretsError::Create {
                path: path.clone(),
                source,
            })?;
        }
    }
    let (key, created) = SecretsKey::load_or_create(&path)?;
    if shared {
        tracing::warn!(
            path = %path.display(),
            key_id = key.id(),
            "the secrets key is a file of this machine: every replica on this database must \
             use the same key file (--secrets-key-file); copy it to each and keep a backup"
        );
    } else if created {
        tracing::info!(path = %path.display(), key_id = key.id(), "created the secrets key");
    }
    Ok(key)
}

/// Why a rotation stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{record}: {source}")]
    Record {
        record: String,
        #[source]
        source: SecretsError,
    },
}

/// Seals every stored credential again, from `old` to `new`. A record that opens with
/// `new` already is skipped, so a rotation cut short is finished by running it again; one
/// that opens with neither stops the rotation, with its name. Returns how many records
/// were sealed again. Each is replaced only if unchanged meanwhile.
pub async fn rotate(
    store: &dyn Store,
    old: &SecretsKey,
    new: &SecretsKey,
) -> Result<usize, RotateError> {
    let mut rotated = 0;
    let again =
        |row: Row<'_>, record: String, config: &Value| -> Result<Option<Value>, RotateError> {
            if !has_plaintext(row, config)
                && new.open_config(row, config).is_ok()
                && old.id() != new.id()
            {
                return Ok(None);
            }
            let plain = old
                .open_config(row, config)
                .map_err(|source| RotateError::Record {
                    record: record.clone(),
                    source,
                })?;
            new.seal_config(row, &plain)
                .map(Some)
                .map_err(|source| RotateError::Record { record, source })
        };
    for s in store.list_source_configs().await? {
        let row = Row::Source(&s.name);
        if let Some(sealed) = again(row, format!("identity source {}", s.name), &s.config)? {
            rotated += usize::from(
                store
                    .reseal_source_config(&s.name, &s.config, &sealed)
                    .await?,
            );
        }
    }
    for h in store.list_webhook_configs().await? {
        let row = Row::Webhook(h.id);
        if let Some(sealed) = again(row, format!("webhook {}", h.name), &h.config)? {
            rotated += usize::from(
                store
                    .reseal_webhook_config(h.id, &h.config, &sealed)
                    .await?,
            );
        }
    }
    Ok(rotated)
}

fn random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// 32 raw bytes, or their base64 (what this server writes, and what `openssl rand -base64
/// 32` prints) with surrounding white space.
fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<SecretsKey, SecretsError> {
    let bad = || SecretsError::BadKeyFile {
        path: path.to_owned(),
    };
    if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes) {
        return Ok(SecretsKey::from_bytes(&raw));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad())?.trim();
    let decoded = STANDARD.decode(text).map_err(|_| bad())?;
    let raw = <[u8; KEY_LEN]>::try_from(decoded.as_slice()).map_err(|_| bad())?;
    Ok(SecretsKey::from_bytes(&raw))
}

/// Creates `path` with `contents`, readable by its owner only where the OS has modes, and
/// fails with `AlreadyExists` when it exists. The contents are written to a private
/// temporary file first and linked into place, so a server starting at the same moment
/// never reads a half-written key.
fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", hex::encode(suffix)));
    let tmp = PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    // A hard link does not replace an existing file: of two servers, one wins.
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    // The temporary name goes either way; the key lives on under `path`.
    let _ = std::fs::remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_stay_bound_to_their_row_and_field() {
        let key = SecretsKey::generate();
        let sealed = key
            .seal(Row::Source("okta"), "api_token", "hunter2")
            .unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            key.open(Row::Source("okta"), "api_token", &sealed).unwrap(),
            "hunter2"
        );
        // Two seals of one value differ: the nonce is random.
        assert_ne!(
            sealed,
            key.seal(Row::Source("okta"), "api_token", "hunter2")
                .unwrap()
        );
        assert!(matches!(
            key.open(Row::Source("okta2"), "api_token", &sealed),
            Err(SecretsError::Tampered { .. })
        ));
        assert!(matches!(
            key.open(Row::Source("okta"), "client_secret", &sealed),
            Err(SecretsError::Tampered { .. })
        ));
        assert!(matches!(
            key.open(Row::Webhook(Uuid::nil()), "api_token", &sealed),
            Err(SecretsError::Tampered { .. })
        ));
        assert!(matches!(
            SecretsKey::generate().open(Row::Source("okta"), "api_token", &sealed),
            Err(SecretsError::WrongKey)
        ));
        assert!(matches!(
            key.open(Row::Source("okta"), "api_token", "enc:v1:zz"),
            Err(SecretsError::Malformed { .. })
        ));
        // Plaintext from an older server reads as it is.
        assert_eq!(
            key.open(Row::Source("okta"), "api_token", "old").unwrap(),
            "old"
        );
    }

    #[test]
    fn configs_seal_only_their_secret_fields() {
        let key = SecretsKey::generate();
        let config = serde_json::json!({"name": "o", "base_url": "https://a", "api_token": "t"});
        let sealed = key.seal_config(Row::Source("o"), &config).unwrap();
        assert_eq!(sealed["base_url"], "https://a");
        assert!(sealed["api_token"].as_str().unwrap().starts_with(PREFIX));
        assert!(!has_plaintext(Row::Source("o"), &sealed));
        // Sealing again changes nothing.
        assert_eq!(key.seal_config(Row::Source("o"), &sealed).unwrap(), sealed);
        assert_eq!(key.open_config(Row::Source("o"), &sealed).unwrap(), config);
        let hook = serde_json::json!({"url": "https://h/x", "secret": "s", "format": "generic"});
        let id = Uuid::now_v7();
        let sealed = key.seal_config(Row::Webhook(id), &hook).unwrap();
        assert!(!sealed.to_string().contains("https://h/x"));
        assert_eq!(sealed["format"], "generic");
        assert_eq!(key.open_config(Row::Webhook(id), &sealed).unwrap(), hook);
    }

    #[test]
    fn servers_starting_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| SecretsKey::load_or_create(&path).unwrap().0.id().to_owned()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let (first, created) = SecretsKey::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = SecretsKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, [7u8; 32]).unwrap();
        let raw = SecretsKey::load_or_create(&path).unwrap().0;
        assert_eq!(raw.id(), SecretsKey::from_bytes(&[7u8; 32]).id());
        std::fs::write(&path, "too short").unwrap();
        assert!(matches!(
            SecretsKey::load_or_create(&path),
            Err(SecretsError::BadKeyFile { .. })
        ));
    }
}
