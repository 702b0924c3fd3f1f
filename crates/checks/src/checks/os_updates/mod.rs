//! `os_updates`: pending operating-system updates, security updates among them, and whether
//! a restart is needed.
//!
//! # Platform behaviour
//! Linux (Debian family): a simulated `apt-get dist-upgrade` over cached metadata, the
//! metadata's age from apt's stamps, `/run/reboot-required`. Other platforms and
//! distributions answer `unknown` until their probes land.

pub mod apt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub struct OsUpdates;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &["/usr/bin/apt-get"];

/// What the probe read, before any judgement.
#[derive(Debug, Clone)]
pub struct AptProbe {
    pub simulate: Result<CmdOutput, HostError>,
    pub reboot_required: bool,
    pub metadata_updated_at: Option<DateTime<Utc>>,
}

pub fn apt_simulate_cmd() -> Cmd {
    Cmd::new(
        "/usr/bin/apt-get",
        &["--simulate", "-o", "Debug::NoLocking=true", "-o", "APT::Get::Show-User-Simulation-Note=false", "-qq", "dist-upgrade"],
    )
}

const APT_STAMPS: &[&str] = &["/var/lib/apt/periodic/update-success-stamp", "/var/lib/apt/lists"];

async fn probe_apt(host: &dyn Host) -> AptProbe {
    let simulate = host.run(&apt_simulate_cmd()).await;
    let reboot_required = host.read_file("/run/reboot-required").await.is_ok();
    let mut metadata_updated_at = None;
    for stamp in APT_STAMPS {
        if let Ok(t) = host.modified(stamp).await {
            metadata_updated_at = Some(t);
            break;
        }
    }
    AptProbe { simulate, reboot_required, metadata_updated_at }
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.lines().take(20).collect::<Vec<_>>().join("\n");
    if s.len() > 2000 {
        let mut cut = 2000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn remediation() -> Remediation {
    Remediation {
        steps: vec![
            "Save your work.".into(),
            "Open Software Updates (or run `sudo apt upgrade` in a terminal).".into(),
            "Install all available updates, then restart if asked.".into(),
        ],
        action: Some(RemediationAction::OpenSettings { target: "gnome-software --mode=updates".into() }),
    }
}

/// Judges an apt probe. Pure: everything it needs is in its arguments.
pub fn evaluate_apt(probe: &AptProbe, now: DateTime<Utc>) -> Outcome {
    let cmd = apt_simulate_cmd();
    let out = match &probe.simulate {
        Ok(out) => out,
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    let mut evidence = vec![Evidence { source: cmd.display(), excerpt: excerpt(&out.stdout) }];
    if out.exit_code != Some(0) {
        let mut o = Outcome::unknown(format!(
            "apt-get exited with {}: {}",
            out.exit_code.map_or_else(|| "a signal".to_owned(), |c| c.to_string()),
            out.stderr.lines().next().unwrap_or("no message")
        ));
        evidence.push(Evidence { source: "stderr".into(), excerpt: excerpt(&out.stderr) });
        o.evidence = evidence;
        return o;
    }
    let updates = match apt::parse_simulate(&out.stdout) {
        Ok(u) => u,
        Err(e) => {
            let mut o = Outcome::unknown(e.to_string());
            o.evidence = evidence;
            return o;
        }
    };
    let upgrades: Vec<_> = updates.iter().filter(|u| u.current.is_some()).collect();
    let pending = upgrades.len();
    let security = upgrades.iter().filter(|u| u.security).count();
    let metadata_age_hours = probe.metadata_updated_at.map(|t| (now - t).num_hours().max(0));
    if probe.reboot_required {
        evidence.push(Evidence { source: "/run/reboot-required".into(), excerpt: "present".into() });
    }
    let (status, summary) = match (pending, security, probe.reboot_required) {
        (0, _, false) => (Status::Pass, "The system is up to date".to_owned()),
        (0, _, true) => (Status::Warn, "Updates are installed; restart to finish".to_owned()),
        (n, 0, _) => (Status::Warn, format!("{n} update{} waiting to be installed", plural(n))),
        (n, s, _) => (Status::Warn, format!("{n} update{} waiting, {s} of them security fixes", plural(n))),
    };
    Outcome {
        status,
        summary,
        reason: None,
        details: json!({
            "source": "apt",
            "pending": pending,
            "security": security,
            "new_packages": updates.len() - pending,
            "reboot_required": probe.reboot_required,
            "metadata_age_hours": metadata_age_hours,
            "updates": updates,
        }),
        evidence,
        remediation: if status == Status::Pass { Remediation::default() } else { remediation() },
        default_owner: Owner::User,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[async_trait]
impl Check for OsUpdates {
    fn id(&self) -> CheckId {
        CheckId::OsUpdates
    }

    async fn run(&self, host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        let os = host.os();
        if os.family == "linux" && os.is_debian_like() {
            let probe = probe_apt(host).await;
            return evaluate_apt(&probe, host.now());
        }
        Outcome::unknown(format!(
            "pending updates are not yet read on {}",
            os.distro_id().unwrap_or(os.family.as_str())
        ))
    }
}
