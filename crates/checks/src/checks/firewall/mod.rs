//! `firewall`: is incoming network traffic filtered?
//!
//! # Platform behaviour
//! - Linux ([`linux`]): ufw (`/etc/ufw/ufw.conf` `ENABLED=yes` and `systemctl is-active
//!   ufw`), then firewalld (`firewall-cmd --state`; exit 252 means not running), then the
//!   nftables ruleset (`nft -j list ruleset`, root only). The first source that finds a
//!   firewall on answers; the details list every source read.
//! - macOS ([`macos`]): `socketfilterfw --getglobalstate`, falling back to
//!   `system_profiler SPFirewallDataType` (macOS 15).
//! - Windows ([`windows`]): `Get-NetFirewallProfile -PolicyStore ActiveStore`; all three
//!   profiles on passes, and so does a third-party firewall reported on by Security Center.
//!
//! IT's part by default (policy `firewall.owner`).

pub mod linux;
pub mod macos;
pub mod nft;
pub mod windows;

use async_trait::async_trait;
use tandem_proto::{CheckId, Remediation, RemediationAction};

use crate::checks::os_supported::support::POWERSHELL;
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

/// The firewall check.
///
/// # Platform behaviour
/// Linux: ufw, then firewalld, then the nftables ruleset (root only); macOS: the Application
/// Firewall's global state; Windows: every Defender Firewall profile, or a third-party
/// firewall reported on by Security Center.
pub struct Firewall;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[
    linux::SYSTEMCTL,
    linux::FIREWALL_CMD,
    linux::NFT,
    macos::SOCKETFILTERFW,
    macos::SYSTEM_PROFILER,
    POWERSHELL,
];

pub(crate) fn remediation(platform: &str) -> Remediation {
    match platform {
        "macos" => Remediation {
            steps: vec![
                "Open System Settings → Network → Firewall.".into(),
                "Turn the firewall on.".into(),
                "If the switch is greyed out, your organisation manages it: contact IT.".into(),
            ],
            action: Some(RemediationAction::OpenSettings {
                target: "x-apple.systempreferences:com.apple.preference.security?Firewall".into(),
            }),
        },
        "windows" => Remediation {
            steps: vec![
                "Open Windows Security → Firewall & network protection.".into(),
                "Turn Microsoft Defender Firewall on for Domain, Private and Public networks.".into(),
                "If a setting is managed by your organisation, contact IT.".into(),
            ],
            action: Some(RemediationAction::OpenSettings { target: "windowsdefender://network".into() }),
        },
        // GNOME and KDE have no firewall settings page; the steps name the command for
        // the distribution's own tool.
        _ => Remediation {
            steps: vec![
                "Ask IT to turn the firewall on, or do it yourself if you administer this computer:".into(),
                "Ubuntu and Debian with ufw: run `sudo ufw enable` in a terminal.".into(),
                "Fedora and RHEL with firewalld: run `sudo systemctl enable --now firewalld`.".into(),
            ],
            action: None,
        },
    }
}

#[async_trait]
impl Check for Firewall {
    fn id(&self) -> CheckId {
        CheckId::Firewall
    }

    async fn run(&self, host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        match host.os().family.as_str() {
            "linux" => linux::evaluate(&linux::probe(host).await),
            "macos" => macos::evaluate(&macos::probe(host).await),
            "windows" => windows::evaluate(&windows::probe(host).await),
            other => Outcome::unknown(format!("the firewall is not read on {other}")),
        }
    }
}
