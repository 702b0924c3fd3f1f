//! Silent enrolment: IT drops the server URL and an enrolment secret where the agent looks
//! at start (`/etc/tandem/enroll.json` on Linux), and the first start enrols without asking
//! anyone. Also the pinned server CA, which enrolment records.
//!
//! # Platform behaviour
//! - Linux: the JSON file `/etc/tandem/enroll.json`.
//! - macOS: managed preferences for `dev.tandem.agent`, key `Enrollment` (a dictionary with
//!   the same keys), else `/Library/Application Support/Tandem/enroll.json`.
//! - Windows: `HKLM\SOFTWARE\Policies\Tandem`, string values `EnrollServerUrl`,
//!   `EnrollSecret`, `EnrollGroup`, `EnrollCaFile` (what the MSI's `SERVER_URL` and
//!   `ENROLL_SECRET` properties and the ADMX template write), else
//!   `%ProgramData%\Tandem\enroll.json`.
//!
//! `TANDEM_ENROLL_FILE` names another JSON file, read instead on every platform.
//!
//! The secret never reaches a log or an error message: the document is checked key by key
//! rather than through serde's messages, which quote offending values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_proto::state::Enrollment;

use crate::sync;
use crate::{Agent, AgentError};

/// The store key holding the PEM of the CA pinned for the enrolled server, if any.
const KEY_SERVER_CA: &str = "server_ca_pem";

/// The longest a pinned CA file may be; a real bundle is a few kilobytes.
const MAX_CA_BYTES: u64 = 256 * 1024;

/// Between attempts when the server cannot be reached yet (say, before the network is up
/// at boot): doubling from 5 s up to 10 minutes.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read the enrolment file {source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("the enrolment file {source_name} is not valid: {message}")]
    Malformed {
        source_name: String,
        message: String,
    },
    #[error("cannot use the CA file {path}: {message}")]
    Ca { path: String, message: String },
    #[error("silent enrolment from {source_name} failed: {error}")]
    Enroll {
        source_name: String,
        error: AgentError,
    },
}

impl BootstrapError {
    /// Failures after which a later attempt can succeed (the server is not reachable yet).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BootstrapError::Enroll {
                error: AgentError::Sync(e),
                ..
            } if e.is_transient()
        )
    }
}

/// What IT deployed for silent enrolment.
#[derive(Clone, PartialEq)]
pub struct EnrollFile {
    /// Where it was read from, for messages.
    pub source_name: String,
    pub server_url: String,
    pub enroll_secret: String,
    /// The group IT expects; the secret decides the group on the server, so this is only
    /// reported (and documented as such).
    pub group: Option<String>,
    /// A CA certificate (PEM) to trust instead of the public roots for this server.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for EnrollFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollFile")
            .field("source_name", &self.source_name)
            .field("server_url", &self.server_url)
            .field("enroll_secret", &"<redacted>")
            .field("group", &self.group)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What a bootstrap did.
#[derive(Debug, Clone, PartialEq)]
pub enum Bootstrap {
    /// Nothing deployed: the user or IT enrols by hand.
    NoFile,
    /// Already enrolled (with this or another server): the file is not used again, so a
    /// restart never burns a secret use or replaces the device's identity.
    AlreadyEnrolled {
        server_url: String,
    },
    Enrolled(Enrollment),
}

/// Parses an enrolment document: a JSON object with `server_url` and `enroll_secret`
/// (strings) and optional `group` and `ca_file`. Unknown keys are refused so a typo does not
/// silently do nothing.
pub fn parse(source_name: &str, value: &serde_json::Value) -> Result<EnrollFile, BootstrapError> {
    let malformed = |message: String| BootstrapError::Malformed {
        source_name: source_name.to_owned(),
        message,
    };
    let serde_json::Value::Object(map) = value else {
        return Err(malformed("the document must be a JSON object".into()));
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "server_url" | "enroll_secret" | "group" | "ca_file"
        ) {
            return Err(malformed(format!(
                "unknown key `{}` (expected server_url, enroll_secret, group, ca_file)",
                key.escape_debug()
            )));
        }
    }
    // Values are never quoted back: one of them is the secret.
    let string = |key: &str, required: bool| -> Result<Option<String>, BootstrapError> {
        match map.get(key) {
            None | Some(serde_json::Value::Null) if !required => Ok(None),
            None | Some(serde_json::Value::Null) => Err(malformed(format!("`{key}` is missing"))),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
                Err(malformed(format!("`{key}` is empty")))
            }
            Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(malformed(format!("`{key}` must be a string"))),
        }
    };
    let server_url = string("server_url", true)?.unwrap_or_default();
    let enroll_secret = string("enroll_secret", true)?.unwrap_or_default();
    let group = string("group", false)?;
    let ca_file = string("ca_file", false)?.map(PathBuf::from);
    // The URL is checked here so a typo is reported as the file's fault, not the network's.
    sync::parse_server_url(&server_url).map_err(|e| malformed(format!("`server_url`: {e}")))?;
    Ok(EnrollFile {
        source_name: source_name.to_owned(),
        server_url,
        enroll_secret,
        group,
        ca_file,
    })
}

/// Parses the text of an enrolment JSON file. A syntax error is reported by position only.
pub fn parse_json(source_name: &str, text: &str) -> Result<EnrollFile, BootstrapError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| BootstrapError::Malformed {
            source_name: source_name.to_owned(),
            message: format!(
                "not JSON (line {}, column {}; {:?} error)",
                e.line(),
                e.column(),
                e.classify()
            ),
        })?;
    parse(source_name, &value)
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, BootstrapError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BootstrapError::Read {
            source_name: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn load_json_file(path: &Path) -> Result<Option<EnrollFile>, BootstrapError> {
    let name = path.display().to_string();
    read_file(path)?
        .map(|bytes| parse_json(&name, &String::from_utf8_lossy(&bytes)))
        .transpose()
}

/// The deployed enrolment: `configured` when given, else the platform's location.
/// `Ok(None)` when nothing is deployed.
pub fn load(configured: Option<&Path>) -> Result<Option<EnrollFile>, BootstrapError> {
    match configured {
        Some(path) => load_json_file(path),
        None => platform::load(),
    }
}

/// `TANDEM_ENROLL_FILE` when set and not empty.
pub fn configured_path() -> Option<PathBuf> {
    std::env::var_os("TANDEM_ENROLL_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads and checks a CA certificate file (PEM, one or more certificates).
pub fn read_ca_file(path: &Path) -> Result<String, BootstrapError> {
    let bad = |message: String| BootstrapError::Ca {
        path: path.display().to_string(),
        message,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if len > MAX_CA_BYTES {
        return Err(bad(format!("larger than {MAX_CA_BYTES} bytes")));
    }
    let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    sync::check_ca_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok(pem)
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    pub const PATH: &str = "/etc/tandem/enroll.json";

    pub fn load() -> Result<Option<EnrollFile>, BootstrapError> {
        load_json_file(Path::new(PATH))
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::*;

    pub const MANAGED: &str = "/Library/Managed Preferences/dev.tandem.agent.plist";
    pub const PATH: &str = "/Library/Application Support/Tandem/enroll.json";

    pub fn load() -> Result<Option<EnrollFile>, BootstrapError> {
        if let Some(bytes) = read_file(Path::new(MANAGED))? {
            let malformed = |message: String| BootstrapError::Malformed {
                source_name: MANAGED.to_owned(),
                message,
            };
            let root: plist::Value =
                plist::from_bytes(&bytes).map_err(|_| malformed("not a property list".into()))?;
            if let Some(dict) = root.as_dictionary().and_then(|d| d.get("Enrollment")) {
                let value = serde_json::to_value(dict)
                    .map_err(|_| malformed("`Enrollment` cannot be read".into()))?;
                return parse(&format!("{MANAGED} (Enrollment)"), &value).map(Some);
            }
        }
        load_json_file(Path::new(PATH))
    }
}

#[cfg(windows)]
mod platform {
    use super::*;

    const KEY: &str = r"SOFTWARE\Policies\Tandem";
    /// Registry value name → enrolment document key.
    const VALUES: [(&str, &str); 4] = [
        ("EnrollServerUrl", "server_url"),
        ("EnrollSecret", "enroll_secret"),
        ("EnrollGroup", "group"),
        ("EnrollCaFile", "ca_file"),
    ];

    pub fn load() -> Result<Option<EnrollFile>, BootstrapError> {
        let name = format!(r"HKLM\{KEY}");
        let read_err = |e: std::io::Error| BootstrapError::Read {
            source_name: name.clone(),
            message: e.to_string(),
        };
        let hklm = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE);
        match hklm.open_subkey(KEY) {
            Ok(key) => {
                let mut map = serde_json::Map::new();
                for (value_name, doc_key) in VALUES {
                    match key.get_value::<String, _>(value_name) {
                        Ok(v) if !v.is_empty() => {
                            map.insert(doc_key.to_owned(), serde_json::Value::String(v));
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(read_err(e)),
                    }
                }
                if !map.is_empty() {
                    return parse(&name, &serde_json::Value::Object(map)).map(Some);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_err(e)),
        }
        let Some(program_data) = std::env::var_os("ProgramData") else {
            return Ok(None);
        };
        load_json_file(&PathBuf::from(program_data).join(r"Tandem\enroll.json"))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod platform {
    use super::*;

    pub fn load() -> Result<Option<EnrollFile>, BootstrapError> {
        Ok(None)
    }
}

impl Agent {
    /// A client for `server_url` that trusts the pinned CA when one is recorded.
    pub(crate) async fn client_for(&self, server_url: &str) -> Result<sync::Client, AgentError> {
        let ca: Option<String> = self.inner.store.get(KEY_SERVER_CA).await?;
        Ok(sync::Client::with_ca(server_url, ca.as_deref())?)
    }

    /// Pins the CA the server's certificate must chain to (PEM), or goes back to the
    /// public roots with `None`. Takes effect for the next request, enrolment included.
    pub async fn pin_ca(&self, pem: Option<&str>) -> Result<(), AgentError> {
        match pem {
            Some(pem) => {
                sync::check_ca_pem(pem)?;
                self.inner.store.put(KEY_SERVER_CA, &pem.to_owned()).await?;
            }
            None => self.inner.store.delete(KEY_SERVER_CA).await?,
        }
        Ok(())
    }

    /// Enrols from a deployed enrolment document unless this device is already enrolled.
    /// Safe to call on every start.
    pub async fn enroll_from(&self, file: &EnrollFile) -> Result<Bootstrap, BootstrapError> {
        let enroll_err = |error: AgentError| BootstrapError::Enroll {
            source_name: file.source_name.clone(),
            error,
        };
        if let Some(record) = self.enrollment().await.map_err(enroll_err)? {
            return Ok(Bootstrap::AlreadyEnrolled {
                server_url: record.server_url,
            });
        }
        let ca = file.ca_file.as_deref().map(read_ca_file).transpose()?;
        self.pin_ca(ca.as_deref()).await.map_err(enroll_err)?;
        let enrollment = self
            .enroll(&file.server_url, &file.enroll_secret)
            .await
            .map_err(enroll_err)?;
        Ok(Bootstrap::Enrolled(enrollment))
    }

    /// Loads the deployed enrolment (`TANDEM_ENROLL_FILE`, else the platform's location) and
    /// enrols once with it.
    pub async fn enroll_from_deployed(&self) -> Result<Bootstrap, BootstrapError> {
        // Cheap first: an enrolled device does not even read the file.
        if let Ok(Some(record)) = self.enrollment().await {
            return Ok(Bootstrap::AlreadyEnrolled {
                server_url: record.server_url,
            });
        }
        let configured = configured_path();
        match load(configured.as_deref())? {
            Some(file) => self.enroll_from(&file).await,
            None => Ok(Bootstrap::NoFile),
        }
    }

    /// What the faces call at start: silent enrolment from the deployed file, retried with
    /// backoff while the server cannot be reached, logged (never the secret) and never
    /// fatal. After enrolling it asks for a check run, so IT sees the device at once.
    pub async fn bootstrap(&self) {
        let mut wait = RETRY_FIRST;
        loop {
            match self.enroll_from_deployed().await {
                Ok(Bootstrap::NoFile) => return,
                Ok(Bootstrap::AlreadyEnrolled { .. }) => {
                    tracing::debug!("already enrolled; the enrolment file is not used");
                    return;
                }
                Ok(Bootstrap::Enrolled(e)) => {
                    tracing::info!(server = %e.server_url, device_id = %e.device_id, "enrolled silently from the deployed enrolment file");
                    self.request_check();
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?wait, "silent enrolment will be retried");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
                Err(e) => {
                    tracing::error!(error = %e, "silent enrolment failed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Very-Private";

    fn must_fail(text: &str) -> String {
        let err = parse_json("enroll.json", text).unwrap_err();
        let shown = format!("{err}");
        assert!(!shown.contains(SECRET), "the secret leaked: {shown}");
        shown
    }

    #[test]
    fn a_complete_document_parses() {
        let f = parse_json(
            "enroll.json",
            &format!(
                r#"{{"server_url": "https://tandem.example.com", "enroll_secret": "{SECRET}", "group": "laptops", "ca_file": "/etc/tandem/ca.pem"}}"#
            ),
        )
        .unwrap();
        assert_eq!(f.server_url, "https://tandem.example.com");
        assert_eq!(f.enroll_secret, SECRET);
        assert_eq!(f.group.as_deref(), Some("laptops"));
        assert_eq!(f.ca_file, Some(PathBuf::from("/etc/tandem/ca.pem")));
        assert!(!format!("{f:?}").contains(SECRET));
    }

    #[test]
    fn malformed_documents_say_what_is_wrong_without_the_secret() {
        assert!(must_fail(&format!(r#"{{"enroll_secret": "{SECRET}"}}"#))
            .contains("`server_url` is missing"));
        assert!(must_fail(&format!(
            r#"{{"server_url": "https://x.example", "enroll_secret": "{SECRET}", "sever": 1}}"#
        ))
        .contains("unknown key `sever`"));
        assert!(
            must_fail(r#"{"server_url": "https://x.example", "enroll_secret": 42}"#)
                .contains("`enroll_secret` must be a string")
        );
        assert!(must_fail(&format!(
            r#"{{"server_url": "http://10.0.0.1", "enroll_secret": "{SECRET}"}}"#
        ))
        .contains("plain http"));
        assert!(must_fail(&format!(
            r#"{{"server_url": "https://x", "enroll_secret": "{SECRET}""#
        ))
        .contains("not JSON (line 1"));
        assert!(must_fail("[]").contains("JSON object"));
        assert!(
            must_fail(r#"{"server_url": "https://x.example", "enroll_secret": "  "}"#)
                .contains("`enroll_secret` is empty")
        );
    }

    #[test]
    fn a_missing_configured_file_is_no_enrolment() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(Some(&dir.path().join("absent.json")))
            .unwrap()
            .is_none());
    }
}
