//! Windows: Windows Update's automatic-update policy
//! (`HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU`: `NoAutoUpdate`,
//! `AUOptions`) and the Windows Update service's start type (`wuauserv` `Start`, 4 =
//! disabled). On Windows 10 and 11 a missing policy key means updates download and install
//! automatically.
//!
//! `AUOptions`: 2 notify before download, 3 download and notify to install, 4 download and
//! schedule the install, 5 let the local administrator choose, 7 download, notify to install
//! and to restart. Only 4 installs by itself.

use serde_json::json;
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::reg::{read_reg, RegRead};
use crate::checks::os_supported::support::{cmd_evidence, reg_query};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const AU_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU";
pub const WUAUSERV_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\wuauserv";

pub fn au_cmd() -> Cmd {
    reg_query(AU_KEY, None)
}
pub fn service_cmd() -> Cmd {
    reg_query(WUAUSERV_KEY, Some("Start"))
}

#[derive(Debug, Clone)]
pub struct WindowsProbe {
    pub au: Result<CmdOutput, HostError>,
    pub service: Result<CmdOutput, HostError>,
}

pub async fn probe(host: &dyn Host) -> WindowsProbe {
    WindowsProbe {
        au: host.run(&au_cmd()).await,
        service: host.run(&service_cmd()).await,
    }
}

pub fn evaluate(p: &WindowsProbe) -> Outcome {
    let mut evidence = Vec::new();
    let read = |r: &Result<CmdOutput, HostError>, cmd: Cmd, evidence: &mut Vec<_>| match r {
        Ok(out) => {
            evidence.push(cmd_evidence(&cmd, out));
            read_reg(out)
        }
        Err(e) => RegRead::Unreadable {
            reason: e.to_string(),
        },
    };
    let au = read(&p.au, au_cmd(), &mut evidence);
    let service = read(&p.service, service_cmd(), &mut evidence);
    let start = match &service {
        RegRead::Present(k) => k.u64("Start"),
        RegRead::Absent => None,
        RegRead::Unreadable { reason } => {
            return Outcome {
                evidence,
                ..Outcome::unknown(reason.clone())
            }
        }
    };
    let (no_auto, options) = match &au {
        RegRead::Present(k) => (k.u64("NoAutoUpdate"), k.u64("AUOptions")),
        RegRead::Absent => (None, None),
        RegRead::Unreadable { reason } => {
            return Outcome {
                evidence,
                ..Outcome::unknown(reason.clone())
            }
        }
    };
    let details = json!({"policy_key_present": matches!(au, RegRead::Present(_)), "no_auto_update": no_auto, "au_options": options, "wuauserv_start": start});
    let (status, summary): (Status, String) = if start == Some(4) {
        (
            Status::Fail,
            "The Windows Update service is disabled".into(),
        )
    } else if no_auto == Some(1) {
        (
            Status::Fail,
            "Automatic updates are turned off by policy (NoAutoUpdate)".into(),
        )
    } else {
        match options {
            None | Some(4) => (Status::Pass, "Windows installs updates automatically".into()),
            Some(2) => (Status::Warn, "Windows only notifies about updates; they are not downloaded or installed automatically".into()),
            Some(3) | Some(7) => (Status::Warn, "Updates download automatically but wait for you to install them".into()),
            Some(5) => (Status::Warn, "The local administrator chooses how updates install (AUOptions 5)".into()),
            Some(n) => (Status::Warn, format!("Unrecognised automatic-update option {n}")),
        }
    };
    Outcome {
        status,
        summary,
        reason: None,
        details,
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("windows")
        },
        default_owner: Owner::User,
    }
}
