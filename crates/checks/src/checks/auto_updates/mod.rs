//! `auto_updates`: does the system install updates by itself?
//!
//! # Platform behaviour
//! - Linux ([`linux`]): unattended-upgrades on Debian and derivatives (`apt-config dump`),
//!   dnf-automatic on Fedora and RHEL-like systems; other distributions answer `unknown`.
//! - macOS ([`macos`]): `com.apple.SoftwareUpdate` preferences, managed profile on top.
//! - Windows ([`windows`]): the Windows Update policy key and service start type.
//!
//! The user's part by default.

pub mod linux;
pub mod macos;
pub mod windows;

use async_trait::async_trait;
use tandem_proto::{CheckId, Remediation, RemediationAction};

use crate::checks::os_supported::support::REG_EXE;
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

/// The automatic-updates check.
///
/// # Platform behaviour
/// Linux: unattended-upgrades (apt family) or dnf-automatic (dnf family), `unknown`
/// elsewhere; macOS: `com.apple.SoftwareUpdate`; Windows: the Windows Update policy and
/// service.
pub struct AutoUpdates;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[
    linux::APT_CONFIG,
    linux::SYSTEMCTL,
    macos::DEFAULTS,
    REG_EXE,
];

pub(crate) fn remediation(platform: &str) -> Remediation {
    match platform {
        "macos" => Remediation {
            steps: vec![
                "Open System Settings → General → Software Update → Automatic Updates (the ⓘ button).".into(),
                "Turn on every option, in particular Install Security Responses and system files and Install macOS updates.".into(),
            ],
            action: Some(RemediationAction::OpenSettings {
                target: "x-apple.systempreferences:com.apple.Software-Update-Settings.extension".into(),
            }),
        },
        "windows" => Remediation {
            steps: vec![
                "Open Settings → Windows Update → Advanced options and make sure updates are not paused.".into(),
                "If the page says some settings are managed by your organisation, contact IT.".into(),
            ],
            action: Some(RemediationAction::OpenSettings { target: "ms-settings:windowsupdate-options".into() }),
        },
        _ => Remediation {
            steps: vec![
                "Debian and Ubuntu: run `sudo apt install unattended-upgrades` and then `sudo dpkg-reconfigure -plow unattended-upgrades` and answer Yes.".into(),
                "Fedora: run `sudo dnf install dnf-automatic`, set `apply_updates = yes` in /etc/dnf/automatic.conf and run `sudo systemctl enable --now dnf-automatic.timer`.".into(),
                "Or open Software → Preferences and turn on automatic updates.".into(),
            ],
            action: Some(RemediationAction::OpenSettings { target: "gnome-software --mode=updates".into() }),
        },
    }
}

#[async_trait]
impl Check for AutoUpdates {
    fn id(&self) -> CheckId {
        CheckId::AutoUpdates
    }

    async fn run(&self, host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        let os = host.os();
        match os.family.as_str() {
            "linux" if os.is_debian_like() => linux::evaluate_apt(&linux::probe_apt(host).await),
            "linux" => {
                let like = os
                    .os_release
                    .get("ID_LIKE")
                    .map(String::as_str)
                    .unwrap_or("");
                let id = os.distro_id().unwrap_or("");
                let dnf_family = ["fedora", "rhel", "centos"]
                    .iter()
                    .any(|f| id == *f || like.split_whitespace().any(|w| w == *f));
                if dnf_family {
                    linux::evaluate_dnf(&linux::probe_dnf(host).await)
                } else {
                    Outcome::unknown(format!(
                        "automatic updates are not read on {}",
                        if id.is_empty() {
                            "this distribution"
                        } else {
                            id
                        }
                    ))
                }
            }
            "macos" => macos::evaluate(&macos::probe(host).await),
            "windows" => windows::evaluate(&windows::probe(host).await),
            other => Outcome::unknown(format!("automatic updates are not read on {other}")),
        }
    }
}
