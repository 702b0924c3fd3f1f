//! `disk_encryption`: is the system disk encrypted?
//!
//! # Platform behaviour
//! - Linux ([`linux`]): `findmnt` and `lsblk` without root; LUKS (also under LVM) counts.
//! - macOS ([`macos`]): `fdesetup status`.
//! - Windows ([`windows`]): BitLocker on the OS volume from `Win32_EncryptableVolume`
//!   (administrator rights needed, else `unknown`).
//!
//! IT's part by default (policy `disk_encryption.owner`): turning encryption on is usually
//! done, or at least escrowed, by IT.

pub mod linux;
pub mod macos;
pub mod windows;

use async_trait::async_trait;
use tandem_proto::{CheckId, Remediation, RemediationAction};

use crate::checks::os_supported::support::POWERSHELL;
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

/// The disk-encryption check.
///
/// # Platform behaviour
/// Linux: LUKS under the root filesystem (`findmnt` + `lsblk`); macOS: FileVault; Windows:
/// BitLocker on the OS volume (needs administrator rights).
pub struct DiskEncryption;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[linux::FINDMNT, linux::LSBLK, macos::FDESETUP, POWERSHELL];

pub(crate) fn remediation(platform: &str) -> Remediation {
    match platform {
        "macos" => Remediation {
            steps: vec![
                "Open System Settings → Privacy & Security → FileVault.".into(),
                "Turn FileVault on and keep the recovery key where IT asks you to.".into(),
                "Leave the Mac plugged in while it encrypts.".into(),
            ],
            action: Some(RemediationAction::OpenSettings {
                target: "x-apple.systempreferences:com.apple.preference.security?FileVault".into(),
            }),
        },
        "windows" => Remediation {
            steps: vec![
                "Contact IT: BitLocker recovery keys must be saved where IT can find them.".into(),
                "If IT asks you to: open Settings → Privacy & security → Device encryption (or BitLocker) and turn it on.".into(),
                "If BitLocker is suspended, choose Resume protection.".into(),
            ],
            action: Some(RemediationAction::OpenSettings { target: "ms-settings:deviceencryption".into() }),
        },
        // LUKS can only be set up when installing: there is no settings page to open.
        _ => Remediation {
            steps: vec![
                "Contact IT: Linux disk encryption (LUKS) is set up when the system is installed.".into(),
                "Back up your files; IT will reinstall with encryption turned on.".into(),
            ],
            action: None,
        },
    }
}

#[async_trait]
impl Check for DiskEncryption {
    fn id(&self) -> CheckId {
        CheckId::DiskEncryption
    }

    async fn run(&self, host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        match host.os().family.as_str() {
            "linux" => linux::evaluate(&linux::probe(host).await),
            "macos" => macos::evaluate(&host.run(&macos::fdesetup_cmd()).await),
            "windows" => windows::evaluate(&host.run(&windows::volumes_cmd()).await),
            other => Outcome::unknown(format!("disk encryption is not read on {other}")),
        }
    }
}
