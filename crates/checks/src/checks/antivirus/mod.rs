//! `antivirus`: is malware protection on, with current definitions?
//!
//! # Platform behaviour
//! - Windows ([`windows`]): Security Center's `AntiVirusProduct` records, their
//!   `productState` decoded in [`wsc`]; Windows Server (no Security Center) falls back to
//!   `Get-MpComputerStatus`.
//! - macOS ([`macos`]): XProtect's version and update date; built in, nothing to install.
//! - Linux ([`linux`]): Microsoft Defender for Endpoint, else ClamAV's database age; with
//!   neither, `warn` (see the module for why).
//!
//! Definitions older than the policy's `max_definitions_age_days` warn: protection is
//! there but weaker. IT's part by default: antivirus is a managed control.

pub mod linux;
pub mod macos;
pub mod windows;
pub mod wsc;

use async_trait::async_trait;
use tandem_proto::{CheckId, Remediation, RemediationAction};

use crate::checks::os_supported::support::POWERSHELL;
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

/// The antivirus check.
///
/// # Platform behaviour
/// Windows: Security Center (`Get-MpComputerStatus` on Windows Server); macOS: XProtect;
/// Linux: Microsoft Defender for Endpoint or ClamAV, `warn` when neither is installed.
pub struct Antivirus;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[linux::MDATP, linux::SIGTOOL, POWERSHELL];

pub(crate) fn remediation(platform: &str) -> Remediation {
    match platform {
        "windows" => Remediation {
            steps: vec![
                "Open Windows Security → Virus & threat protection.".into(),
                "Turn real-time protection on and select Check for updates under protection updates.".into(),
                "If another antivirus is installed, open it and renew or update it, or contact IT.".into(),
            ],
            action: Some(RemediationAction::OpenSettings { target: "windowsdefender://threat".into() }),
        },
        "macos" => Remediation {
            steps: vec![
                "Open System Settings → General → Software Update → Automatic Updates (the ⓘ button).".into(),
                "Turn on Install Security Responses and system files.".into(),
                "Connect to the internet for a while so the Mac can fetch the update.".into(),
            ],
            action: Some(RemediationAction::OpenSettings {
                target: "x-apple.systempreferences:com.apple.Software-Update-Settings.extension".into(),
            }),
        },
        _ => Remediation {
            steps: vec![
                "Ask IT which antivirus your organisation uses on Linux.".into(),
                "For ClamAV: install it (`sudo apt install clamav` or `sudo dnf install clamav clamav-update`) and keep `freshclam` running so its signatures stay current.".into(),
            ],
            action: None,
        },
    }
}

#[async_trait]
impl Check for Antivirus {
    fn id(&self) -> CheckId {
        CheckId::Antivirus
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let max_age = ctx.policy.checks.antivirus.max_definitions_age_days;
        match host.os().family.as_str() {
            "linux" => linux::evaluate(&linux::probe(host).await, max_age, host.now()),
            "macos" => macos::evaluate(&macos::probe(host).await, max_age, host.now()),
            "windows" => windows::evaluate(&windows::probe(host).await, max_age),
            other => Outcome::unknown(format!("antivirus is not read on {other}")),
        }
    }
}
