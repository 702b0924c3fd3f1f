//! Windows: BitLocker on the operating-system volume, from `Win32_EncryptableVolume`
//! (namespace `root/cimv2/Security/MicrosoftVolumeEncryption`).
//!
//! `VolumeType` 0 is the OS volume. `ProtectionStatus`: 0 off, 1 on, 2 unknown (locked).
//! `ConversionStatus`: 0 fully decrypted, 1 fully encrypted, 2 encrypting, 3 decrypting,
//! 4 encryption paused, 5 decryption paused. A fully encrypted volume with protection off
//! is BitLocker *suspended* (the key sits in the clear on disk), which is reported as a
//! warning, not as encrypted. The class needs administrator rights; without them Windows
//! answers "Access denied" and the result is `unknown`.

use serde::Serialize;
use serde_json::{json, Value};
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, exit_text, json_items, powershell};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, HostError};

pub fn volumes_cmd() -> Cmd {
    powershell(
        "Get-CimInstance -Namespace root/cimv2/Security/MicrosoftVolumeEncryption -ClassName Win32_EncryptableVolume | Select-Object DriveLetter, VolumeType, ProtectionStatus, ConversionStatus | ConvertTo-Json",
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub drive_letter: Option<String>,
    pub volume_type: Option<u64>,
    pub protection_status: u64,
    pub conversion_status: Option<u64>,
}

pub fn parse_volumes(stdout: &str) -> Option<Vec<Volume>> {
    json_items(stdout)?
        .iter()
        .map(|v| {
            Some(Volume {
                drive_letter: v
                    .get("DriveLetter")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                volume_type: v.get("VolumeType").and_then(Value::as_u64),
                protection_status: v.get("ProtectionStatus")?.as_u64()?,
                conversion_status: v.get("ConversionStatus").and_then(Value::as_u64),
            })
        })
        .collect()
}

pub fn evaluate(out: &Result<CmdOutput, HostError>) -> Outcome {
    let unknown = |reason: String, evidence| Outcome {
        evidence,
        default_owner: Owner::It,
        ..Outcome::unknown(reason)
    };
    let out = match out {
        Ok(o) => o,
        Err(e) => return unknown(e.to_string(), Vec::new()),
    };
    let evidence = vec![cmd_evidence(&volumes_cmd(), out)];
    if out.exit_code != Some(0) || (out.stdout.trim().is_empty() && !out.stderr.trim().is_empty()) {
        let reason =
            if out.stderr.contains("Access denied") || out.stderr.contains("Access is denied") {
                "reading BitLocker status needs administrator rights (run the agent as a service)"
                    .to_owned()
            } else {
                exit_text("powershell", out)
            };
        return unknown(reason, evidence);
    }
    let Some(volumes) = parse_volumes(&out.stdout) else {
        return unknown(
            "Win32_EncryptableVolume printed no volumes".into(),
            evidence,
        );
    };
    // The OS volume is VolumeType 0; older builds leave VolumeType empty, where C: is the
    // usual system drive.
    let Some(os) = volumes
        .iter()
        .find(|v| v.volume_type == Some(0))
        .or_else(|| {
            volumes
                .iter()
                .find(|v| v.drive_letter.as_deref() == Some("C:"))
        })
    else {
        return unknown("no operating-system volume was listed".into(), evidence);
    };
    let drive = os
        .drive_letter
        .clone()
        .unwrap_or_else(|| "the system drive".into());
    let (status, summary) = match (os.protection_status, os.conversion_status) {
        (1, _) => (Status::Pass, format!("BitLocker protects {drive}")),
        (2, _) => return unknown(format!("BitLocker reports the protection of {drive} as unknown"), evidence),
        (0, Some(1)) => (
            Status::Warn,
            format!("BitLocker is suspended on {drive}; the disk is encrypted, but its key is stored unprotected"),
        ),
        (0, Some(2)) | (0, Some(4)) => (Status::Warn, format!("BitLocker is still encrypting {drive}")),
        (0, _) => (Status::Fail, format!("BitLocker is off on {drive}, so the disk is not encrypted")),
        (n, _) => return unknown(format!("unexpected ProtectionStatus {n}"), evidence),
    };
    Outcome {
        status,
        summary,
        reason: None,
        details: json!({"os_volume": os, "volumes": volumes}),
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("windows")
        },
        default_owner: Owner::It,
    }
}
