//! macOS: `defaults read /Library/Preferences/com.apple.SoftwareUpdate` (old-style plist
//! text: `    AutomaticCheckEnabled = 1;`), with a configuration profile's values from
//! `/Library/Managed Preferences/com.apple.SoftwareUpdate.plist` on top.
//!
//! A missing key means the system default: checking, downloading, installing security
//! responses (`CriticalUpdateInstall`) and XProtect/system data files (`ConfigDataInstall`)
//! are on by default.
//! `AutomaticallyInstallMacOSUpdates` is judged only when set: whether it defaults on
//! differs between macOS releases and setup paths.

use std::collections::BTreeMap;

use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const DEFAULTS: &str = "/usr/bin/defaults";
pub const MANAGED_PLIST: &str = "/Library/Managed Preferences/com.apple.SoftwareUpdate.plist";
pub const KEYS: &[&str] = &[
    "AutomaticCheckEnabled",
    "AutomaticDownload",
    "CriticalUpdateInstall",
    "ConfigDataInstall",
    "AutomaticallyInstallMacOSUpdates",
];

pub fn defaults_cmd() -> Cmd {
    Cmd::new(
        DEFAULTS,
        &["read", "/Library/Preferences/com.apple.SoftwareUpdate"],
    )
}

#[derive(Debug, Clone)]
pub struct MacProbe {
    pub defaults: Result<CmdOutput, HostError>,
    pub managed: Result<Vec<u8>, HostError>,
}

/// Top-level `Key = value;` pairs of `defaults read` output whose value is a number or a
/// bare word (nested arrays and dictionaries are skipped).
pub fn parse_defaults(stdout: &str) -> BTreeMap<String, String> {
    let mut depth = 0i32;
    let mut map = BTreeMap::new();
    for line in stdout.lines() {
        let t = line.trim();
        if depth == 1 {
            if let Some((k, v)) = t.split_once(" = ") {
                if let Some(v) = v.strip_suffix(';') {
                    map.insert(
                        k.trim().trim_matches('"').to_owned(),
                        v.trim().trim_matches('"').to_owned(),
                    );
                }
            }
        }
        depth += t.matches(['{', '(']).count() as i32 - t.matches(['}', ')']).count() as i32;
    }
    map
}

/// Boolean keys of a managed-preferences plist (XML or binary).
pub fn parse_managed(bytes: &[u8]) -> BTreeMap<String, String> {
    let Ok(value) = plist::Value::from_reader(std::io::Cursor::new(bytes)) else {
        return BTreeMap::new();
    };
    let Some(dict) = value.as_dictionary() else {
        return BTreeMap::new();
    };
    KEYS.iter()
        .filter_map(|k| {
            let v = dict.get(k)?;
            let b = v
                .as_boolean()
                .or_else(|| v.as_signed_integer().map(|n| n != 0))?;
            Some((
                (*k).to_owned(),
                if b { "1".to_owned() } else { "0".to_owned() },
            ))
        })
        .collect()
}

pub async fn probe(host: &dyn Host) -> MacProbe {
    MacProbe {
        defaults: host.run(&defaults_cmd()).await,
        managed: host.read_file(MANAGED_PLIST).await,
    }
}

pub fn evaluate(p: &MacProbe) -> Outcome {
    let mut evidence = Vec::new();
    let mut settings = match &p.defaults {
        Ok(out) => {
            evidence.push(cmd_evidence(&defaults_cmd(), out));
            match out.exit_code {
                Some(0) => parse_defaults(&out.stdout),
                // "Domain … does not exist": nothing was ever changed, all defaults.
                Some(1) if out.stderr.contains("does not exist") => BTreeMap::new(),
                _ => {
                    return Outcome {
                        evidence,
                        ..Outcome::unknown(exit_text("defaults", out))
                    }
                }
            }
        }
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    if let Ok(bytes) = &p.managed {
        let managed = parse_managed(bytes);
        if !managed.is_empty() {
            evidence.push(Evidence {
                source: MANAGED_PLIST.into(),
                excerpt: format!("{managed:?}"),
            });
        }
        settings.extend(managed);
    }
    let flag = |k: &str| {
        settings
            .get(k)
            .map(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    let view: BTreeMap<&str, Option<bool>> = KEYS.iter().map(|k| (*k, flag(k))).collect();
    let details = json!({"settings": view, "missing_means": "system default"});
    let (status, summary) = if flag("AutomaticCheckEnabled") == Some(false) {
        (
            Status::Fail,
            "The Mac does not check for updates automatically",
        )
    } else if flag("CriticalUpdateInstall") == Some(false) {
        (
            Status::Fail,
            "Security responses are not installed automatically",
        )
    } else if flag("ConfigDataInstall") == Some(false) {
        (
            Status::Fail,
            "System data files (XProtect malware definitions) are not installed automatically",
        )
    } else if flag("AutomaticDownload") == Some(false) {
        (
            Status::Warn,
            "Updates are found but not downloaded automatically",
        )
    } else if flag("AutomaticallyInstallMacOSUpdates") == Some(false) {
        (
            Status::Warn,
            "Security responses install automatically, but macOS updates wait for you",
        )
    } else {
        (
            Status::Pass,
            "Updates are checked for and installed automatically",
        )
    };
    Outcome {
        status,
        summary: summary.to_owned(),
        reason: None,
        details,
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("macos")
        },
        default_owner: Owner::User,
    }
}
