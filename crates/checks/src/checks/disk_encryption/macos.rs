//! macOS: FileVault, from `fdesetup status` (no admin rights needed).
//!
//! It prints `FileVault is On.` or `FileVault is Off.`, while converting
//! `Encryption in progress: Percent completed = 45.6` (or `Decryption in progress: …`), and
//! `FileVault is Off, but will be enabled after the next restart.` when enabling is
//! deferred. Extra lines (`Deferred enablement appears to be active for user 'x'.`) are
//! ignored.

use serde::Serialize;
use serde_json::json;
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, HostError};

pub const FDESETUP: &str = "/usr/bin/fdesetup";

pub fn fdesetup_cmd() -> Cmd {
    Cmd::new(FDESETUP, &["status"])
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileVault {
    On,
    Off,
    /// Off now, on after the next restart.
    Pending,
    Encrypting {
        percent: Option<f64>,
    },
    Decrypting {
        percent: Option<f64>,
    },
}

fn percent(line: &str) -> Option<f64> {
    line.split('=')
        .nth(1)?
        .trim()
        .trim_end_matches('%')
        .parse()
        .ok()
}

pub fn parse_fdesetup(stdout: &str) -> Option<FileVault> {
    // While converting, fdesetup prints `FileVault is On.` and then the progress line: the
    // progress line decides.
    for line in stdout.lines().map(str::trim) {
        if line.starts_with("Encryption in progress") {
            return Some(FileVault::Encrypting {
                percent: percent(line),
            });
        }
        if line.starts_with("Decryption in progress") {
            return Some(FileVault::Decrypting {
                percent: percent(line),
            });
        }
    }
    for line in stdout.lines().map(str::trim) {
        if line.starts_with("FileVault is On") {
            return Some(FileVault::On);
        }
        if line.starts_with("FileVault is Off") {
            return Some(if line.contains("will be enabled") {
                FileVault::Pending
            } else {
                FileVault::Off
            });
        }
    }
    None
}

pub fn evaluate(out: &Result<CmdOutput, HostError>) -> Outcome {
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Outcome {
                default_owner: Owner::It,
                ..Outcome::unknown(e.to_string())
            }
        }
    };
    let evidence = vec![cmd_evidence(&fdesetup_cmd(), out)];
    let state = match (out.exit_code, parse_fdesetup(&out.stdout)) {
        (Some(0), Some(s)) => s,
        (Some(0), None) => {
            return Outcome {
                evidence,
                default_owner: Owner::It,
                ..Outcome::unknown("fdesetup printed no FileVault state")
            }
        }
        _ => {
            return Outcome {
                evidence,
                default_owner: Owner::It,
                ..Outcome::unknown(exit_text("fdesetup", out))
            }
        }
    };
    let (status, summary) = match &state {
        FileVault::On => (Status::Pass, "FileVault is on".to_owned()),
        FileVault::Off => (
            Status::Fail,
            "FileVault is off: the disk is not encrypted".to_owned(),
        ),
        FileVault::Pending => (
            Status::Warn,
            "FileVault will turn on at the next restart".to_owned(),
        ),
        FileVault::Encrypting { percent } => (
            Status::Warn,
            match percent {
                Some(p) => format!("FileVault is encrypting the disk ({p:.0} % done)"),
                None => "FileVault is encrypting the disk".to_owned(),
            },
        ),
        FileVault::Decrypting { .. } => (
            Status::Fail,
            "FileVault is being turned off (decrypting the disk)".to_owned(),
        ),
    };
    Outcome {
        status,
        summary,
        reason: None,
        details: json!({"filevault": state}),
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("macos")
        },
        default_owner: Owner::It,
    }
}
