//! Self-update of the headless `tandem` binary from the enrolled server (issue 8).
//!
//! The server only distributes releases; it is not trusted to vouch for them. Every
//! artifact is verified against the updater public key pinned on this machine (minisign,
//! as the Tauri updater does for the desktop app) and only then installed, by writing a
//! temporary file beside the binary, syncing it and renaming it over the old one, so the
//! binary is at every instant either the old one or the new one, whole. A failed download,
//! a bad signature or a failed write leaves the old binary in place and is recorded as an
//! `update_refused` event, which reaches IT with the next report.
//!
//! # Which key
//! The key is never taken from the server: a server that could name the key could install
//! anything. It is pinned by whoever controls the binary: built in at compile time from
//! `TANDEM_UPDATER_PUBKEY` (the same value as the desktop app's `plugins.updater.pubkey`),
//! or given to `tandem update --pubkey` by an administrator (who, being able to write the
//! install path, gains nothing by choosing it).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use tandem_proto::v1::{EventKind, UpdateInfo};

use tokio_util::sync::CancellationToken;

use crate::{Agent, AgentError, AGENT_VERSION};

/// The updater key compiled into this build, if the build was given one.
pub const BUILT_IN_PUBLIC_KEY: Option<&str> = option_env!("TANDEM_UPDATER_PUBKEY");

/// The largest artifact downloaded; the bare binary is tens of megabytes.
pub const MAX_ARTIFACT: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("no updater public key: this build has none built in; pass --pubkey")]
    NoPublicKey,
    #[error("this platform has no update target")]
    UnsupportedPlatform,
    #[error("update {version} refused: the download failed: {reason}")]
    Download { version: String, reason: String },
    #[error("update {version} refused: {reason}")]
    BadSignature { version: String, reason: String },
    #[error("update {version} could not be installed at {path}: {reason}")]
    Install {
        version: String,
        path: PathBuf,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The server has nothing newer.
    UpToDate,
    /// The new version was verified and installed.
    Applied { version: String },
}

/// The update target of the headless binary on this machine: `cli-` and the Tauri
/// updater's `OS-ARCH` (the desktop app's bundles use the bare `OS-ARCH`).
pub fn current_target() -> Option<String> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "windows" => "windows",
        "macos" => "darwin",
        _ => return None,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "x86" => "i686",
        "arm" => "armv7",
        _ => return None,
    };
    Some(format!("cli-{os}-{arch}"))
}

fn decode_text(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Verifies a Tauri-style signature (base64 of a minisign `.sig`) over `artifact` with a
/// Tauri-style public key (base64 of a minisign `.pub`).
pub fn verify(public_key: &str, artifact: &[u8], signature: &str) -> Result<(), String> {
    let key = decode_text(public_key)
        .and_then(|t| minisign_verify::PublicKey::decode(&t).ok())
        .ok_or("the pinned updater public key is not a minisign key")?;
    let sig = decode_text(signature)
        .and_then(|t| minisign_verify::Signature::decode(&t).ok())
        .ok_or("the signature is not a minisign signature")?;
    key.verify(artifact, &sig, true)
        .map_err(|_| "the signature does not verify with the pinned updater key".to_owned())
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same directory (same
/// file system, so the rename is atomic), the old file's permissions, data synced before
/// the rename and the directory synced after it. On any error the old file is untouched
/// and the temporary file removed.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the install path names no file"))?;
    let old = std::fs::metadata(path)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".update-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(old.permissions())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// How the running headless agent (`tandem run`) keeps itself up to date: it asks the
/// server shortly after start and then every `every`, and installs what verifies.
#[derive(Debug, Clone)]
pub struct AutoUpdate {
    /// The binary to replace: the running one, for a normal install.
    pub install_path: PathBuf,
    /// The pinned updater key (see the module's "Which key").
    pub public_key: String,
    /// The first check, after start: long enough for enrolment and the first report.
    pub first_after: Duration,
    pub every: Duration,
}

impl AutoUpdate {
    /// A day between checks: releases are rare, and the check is one small request.
    pub const DEFAULT_EVERY: Duration = Duration::from_secs(24 * 3600);
    pub const DEFAULT_FIRST_AFTER: Duration = Duration::from_secs(60);
}

/// Whether this process may replace `path`: the binary's directory takes a new file. A
/// package-managed install under a read-only `/usr` (the packaged unit runs with
/// `ProtectSystem=strict`) does not, and is updated by its package manager instead.
pub fn can_replace(path: &Path) -> bool {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return false;
    };
    if !path.is_file() {
        return false;
    }
    let probe = dir.join(format!(".tandem-update-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// What the desktop app's Tauri updater needs to ask this device's server.
#[derive(Clone)]
pub struct DesktopUpdater {
    /// The updater endpoint with Tauri's `{{target}}` and `{{current_version}}` placeholders.
    pub endpoint: String,
    /// The `Authorization` header value: the device token, which the endpoint requires.
    pub authorization: String,
}

impl std::fmt::Debug for DesktopUpdater {
    // The header carries the device token, which never reaches a log (invariant 7).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesktopUpdater")
            .field("endpoint", &self.endpoint)
            .field("authorization", &"<redacted>")
            .finish()
    }
}

impl Agent {
    /// The enrolled server's updater endpoint and the header that opens it, for the desktop
    /// app's Tauri updater (which does its own download and signature check).
    pub async fn desktop_updater(&self) -> Result<DesktopUpdater, UpdateError> {
        let record = self.enrollment().await?.ok_or(AgentError::NotEnrolled)?;
        let token = self
            .credentials(Some(&record))
            .load()
            .await
            .map_err(AgentError::from)?;
        Ok(DesktopUpdater {
            endpoint: format!(
                "{}{}?target={{{{target}}}}&current_version={{{{current_version}}}}",
                record.server_url.trim_end_matches('/'),
                tandem_proto::v1::PATH_UPDATE
            ),
            authorization: format!("Bearer {}", token.expose()),
        })
    }

    /// Records an update the desktop app installed or refused, and tells the server at
    /// once (the app restarts into an installed one right after).
    pub async fn record_update(&self, applied: bool, detail: String) {
        let kind = if applied {
            EventKind::UpdateApplied
        } else {
            EventKind::UpdateRefused
        };
        self.push_event(kind, detail).await;
        let delivered = async {
            self.queue_heartbeat().await?;
            self.flush_outbox().await
        }
        .await;
        if let Err(e) = delivered {
            tracing::info!(error = %e, "the update's outcome stays queued for the next report");
        }
    }

    /// The running agent's update loop: checks after `first_after`, then every `every`,
    /// until `shutdown`. Returns the version installed, once one was, after telling the
    /// server (the caller then restarts into it); `None` on shutdown. A refused update has
    /// been recorded and reported by then, and the loop goes on with the running binary.
    pub async fn auto_update(
        &self,
        config: &AutoUpdate,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        let mut wait = config.first_after;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
            wait = config.every;
            let outcome = self
                .apply_update(&config.install_path, &config.public_key)
                .await;
            let applied = match outcome {
                Ok(UpdateOutcome::UpToDate) => {
                    tracing::debug!("no newer release offered");
                    continue;
                }
                Err(UpdateError::Agent(AgentError::NotEnrolled)) => continue,
                Err(UpdateError::Agent(e)) => {
                    tracing::info!(error = %e, "update check failed; trying again later");
                    continue;
                }
                Err(_) => None,
                Ok(UpdateOutcome::Applied { version }) => Some(version),
            };
            // IT hears of an applied or refused update now, not at the next report.
            let delivered = async {
                self.queue_heartbeat().await?;
                self.flush_outbox().await
            }
            .await;
            if let Err(e) = delivered {
                tracing::info!(error = %e, "the update's outcome stays queued for the next report");
            }
            if applied.is_some() {
                return applied;
            }
        }
    }

    /// Asks the enrolled server for a release newer than this binary.
    pub async fn check_for_update(&self) -> Result<Option<UpdateInfo>, UpdateError> {
        let target = current_target().ok_or(UpdateError::UnsupportedPlatform)?;
        let (client, token) = self.server_session().await?;
        Ok(client
            .check_update(&token, &target, AGENT_VERSION)
            .await
            .map_err(AgentError::from)?)
    }

    /// Downloads the newer release if there is one, verifies it with `public_key` and only
    /// then installs it at `install_path`. Every outcome but "up to date" is recorded as an
    /// event for IT.
    pub async fn apply_update(
        &self,
        install_path: &Path,
        public_key: &str,
    ) -> Result<UpdateOutcome, UpdateError> {
        let Some(update) = self.check_for_update().await? else {
            return Ok(UpdateOutcome::UpToDate);
        };
        let result = self.install(&update, install_path, public_key).await;
        match &result {
            Ok(()) => {
                tracing::info!(version = %update.version, path = %install_path.display(), "update installed");
                self.push_event(
                    EventKind::UpdateApplied,
                    format!("{AGENT_VERSION} -> {}", update.version),
                )
                .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "update refused; the installed binary stays");
                self.push_event(EventKind::UpdateRefused, e.to_string())
                    .await;
            }
        }
        result.map(|()| UpdateOutcome::Applied {
            version: update.version,
        })
    }

    async fn install(
        &self,
        update: &UpdateInfo,
        install_path: &Path,
        public_key: &str,
    ) -> Result<(), UpdateError> {
        let version = update.version.clone();
        let (client, token) = self.server_session().await?;
        let bytes = client
            .download_artifact(&token, &update.url, MAX_ARTIFACT)
            .await
            .map_err(|e| UpdateError::Download {
                version: version.clone(),
                reason: e.to_string(),
            })?;
        verify(public_key, &bytes, &update.signature).map_err(|reason| {
            UpdateError::BadSignature {
                version: version.clone(),
                reason,
            }
        })?;
        let path = install_path.to_owned();
        tokio::task::spawn_blocking(move || replace_file(&path, &bytes))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| UpdateError::Install {
                version,
                path: install_path.to_owned(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_the_cli_and_the_platform() {
        let target = current_target().unwrap();
        assert!(target.starts_with("cli-"), "{target}");
        assert_eq!(target.matches('-').count(), 2, "{target}");
    }

    #[test]
    fn a_replaced_file_has_the_new_bytes_and_the_old_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem");
        std::fs::write(&path, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        replace_file(&path, b"new binary").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new binary");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        // Nothing is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_target_is_an_error_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        assert!(replace_file(&dir.path().join("absent"), b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn only_a_writable_install_can_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem");
        assert!(!can_replace(&path), "nothing to replace");
        std::fs::write(&path, b"old").unwrap();
        assert!(can_replace(&path));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(!can_replace(Path::new("tandem")));
    }

    #[test]
    fn garbage_keys_and_signatures_are_refused() {
        assert!(verify("not base64", b"x", "c2ln").is_err());
    }
}
